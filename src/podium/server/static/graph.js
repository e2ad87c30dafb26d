// The run's graph as the server draws it (podium.svg: layered, plan children grouped under their
// plan), fetched when the set of steps changes and recoloured in place from each refresh: every
// node is <g id="step-ID">, and its status is a data attribute the stylesheet colours.
import { getText } from "./api.js";
import { duration } from "./dom.js";

const ALLOWED = new Set(["svg", "g", "rect", "path", "text", "title", "defs", "marker"]);

// Keep only the drawing: elements of the few kinds podium.svg writes, no event attributes or
// links. The server escapes every label already; this holds even if it did not.
function sanitize(root) {
  for (const node of [root, ...root.querySelectorAll("*")]) {
    if (!ALLOWED.has(node.localName)) {
      node.remove();
      continue;
    }
    for (const attribute of [...node.attributes]) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on") || name.endsWith("href")) node.removeAttribute(attribute.name);
    }
  }
  return root;
}

export function makeGraph(container, runId, onSelect) {
  let drawn = null;
  let nodes = new Map();
  let loading = Promise.resolve();

  // Drawn for the steps the server knew when it drew; `drawn` says which.
  async function load() {
    const text = await getText(`/runs/${encodeURIComponent(runId)}/graph.svg`);
    const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = sanitize(document.importNode(parsed.documentElement, true));
    nodes = new Map();
    for (const g of svg.querySelectorAll("g.node")) {
      const id = g.id.replace(/^step-/, "");
      g.dataset.step = id;
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      nodes.set(id, g);
    }
    container.replaceChildren(svg);
    drawn = key([...nodes.keys()]);
  }

  function paint(steps) {
    for (const step of steps) {
      const g = nodes.get(step.id);
      if (!g || g.dataset.status === step.status) continue;
      g.dataset.status = step.status;
      const label = g.querySelectorAll("text")[1];
      if (label) fit(label, stepLine(step), g.querySelector("rect"));
    }
  }

  container.addEventListener("click", (event) => {
    const g = event.target.closest && event.target.closest("g.node");
    if (g) onSelect(g.dataset.step);
  });
  container.addEventListener("keydown", (event) => {
    const g = event.target.closest && event.target.closest("g.node");
    if (g && event.key === "Enter") onSelect(g.dataset.step);
  });

  return {
    // Start drawing before the run's state is read (the page's first paint waits for both).
    prefetch() {
      loading = load();
    },
    async update(steps) {
      await loading.catch(() => (drawn = null)); // drawn again below
      if (key(steps.map((s) => s.id)) !== drawn) await (loading = load());
      paint(steps);
    },
    paint,
    select(id) {
      for (const g of container.querySelectorAll("g.node.selected")) g.classList.remove("selected");
      const g = nodes.get(id);
      if (g) g.classList.add("selected");
    },
  };
}

// The box was sized for the label it was drawn with; a longer one (a duration added) is
// squeezed into it rather than spilling out (11px text is about 6.2px a character).
function fit(label, text, rect) {
  label.textContent = text;
  const room = Number(rect?.getAttribute("width") || 0) - 10;
  if (room > 0 && text.length * 6.2 > room) {
    label.setAttribute("textLength", String(room));
    label.setAttribute("lengthAdjust", "spacingAndGlyphs");
  } else label.removeAttribute("textLength");
}

function key(ids) {
  return [...ids].sort().join("\n");
}

function stepLine(step) {
  const seconds =
    step.started_at && step.finished_at
      ? (Date.parse(step.finished_at) - Date.parse(step.started_at)) / 1000
      : null;
  return [step.kind, step.status, seconds === null ? "" : duration(seconds)]
    .filter(Boolean)
    .join(" · ");
}
