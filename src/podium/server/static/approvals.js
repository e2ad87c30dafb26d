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

// A human step's question: free text, one of its choices, or a JSON value its schema checks.
function answerCard(runId, approval, base, list) {
  const spec = approval.input.input ?? "text";
  const schema = typeof spec === "object" && !Array.isArray(spec.choice) ? spec : null;
  const field = Array.isArray(spec.choice)
    ? el("select", { class: "answer" }, spec.choice.map((c) => el("option", { value: JSON.stringify(c), text: String(c) })))
    : el("textarea", { class: "answer editor", rows: 3, placeholder: schema ? "a JSON value" : "your answer" });
  const send = el("button", { type: "button", class: "primary", text: "Answer" });
  send.addEventListener("click", () => {
    let value = field.value;
    if (field.localName === "select") value = JSON.parse(value);
    else if (schema) {
      const parsed = parseJson(value);
      const problems = parsed.problems.length ? parsed.problems : check(parsed.value, schema);
      if (problems.length) return problemList(list, problems);
      value = parsed.value;
    }
    return act(send, () => post(`${base}/answer`, { value }), list);
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

// Cards are kept while their approval stands, so deciding one never wipes an edit being typed
// in another.
export function makeApprovals(root, runId) {
  const title = el("h2");
  const list = el("div");
  root.append(title, list);
  let cards = new Map();
  return {
    update(approvals) {
      const next = new Map();
      for (const approval of approvals) {
        const key = JSON.stringify([approval.step_id, approval.subject, approval.version, approval.since]);
        next.set(key, cards.get(key) || card(runId, approval));
      }
      cards = next;
      root.hidden = approvals.length === 0;
      title.textContent = `Waiting for you (${approvals.length})`;
      const wanted = [...next.values()];
      if (wanted.length !== list.children.length || wanted.some((c, i) => list.children[i] !== c)) {
        list.replaceChildren(...wanted);
      }
    },
  };
}
