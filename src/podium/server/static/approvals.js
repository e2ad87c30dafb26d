// The approvals panel: each thing the run waits on a person for, with what they are asked. A
// step's fields, a plan or a tool call's arguments can be edited as JSON; the edit is checked
// here against the server's schema for it (server/ui.py edit-schema, or the tool's own) before
// it is sent, and only the changed fields go. Errors from either side are listed under it.
import { get, post } from "./api.js";
import { el, clear, when, pretty } from "./dom.js";
import { check, checkFields, checkPlan, parseJson } from "./schema.js";

function asked(approval) {
  if (approval.subject === "plan") return approval.input.plan;
  if (approval.subject === "tool") return approval.input.arguments || {};
  return approval.input;
}

function changed(before, after) {
  const edit = {};
  for (const [key, value] of Object.entries(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(value)) edit[key] = value;
  }
  return edit;
}

async function schemaFor(runId, approval) {
  if (approval.subject === "tool") return approval.input.schema || {};
  const path = `/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(approval.step_id)}/edit-schema`;
  return (await get(path)).schema;
}

// What to send to approve, or the problems that stop it.
function decision(approval, text, schema) {
  const { value, problems } = parseJson(text);
  if (problems.length) return { problems };
  const before = asked(approval);
  if (approval.subject === "plan") {
    const found = checkPlan(value, schema);
    const same = JSON.stringify(value) === JSON.stringify(before);
    return found.length ? { problems: found } : { body: same ? {} : { edit: value } };
  }
  if (approval.subject === "tool") {
    const found = check(value, schema);
    const edit = changed(before, value);
    return found.length ? { problems: found } : { body: Object.keys(edit).length ? { edit } : {} };
  }
  const edit = changed(before, value);
  const found = checkFields(edit, schema);
  return found.length ? { problems: found } : { body: Object.keys(edit).length ? { edit } : {} };
}

function problemList(list, problems) {
  clear(list, problems.map((p) => el("li", {}, p.path ? el("code", { text: p.path }) : null, p.path ? " " : null, p.message)));
}

function answerCard(runId, approval, base, list) {
  const spec = approval.input.input || {};
  const field = spec.choices
    ? el("select", { class: "answer" }, spec.choices.map((c) => el("option", { value: String(c), text: String(c) })))
    : el("textarea", { class: "answer", rows: 3, placeholder: spec.schema ? "a JSON value" : "your answer" });
  const send = el("button", { type: "button", class: "primary", text: "Answer" });
  send.addEventListener("click", async () => {
    let value = field.value;
    if (spec.schema) {
      const parsed = parseJson(value);
      if (parsed.problems.length) return problemList(list, parsed.problems);
      value = parsed.value;
    }
    try {
      await post(`${base}/answer`, { value });
      problemList(list, [{ path: "", message: "answered" }]);
    } catch (error) {
      problemList(list, error.problems.length ? error.problems : [error]);
    }
  });
  return [el("pre", { class: "value prompt", text: pretty(approval.input.prompt) }), field, el("div", { class: "row" }, send)];
}

function editCard(runId, approval, base, list) {
  const original = JSON.stringify(asked(approval), null, 2);
  const editor = el("textarea", { class: "editor", rows: Math.min(original.split("\n").length + 1, 24), spellcheck: "false" });
  editor.value = original;
  const reason = el("input", { type: "text", class: "reason", placeholder: "why (for a rejection)" });
  const approve = el("button", { type: "button", class: "primary approve", text: "Approve" });
  const reject = el("button", { type: "button", class: "danger reject", text: "Reject" });
  const reset = el("button", { type: "button", text: "Reset" });
  let schema = null;
  const schemaReady = schemaFor(runId, approval).then((s) => (schema = s));
  const verify = async () => {
    await schemaReady;
    const outcome = decision(approval, editor.value, schema);
    problemList(list, outcome.problems || []);
    approve.textContent = outcome.body && outcome.body.edit ? "Approve with edit" : "Approve";
    return outcome;
  };
  editor.addEventListener("input", verify);
  reset.addEventListener("click", () => {
    editor.value = original;
    verify();
  });
  approve.addEventListener("click", async () => {
    const outcome = await verify();
    if (outcome.problems) return;
    await act(approve, () => post(`${base}/approve`, outcome.body), list);
  });
  reject.addEventListener("click", () => act(reject, () => post(`${base}/reject`, { reason: reason.value }), list));
  return [editor, el("div", { class: "row" }, approve, reset, reason, reject)];
}

async function act(button, call, list) {
  button.disabled = true;
  try {
    await call();
    problemList(list, [{ path: "", message: "sent; the run goes on" }]);
    list.classList.add("ok");
  } catch (error) {
    button.disabled = false;
    problemList(list, error.problems && error.problems.length ? error.problems : [error]);
  }
}

function card(runId, approval) {
  const base = `/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(approval.step_id)}`;
  const list = el("ul", { class: "problems" });
  const body = approval.subject === "answer" ? answerCard(runId, approval, base, list) : editCard(runId, approval, base, list);
  return el(
    "article",
    { class: "approval", dataset: { step: approval.step_id, subject: approval.subject } },
    el("h3", {}, el("span", { class: "id", text: approval.step_id }), ` waits: ${approval.subject}`),
    el("p", { class: "muted", text: [approval.reason, when(approval.since)].filter(Boolean).join(" · ") }),
    ...body,
    list,
  );
}

export function makeApprovals(root, runId) {
  let shown = "";
  return {
    update(approvals) {
      const key = JSON.stringify(approvals.map((a) => [a.step_id, a.subject, a.version, a.since]));
      if (key === shown) return;
      shown = key;
      root.hidden = approvals.length === 0;
      clear(root, el("h2", { text: `Waiting for you (${approvals.length})` }), approvals.map((a) => card(runId, a)));
    },
  };
}
