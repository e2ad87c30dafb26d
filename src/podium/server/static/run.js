// The run page: totals, the approvals panel, the live graph, the timeline, the steps and one
// step's details, plan versions. The run's own event stream says when something changed: a
// step event recolours its step at once, and the page reads the run's state (GET /runs/ID, as
// the server folds it) at most about once a second, updating only what differs.
import { get, post, follow } from "./api.js";
import { el, clear, duration, cost, badge, throttled } from "./dom.js";
import { setLive } from "./app.js";
import { makeGraph } from "./graph.js";
import { makeGantt } from "./gantt.js";
import { makeSteps } from "./steps.js";
import { makeDetails } from "./details.js";
import { makeApprovals } from "./approvals.js";
import { makePlans } from "./plans.js";

// What a step event says about its step, shown at once; the next read of the run's state
// (which the server folds) replaces it. Other events only wait for that read.
const HINTS = {
  "step.started": (step, e) => Object.assign(step, { status: "running", started_at: e.at, finished_at: null, attempts: e.attempt }),
  "step.succeeded": (step, e) => Object.assign(step, { status: "succeeded", finished_at: e.at }),
  "step.failed": (step, e) => Object.assign(step, { status: "failed", finished_at: e.at, error: e.error }),
  "step.retrying": (step) => Object.assign(step, { status: "retrying" }),
  "step.skipped": (step, e) => Object.assign(step, { status: "skipped", finished_at: e.at }),
  "step.cancelled": (step, e) => Object.assign(step, { status: "cancelled", finished_at: e.at }),
};

function totals(run) {
  const counts = {};
  for (const step of run.steps) counts[step.status] = (counts[step.status] || 0) + 1;
  const end = run.status === "running" || run.status === "pending" || run.status === "waiting" ? Date.now() : Date.parse(run.updated_at);
  return el(
    "div",
    { class: "totals" },
    badge(run.status),
    el("span", { text: `${run.steps.length} steps` }),
    Object.entries(counts).map(([status, n]) => el("span", { class: `count s-${status}`, text: `${n} ${status}` })),
    el("span", { text: `time ${duration((end - Date.parse(run.created_at)) / 1000)}` }),
    el("span", { id: "tokens", text: `${run.tokens} tokens` }),
    el("span", { id: "cost", text: cost(run.cost_usd) }),
    run.error ? el("span", { class: "error", text: run.error }) : null,
  );
}

export function showRun(main, runId) {
  const head = el("div", { class: "run-head" });
  const problems = el("p", { class: "error" });
  const approvalsBox = el("section", { id: "approvals", class: "panel", hidden: true });
  const graphBox = el("div", { id: "graph", class: "graph" });
  const ganttCaption = el("p", { class: "muted" });
  const ganttBox = el("div", { id: "gantt", class: "gantt" });
  const stepsBox = el("div", { class: "steps" });
  const detailsBox = el("aside", { id: "details", class: "details" }, el("p", { class: "muted", text: "Pick a step in the graph, the timeline or the list." }));
  const plansBox = el("section", { id: "plans", class: "panel", hidden: true });
  const cancel = el("button", { type: "button", class: "danger", text: "Cancel run" });
  main.append(
    el("div", { class: "title" }, el("h1", {}, "Run ", el("span", { class: "id", text: runId })), cancel),
    head,
    problems,
    approvalsBox,
    el("section", { class: "panel" }, el("h2", { text: "Graph" }), graphBox),
    el("section", { class: "panel" }, el("h2", { text: "Timeline" }), ganttCaption, ganttBox),
    el("div", { class: "split" }, el("section", { class: "panel" }, el("h2", { text: "Steps" }), stepsBox), detailsBox),
    plansBox,
  );
  const details = makeDetails(detailsBox, runId);
  const select = (id) => {
    graph.select(id);
    steps.select(id);
    details.show(id).catch((error) => (problems.textContent = error.message));
  };
  const graph = makeGraph(graphBox, runId, select);
  const gantt = makeGantt(ganttBox, ganttCaption, select);
  const steps = makeSteps(stepsBox, select);
  const approvals = makeApprovals(approvalsBox, runId);
  const plans = makePlans(plansBox);

  let run = null;
  let byId = new Map();
  const repaint = throttled(async () => {
    await new Promise(requestAnimationFrame);
    if (!run) return;
    steps.update(run.steps);
    gantt.update(run.steps, run);
    graph.paint(run.steps);
  }, 250);
  function hint(event) {
    const step = run && HINTS[event.kind] && byId.get(event.step_id);
    if (!step) return;
    HINTS[event.kind](step, event);
    repaint();
  }

  // A 2,000-step run's state is half a megabyte: read at most once a second while events
  // stream (the step events show at once meanwhile), so a watcher never slows the run much.
  const refresh = throttled(async () => {
    try {
      run = await get(`/runs/${encodeURIComponent(runId)}`);
      byId = new Map(run.steps.map((s) => [s.id, s]));
      clear(head, el("p", { class: "muted", text: `workflow ${run.workflow}` }), totals(run));
      document.title = `${runId} · ${run.status} · Podium`;
      main.dataset.status = run.status;
      cancel.hidden = !["running", "pending", "waiting", "dead"].includes(run.status);
      approvals.update(run.approvals);
      steps.update(run.steps);
      gantt.update(run.steps, run);
      plans.update(run.plans);
      await graph.update(run.steps);
      await details.refresh();
      problems.textContent = "";
    } catch (error) {
      problems.textContent = error.message;
    }
  }, 1000);
  cancel.addEventListener("click", () => post(`/runs/${encodeURIComponent(runId)}/cancel`, { reason: "cancelled from the web UI" }).then(refresh, (e) => (problems.textContent = e.message)));

  graph.prefetch();
  refresh().then(() => performance.mark("podium:run-painted")); // the browser tests read it
  const stop = follow(`/runs/${encodeURIComponent(runId)}/events`, {
    onMessage(message) {
      if (message.event === "delta") {
        const { step_id, text } = JSON.parse(message.data);
        details.delta(step_id, text);
      } else {
        hint(JSON.parse(message.data));
        refresh();
      }
    },
    onState: setLive,
    onEnd: refresh,
    onMissing: () => (problems.textContent = `no run ${runId} here`),
  });
  return stop;
}
