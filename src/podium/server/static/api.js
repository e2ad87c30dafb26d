// The API from the page: JSON calls with the bearer token (kept in sessionStorage, asked for
// when the server answers 401) and event streams read with fetch, so they carry the token too
// (EventSource cannot send headers). A stream resumes with Last-Event-ID after a drop.

const TOKEN_KEY = "podium.token";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.type = error.type || "error";
    this.problems = error.problems || [];
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

let asking = null;

// Ask for a token once for every caller waiting on a 401; resolves when one was given.
function askToken(message) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = message || "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const given = input.value.trim();
        if (given) sessionStorage.setItem(TOKEN_KEY, given);
        input.value = "";
        asking = null;
        resolve();
      },
      { once: true },
    );
  });
  if (!dialog.open) dialog.showModal();
  return asking;
}

async function send(path, options) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    const body = await response.json().catch(() => null);
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken(new ApiError(401, body).message);
  }
}

export async function getJson(path) {
  const response = await send(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return { body, headers: response.headers };
}

export async function get(path) {
  return (await getJson(path)).body;
}

export async function getText(path) {
  const response = await send(path, {});
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return response.text();
}

export async function post(path, body) {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

// One SSE message block ("id: 3\ndata: {...}") as {id, event, data}; null for a comment.
function parseBlock(block) {
  const message = { id: null, event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") message.data.push(value);
    else if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
  }
  return message.data.length ? { ...message, data: message.data.join("\n") } : null;
}

// A parser of an event stream read in chunks of any size: each call takes the next chunk and
// returns the messages it completed. Lines end in \n, \r\n or \r, a \r\n split between
// two chunks included.
export function sseParser() {
  let buffer = "";
  let carried = ""; // a chunk's last "\r", whose "\n" may open the next chunk
  return (chunk) => {
    let text = carried + chunk;
    carried = text.endsWith("\r") ? "\r" : "";
    if (carried) text = text.slice(0, -1);
    buffer += text.replace(/\r\n?/g, "\n");
    const messages = [];
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const message = parseBlock(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (message !== null) messages.push(message);
    }
    return messages;
  };
}

// Follow `path`'s event stream: onMessage({id, event, data}) for each message. A dropped
// connection resumes after the last id seen; a stream the server ends calls onEnd and stops
// unless `forever`. Returns a stop function. onState("live" | "retrying" | "ended").
// `since`: resume after this id (a stream this tab followed before); onId(id) for each id seen.
export function follow(path, { onMessage, onEnd, onState = () => {}, onMissing, onId = () => {}, since = null, forever = false }) {
  const stop = new AbortController();
  let lastId = since;
  let delay = 500;
  async function once() {
    const extra = { Accept: "text/event-stream" };
    if (lastId !== null) extra["Last-Event-ID"] = lastId;
    const response = await send(path, { headers: extra, signal: stop.signal });
    if (response.status === 404 && onMissing) return "missing";
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    onState("live");
    delay = 500;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parse = sseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      for (const message of parse(value)) {
        if (message.id !== null) onId((lastId = message.id));
        onMessage(message);
      }
    }
  }
  (async () => {
    while (!stop.signal.aborted) {
      let how;
      try {
        how = await once();
      } catch (error) {
        if (stop.signal.aborted) return;
        how = "error";
      }
      if (how === "missing") return onMissing();
      if (how === "ended" && !forever) {
        onState("ended");
        return onEnd && onEnd();
      }
      onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => stop.abort();
}
