// The page's router: `#/` the runs list, `#/runs/ID` a run, `#/new` a new run. Each page gets
// the main element and returns a function that stops its streams when the page changes.
import { showRuns } from "./runs.js";
import { showRun } from "./run.js";
import { showNew } from "./new.js";

let leave = () => {};

function route() {
  leave();
  const main = document.getElementById("main");
  main.replaceChildren();
  const hash = location.hash.replace(/^#/, "") || "/";
  const run = hash.match(/^\/runs\/([^/]+)$/);
  if (run) leave = showRun(main, decodeURIComponent(run[1]));
  else if (hash === "/new") leave = showNew(main);
  else leave = showRuns(main);
}

export function setLive(state) {
  const badge = document.getElementById("live");
  badge.textContent = state;
  badge.dataset.state = state;
}

window.addEventListener("hashchange", route);
route();
