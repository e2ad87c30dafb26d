// Starting a run from the page: a workflow document as JSON (or a file under the server's
// workspace) and its inputs; Check asks the server to validate it (every problem with its path),
// Start submits it and opens the run.
import { post } from "./api.js";
import { el, clear } from "./dom.js";
import { parseJson } from "./schema.js";

const SAMPLE = {
  name: "hello-approval",
  steps: [
    { id: "build", kind: "shell", run: "echo built" },
    { id: "release", kind: "shell", needs: ["build"], approval: "required", run: "echo released" },
  ],
};

export function showNew(main) {
  const path = el("input", { type: "text", id: "workflow-path", placeholder: "or a file on the server, e.g. examples/approval.yaml" });
  const documentBox = el("textarea", { id: "workflow-doc", class: "editor", rows: 16, spellcheck: "false" });
  documentBox.value = JSON.stringify(SAMPLE, null, 2);
  const inputs = el("textarea", { id: "workflow-inputs", class: "editor", rows: 3, spellcheck: "false" });
  inputs.value = "{}";
  const list = el("ul", { class: "problems" });
  const checkButton = el("button", { type: "button", text: "Check" });
  const start = el("button", { type: "button", class: "primary", id: "start", text: "Start run" });
  main.append(
    el("h1", { text: "New run" }),
    el("label", {}, "Workflow (JSON)", documentBox),
    path,
    el("label", {}, "Inputs (JSON)", inputs),
    el("div", { class: "row" }, checkButton, start),
    list,
  );
  const say = (problems) => clear(list, problems.map((p) => el("li", {}, p.path ? el("code", { text: p.path }) : null, " ", p.message)));

  function body() {
    const given = parseJson(inputs.value);
    if (given.problems.length) return { problems: given.problems.map((p) => ({ ...p, path: "inputs" })) };
    if (path.value.trim()) return { body: { path: path.value.trim(), inputs: given.value } };
    const parsed = parseJson(documentBox.value);
    if (parsed.problems.length) return { problems: parsed.problems };
    return { body: { workflow: parsed.value, inputs: given.value } };
  }

  checkButton.addEventListener("click", async () => {
    const built = body();
    if (built.problems) return say(built.problems);
    const { inputs: _unused, ...what } = built.body;
    try {
      const answer = await post("/workflows/validate", what);
      say(answer.ok ? [{ path: "", message: `valid: ${answer.steps} steps` }, ...answer.warnings] : answer.problems);
    } catch (error) {
      say(error.problems.length ? error.problems : [error]);
    }
  });
  start.addEventListener("click", async () => {
    const built = body();
    if (built.problems) return say(built.problems);
    try {
      const run = await post("/runs", built.body);
      location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
    } catch (error) {
      say(error.problems.length ? error.problems : [error]);
    }
  });
  return () => {};
}
