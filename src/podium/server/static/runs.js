// The runs list: status, duration, steps, tokens and cost of the newest runs, paged with the
// API's cursor; kept live by the all-runs event stream (or by polling where the server has
// none), refreshing the page of rows at most a few times a second.
import { getJson, follow } from "./api.js";
import { el, clear, duration, cost, when, badge, throttled } from "./dom.js";
import { setLive } from "./app.js";

const PAGE = 50;
let seen = null; // the last all-runs event id this page saw

function row(run) {
  const steps = run.steps || {};
  const done = steps.succeeded || 0;
  return el(
    "tr",
    { dataset: { run: run.run_id, status: run.status } },
    el("td", {}, el("a", { href: `#/runs/${encodeURIComponent(run.run_id)}`, text: run.run_id })),
    el("td", { text: run.workflow }),
    el("td", {}, badge(run.status)),
    el("td", { text: when(run.created_at) }),
    el("td", { class: "num", text: duration(run.duration_seconds) }),
    el("td", { class: "num", text: `${done}/${steps.total ?? ""}` }),
    el("td", { class: "num", text: run.tokens ?? "" }),
    el("td", { class: "num", text: cost(run.cost_usd) }),
  );
}

export function showRuns(main) {
  const body = el("tbody");
  const more = el("button", { type: "button", hidden: true, text: "Older runs" });
  const status = el("p", { class: "muted" });
  const statuses = ["", "pending", "running", "waiting", "dead", "succeeded", "failed", "cancelled"];
  const only = el("select", { id: "status-filter" }, statuses.map((s) => el("option", { value: s, text: s || "every status" })));
  const heads = ["Run", "Workflow", "Status", "Started", "Duration", "Steps", "Tokens", "Cost"];
  main.append(
    el("div", { class: "title" }, el("h1", { text: "Runs" }), only),
    status,
    el(
      "table",
      { class: "runs", id: "runs" },
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { text: h })))),
      body,
    ),
    more,
  );
  let pages = 1;
  let cursor = null;
  const refresh = throttled(async () => {
    const rows = [];
    cursor = null;
    for (let page = 0; page < pages; page++) {
      let query = `/runs?limit=${PAGE}`;
      if (only.value) query += `&status=${encodeURIComponent(only.value)}`;
      if (cursor) query += `&cursor=${encodeURIComponent(cursor)}`;
      const { body: runs, headers } = await getJson(query);
      rows.push(...runs);
      cursor = headers.get("X-Next-Cursor");
      if (!cursor) break;
    }
    clear(body, rows.map(row));
    more.hidden = !cursor;
    const none = only.value ? `No ${only.value} runs.` : "No runs yet: start one from New run, or `podium run`.";
    status.textContent = rows.length ? "" : none;
  }, 500);
  only.addEventListener("change", () => {
    pages = 1;
    refresh();
  });
  more.addEventListener("click", () => {
    pages += 1;
    refresh();
  });
  refresh().catch((error) => (status.textContent = error.message));
  let poll = null;
  // Coming back to the list resumes the all-runs stream where it was left; a first visit starts
  // at the newest event (the list was just read), never with every run's history.
  const stop = follow(seen === null ? "/events?tail=true" : "/events", {
    forever: true,
    since: seen,
    onId: (id) => (seen = id),
    onMessage: refresh,
    onState: setLive,
    onMissing: () => {
      setLive("polling");
      poll = setInterval(refresh, 2000);
    },
  });
  return () => {
    stop();
    if (poll) clearInterval(poll);
  };
}

