// Plan versions side by side: one column per version of each plan step, each child with its
// kind, agent and task (or its own fields) and needs; a child new in a version, or changed from
// the one before, is marked, and one dropped is listed struck through.
import { el, clear } from "./dom.js";

function what(step) {
  const { id, needs, kind, ...rest } = step;
  return Object.entries(rest).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
}

function column(plan, index, previous) {
  const before = new Map((previous?.steps || []).map((s) => [s.id, JSON.stringify(s)]));
  const ids = new Set(plan.steps.map((s) => s.id));
  const dropped = [...before.keys()].filter((id) => !ids.has(id));
  return el(
    "div",
    { class: "plan-version" },
    el("h4", { text: `v${index + 1}` }),
    plan.summary ? el("p", { class: "muted", text: plan.summary }) : null,
    el(
      "ol",
      {},
      plan.steps.map((step) => {
        const mark = !previous ? "" : !before.has(step.id) ? "added" : before.get(step.id) !== JSON.stringify(step) ? "changed" : "";
        return el(
          "li",
          { class: mark },
          el("code", { text: step.id }),
          ` ${step.kind || "agent"}`,
          step.needs && step.needs.length ? el("span", { class: "muted", text: ` ← ${step.needs.join(", ")}` }) : null,
          what(step).map((line) => el("div", { class: "field", text: line })),
        );
      }),
      dropped.map((id) => el("li", { class: "dropped" }, el("code", { text: id }), " dropped")),
    ),
  );
}

export function makePlans(root) {
  let shown = "";
  return {
    update(plans) {
      const key = JSON.stringify(Object.entries(plans).map(([k, v]) => [k, v.length]));
      if (key === shown) return;
      shown = key;
      const entries = Object.entries(plans);
      root.hidden = entries.length === 0;
      clear(
        root,
        el("h2", { text: "Plans" }),
        entries.map(([stepId, versions]) =>
          el(
            "div",
            { class: "plan" },
            el("h3", {}, el("code", { text: stepId }), ` · ${versions.length} version${versions.length === 1 ? "" : "s"}`),
            el("div", { class: "plan-versions" }, versions.map((v, i) => column(v, i, versions[i - 1]))),
          ),
        ),
      );
    },
  };
}
