// The steps table, virtualised: only the rows in view exist in the page (a 2,000-step run keeps
// a few dozen rows), re-filled on scroll and on each refresh; a filter narrows it by id, kind or
// status.
import { el, clear, duration, cost, badge } from "./dom.js";

const ROW = 26;

function seconds(step) {
  if (!step.started_at || !step.finished_at) return null;
  return (Date.parse(step.finished_at) - Date.parse(step.started_at)) / 1000;
}

function row(step, index, selected) {
  return el(
    "div",
    {
      class: step.id === selected ? "step-row selected" : "step-row",
      tabindex: 0,
      role: "button",
      dataset: { step: step.id, status: step.status },
      style: `top:${index * ROW}px`,
    },
    el("span", { class: "id", text: step.id }),
    el("span", { text: step.kind }),
    badge(step.status),
    el("span", { class: "num", text: step.attempts }),
    el("span", { class: "num", text: duration(seconds(step)) }),
    el("span", { class: "num", text: step.tokens }),
    el("span", { class: "num", text: cost(step.cost_usd) }),
  );
}

export function makeSteps(root, onSelect) {
  const filter = el("input", { type: "search", placeholder: "filter: id, kind or status" });
  const count = el("span", { class: "muted" });
  const inner = el("div", { class: "steps-inner" });
  const scroller = el("div", { class: "steps-scroll", id: "steps" }, inner);
  const heads = ["Step", "Kind", "Status", "Tries", "Time", "Tokens", "Cost"];
  root.append(
    el("div", { class: "row" }, filter, count),
    el("div", { class: "step-row head" }, heads.map((h) => el("span", { text: h }))),
    scroller,
  );
  let steps = [];
  let shown = [];
  let selected = null;

  function apply() {
    const words = filter.value.trim().toLowerCase();
    shown = words
      ? steps.filter((s) => `${s.id} ${s.kind} ${s.status}`.toLowerCase().includes(words))
      : steps;
    inner.style.height = `${shown.length * ROW}px`;
    scroller.style.height = `${Math.min(Math.max(shown.length, 3) * ROW + 2, 420)}px`;
    count.textContent = `${shown.length} of ${steps.length} steps`;
    fill();
  }

  function fill() {
    const first = Math.max(Math.floor(scroller.scrollTop / ROW) - 5, 0);
    const last = Math.min(shown.length, first + Math.ceil(scroller.clientHeight / ROW) + 10);
    const rows = [];
    for (let index = first; index < last; index++) rows.push(row(shown[index], index, selected));
    const focused = inner.contains(document.activeElement) ? document.activeElement.dataset.step : null;
    clear(inner, rows);
    const again = focused && rows.find((r) => r.dataset.step === focused);
    if (again) again.focus({ preventScroll: true }); // a refresh keeps the keyboard's place
  }

  filter.addEventListener("input", apply);
  scroller.addEventListener("scroll", () => requestAnimationFrame(fill), { passive: true });
  inner.addEventListener("click", (event) => {
    const target = event.target.closest(".step-row");
    if (target) onSelect(target.dataset.step);
  });
  inner.addEventListener("keydown", (event) => {
    const target = event.target.closest(".step-row");
    if (target && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      onSelect(target.dataset.step);
    }
  });
  return {
    update(next) {
      steps = next;
      apply();
    },
    select(id) {
      selected = id;
      fill();
    },
  };
}
