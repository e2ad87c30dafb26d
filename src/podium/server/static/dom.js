// Building the page: every string goes in as text (textContent, attributes), never as markup,
// so a model's output or a step id is shown exactly as written and can run nothing.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") node.style.cssText = value; // CSSOM: the page's CSP allows it
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 0.001) return "<1ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

export function cost(usd) {
  if (!usd) return "$0";
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function badge(status) {
  return el("span", { class: `badge s-${status}`, text: status });
}

// At most one call of `work` at a time, and each starts at least `gap` ms (or twice what the
// last one took) after the one before ended: a burst of calls is one call, a stream of them a
// steady beat. Returns the call's promise (a deferred one resolves at once).
export function throttled(work, gap = 250) {
  let running = false;
  let pending = false;
  let timer = null;
  let ended = -Infinity;
  let took = 0;
  async function start() {
    running = true;
    pending = false;
    const begun = performance.now();
    try {
      await work();
    } finally {
      running = false;
      ended = performance.now();
      took = ended - begun;
    }
    if (pending) call();
  }
  function call() {
    if (running || timer) {
      pending = true;
      return Promise.resolve();
    }
    const wait = ended + Math.max(gap, 2 * took) - performance.now();
    if (wait <= 0) return start();
    timer = setTimeout(() => {
      timer = null;
      start();
    }, wait);
    return Promise.resolve();
  }
  return call;
}
