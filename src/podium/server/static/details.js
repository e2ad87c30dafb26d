// One step in full (GET /runs/ID/steps/STEP): its rendered input and prompt, output, tokens and
// cost, every try with its error, the model calls and tool calls, all shown as text; the live
// model text of a running agent step streams in under "Live".
import { get } from "./api.js";
import { el, clear, duration, cost, when, pretty, badge } from "./dom.js";

function section(title, ...body) {
  return el("section", { class: "detail" }, el("h3", { text: title }), ...body);
}

function block(value, className = "") {
  return el("pre", { class: `value ${className}`, text: pretty(value) });
}

function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [
      el("dt", { text: k }),
      el("dd", {}, v instanceof Node ? v : String(v)),
    ]),
  );
}

function table(heads, rows) {
  return el(
    "table",
    { class: "small" },
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c ?? ""))))),
  );
}

function input(step) {
  if (step.input_error) return section("Input", el("p", { class: "error", text: step.input_error }));
  if (!step.input) return null;
  const fields = Object.entries(step.input).filter(([k]) => k !== "prompt" && k !== "task");
  const prompt = step.input.prompt ?? step.input.task;
  return [
    prompt !== undefined ? section("Prompt", block(prompt, "prompt")) : null,
    fields.length ? section("Input", facts(fields.map(([k, v]) => [k, block(v)]))) : null,
  ];
}

function tries(step) {
  if (!step.tries.length) return null;
  const rows = step.tries.map((t) => [
    String(t.attempt),
    badge(t.outcome),
    when(t.started_at),
    duration(t.duration_seconds),
    t.error ? el("span", { class: "error", text: `${t.error_type || "error"}: ${t.error}` }) : "",
  ]);
  return section("Attempts", table(["#", "Outcome", "Started", "Time", "Error"], rows));
}

function modelCalls(step) {
  if (!step.model_calls.length) return null;
  return section(
    "Model calls",
    step.model_calls.map((call) =>
      el(
        "div",
        { class: "call" },
        el("div", {
          class: "muted",
          text: `${call.model}${call.agent ? ` (${call.agent})` : ""} · turn ${call.turn ?? "–"} · ${call.input_tokens} in / ${call.output_tokens} out · ${cost(call.cost_usd)} · ${duration(call.latency_seconds)}${call.estimated ? " · estimated" : ""}`,
        }),
        call.reply && call.reply.content ? block(call.reply.content) : null,
      ),
    ),
  );
}

function toolCalls(step) {
  if (!step.tool_calls.length) return null;
  return section(
    "Tool calls",
    step.tool_calls.map((call) =>
      el(
        "div",
        { class: "call" },
        el("div", {}, el("strong", { text: call.tool }), " ", badge(call.ok === null ? "running" : call.ok ? "succeeded" : "failed"), " ", duration(call.duration_seconds)),
        block(call.arguments),
        call.error ? el("pre", { class: "value error", text: call.error }) : null,
        call.result !== null ? block(call.result) : null,
      ),
    ),
  );
}

export function makeDetails(root, runId) {
  const live = el("pre", { class: "value live-text" });
  let current = null;
  let stamp = "";

  async function show(stepId, force = false) {
    const step = await get(`/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(stepId)}`);
    const key = JSON.stringify([step.status, step.attempts, step.finished_at, step.tool_calls.length, step.model_calls.length]);
    if (!force && stepId === current && key === stamp) return;
    if (stepId !== current) live.textContent = "";
    current = stepId;
    stamp = key;
    clear(
      root,
      el("h2", {}, el("span", { class: "id", text: step.id }), " ", badge(step.status)),
      facts([
        ["kind", step.kind],
        ["attempts", step.attempts],
        ["time", duration(step.duration_seconds)],
        ["tokens", step.tokens],
        ["cost", cost(step.cost_usd)],
        ["needs", step.needs.join(", ")],
        ["parent", step.parent],
        ["reason", step.reason],
      ]),
      step.error ? section("Error", el("pre", { class: "value error", text: step.error })) : null,
      input(step),
      step.status === "running" ? section("Live", live) : null,
      step.output !== null ? section(step.truncated ? "Output (truncated)" : "Output", block(step.output, "output")) : null,
      tries(step),
      modelCalls(step),
      toolCalls(step),
      step.meta ? section("Meta", block(step.meta)) : null,
    );
  }

  return {
    show: (id) => show(id, true),
    refresh: () => (current ? show(current) : null),
    delta(stepId, text) {
      if (stepId === current) live.textContent += text;
    },
    get current() {
      return current;
    },
  };
}
