// The timeline: one bar per step that started, from its started_at to its finished_at (or now),
// in start order, so steps that ran at once overlap. Drawn on a canvas the height of the view
// and only for the rows in view, so a 2,000-step run scrolls as fast as a 5-step one.
import { duration } from "./dom.js";

const ROW = 18;
const AXIS = 18; // the time scale, drawn at the top of the view over the rows
const LABEL = 180;
const COLOURS = {
  running: "#2563eb",
  waiting: "#ca8a04",
  retrying: "#ea580c",
  interrupted: "#a21caf",
  succeeded: "#16a34a",
  failed: "#dc2626",
  skipped: "#78716c",
  cancelled: "#57534e",
};

// The most steps running at one moment (a sweep over starts and ends).
export function parallelism(bars) {
  const points = [];
  for (const bar of bars) points.push([bar.start, 1], [bar.end, -1]);
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, change] of points) most = Math.max(most, (now += change));
  return most;
}

export function makeGantt(scroller, caption, onSelect) {
  const spacer = document.createElement("div");
  const canvas = document.createElement("canvas");
  canvas.className = "gantt-canvas";
  scroller.append(canvas, spacer);
  let bars = [];
  let span = [0, 1];

  function draw() {
    const width = scroller.clientWidth;
    const height = scroller.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
      canvas.width = width * ratio;
      canvas.height = height * ratio;
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    const first = Math.floor(scroller.scrollTop / ROW);
    const last = Math.min(bars.length, first + Math.ceil(height / ROW) + 1);
    const scale = (width - LABEL - 8) / Math.max(span[1] - span[0], 1);
    axis(g, width, height, scale, "lines");
    for (let index = first; index < last; index++) {
      const bar = bars[index];
      const y = AXIS + index * ROW - scroller.scrollTop;
      g.fillStyle = "#3f3f46";
      g.fillText(bar.id.length > 28 ? bar.id.slice(0, 27) + "…" : bar.id, 4, y + ROW / 2, LABEL - 8);
      g.fillStyle = COLOURS[bar.status] || "#a1a1aa";
      const x = LABEL + (bar.start - span[0]) * scale;
      g.fillRect(x, y + 3, Math.max((bar.end - bar.start) * scale, 2), ROW - 6);
    }
    axis(g, width, height, scale, "labels");
  }

  // Five ticks from the run's start: light lines down the view under the bars, then their
  // labels in a band over the rows.
  function axis(g, width, height, scale, part) {
    if (part === "labels") {
      g.fillStyle = "#ffffff";
      g.fillRect(0, 0, width, AXIS);
    }
    const seconds = (span[1] - span[0]) / 1000;
    for (let tick = 0; tick <= 4; tick++) {
      const x = LABEL + (tick / 4) * seconds * 1000 * scale;
      if (part === "lines") {
        g.fillStyle = "#e4e4e7";
        g.fillRect(x, AXIS, 1, height - AXIS);
        continue;
      }
      g.fillStyle = "#71717a";
      g.textAlign = tick === 4 ? "right" : tick === 0 ? "left" : "center";
      g.fillText(tick === 0 ? "0" : duration((tick / 4) * seconds), x, AXIS / 2);
    }
    g.textAlign = "left";
  }

  scroller.addEventListener("scroll", () => requestAnimationFrame(draw), { passive: true });
  window.addEventListener("resize", () => requestAnimationFrame(draw));
  canvas.addEventListener("click", (event) => {
    const index = Math.floor((event.offsetY - AXIS + scroller.scrollTop) / ROW);
    if (bars[index]) onSelect(bars[index].id);
  });

  return {
    update(steps, run) {
      const now = Date.now();
      const live = ["pending", "running", "waiting"].includes(run.status);
      bars = steps
        .filter((s) => s.started_at)
        .map((s) => ({
          id: s.id,
          status: s.status,
          start: Date.parse(s.started_at),
          end: s.finished_at ? Date.parse(s.finished_at) : now,
        }))
        .sort((a, b) => a.start - b.start || a.id.localeCompare(b.id));
      const last = bars.reduce((most, b) => Math.max(most, b.end), 0);
      span = [Date.parse(run.created_at), live ? now : Math.max(last, Date.parse(run.updated_at))];
      scroller.style.height = `${AXIS + Math.min(Math.max(bars.length, 3) * ROW + 2, 300)}px`;
      spacer.style.height = `${Math.max(AXIS + bars.length * ROW - scroller.clientHeight, 0)}px`;
      const wall = (span[1] - span[0]) / 1000;
      caption.textContent = bars.length
        ? `${bars.length} steps started over ${duration(wall)}; at most ${parallelism(bars)} at once`
        : "No step has started yet.";
      requestAnimationFrame(draw);
    },
  };
}
