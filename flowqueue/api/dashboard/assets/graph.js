// A flow's steps as an SVG graph laid out by dagre (vendor/dagre, loaded before the app
// as a classic script: it sets window.dagre). Steps are nodes, events are labelled edges
// from the emitting step to each subscriber; entry steps hang off a start dot, joins
// (steps that wait for several events) and declared awaits are tagged.

import { h, s } from "./dom.js";

let graphs = 0;
const canvas = document.createElement("canvas");

function textWidth(text, font) {
  const context = canvas.getContext("2d");
  context.font = font;
  return context.measureText(text).width;
}

// StepInfo may describe its declared awaits (await_before / await_after) as text or as
// an object with a kind; older APIs say nothing, and then nothing is shown.
function awaitText(value) {
  if (!value) return null;
  if (typeof value === "string") return value;
  return value.kind || value.type || JSON.stringify(value);
}

function tagsOf(step, flow) {
  const tags = [];
  if (step.entry) tags.push("entry");
  for (const name of step.on_event || []) tags.push(`on ${name}`);
  if (step.webhook) tags.push(`webhook ${step.webhook}`);
  const incoming = new Set(flow.edges.filter((e) => e.target === step.name).map((e) => e.event));
  if ((step.subscribes || []).length > 1) tags.push(`join of ${step.subscribes.length}`);
  for (const name of step.subscribes || []) if (!incoming.has(name)) tags.push(`on ${name}`);
  const before = awaitText(step.await_before);
  const after = awaitText(step.await_after);
  if (before) tags.push(`waits before: ${before}`);
  if (after) tags.push(`waits after: ${after}`);
  return tags;
}

export function flowGraph(flow, { withStatus = false, onStep = null } = {}) {
  const dagre = window.dagre;
  const wrap = h("div", { class: "graph-wrap" });
  if (!dagre) {
    wrap.append(h("p", { class: "error-box" }, "The graph library did not load."));
    return { el: wrap, setStatuses() {} };
  }
  const id = ++graphs;
  const narrow = window.innerWidth < 640;
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: narrow ? "TB" : "LR", nodesep: 24, ranksep: narrow ? 44 : 70, edgesep: 12, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  const lines = withStatus ? 3 : 2;
  for (const step of flow.steps) {
    const tags = tagsOf(step, flow);
    const tagLine = tags.join(" · ");
    const width = Math.max(120, textWidth(step.name, "600 13px system-ui, sans-serif"), textWidth(tagLine, "11px system-ui, sans-serif")) + 28;
    g.setNode(step.name, { width, height: 18 + lines * 16, step, tagLine });
  }
  const entries = flow.steps.filter((step) => step.entry);
  if (entries.length) g.setNode("\u0000start", { width: 16, height: 16, start: true });
  for (const step of entries) g.setEdge("\u0000start", step.name, { width: 0, height: 0 }, "start");
  for (const edge of flow.edges) {
    const width = textWidth(edge.event, "11px system-ui, sans-serif") + 10;
    g.setEdge(edge.source, edge.target, { label: edge.event, width, height: 16, labelpos: "c" }, edge.event);
  }
  dagre.layout(g);
  const { width, height } = g.graph();

  const marker = `fq-arrow-${id}`;
  const svg = s(
    "svg",
    {
      class: "graph",
      width: Math.ceil(width),
      height: Math.ceil(height),
      viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
      role: "img",
      "aria-label": `Steps of ${flow.name}`,
    },
    s("defs", {}, s("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))),
  );
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  const nodeLayer = s("g", { class: "nodes" });
  svg.append(edgeLayer, nodeLayer, labelLayer);

  for (const e of g.edges()) {
    const edge = g.edge(e);
    edgeLayer.append(s("path", { d: curve(edge.points), class: e.name === "start" ? "edge start" : "edge", "marker-end": `url(#${marker})` }));
    if (edge.label) {
      labelLayer.append(
        s("rect", { x: edge.x - edge.width / 2, y: edge.y - 8, width: edge.width, height: 16, rx: 4, class: "edge-label-bg" }),
        s("text", { x: edge.x, y: edge.y + 4, class: "edge-label", "text-anchor": "middle", text: edge.label }),
      );
    }
  }
  const nodes = new Map();
  for (const name of g.nodes()) {
    const node = g.node(name);
    if (node.start) {
      nodeLayer.append(s("circle", { cx: node.x, cy: node.y, r: 7, class: "start-dot" }, s("title", { text: "run starts here" })));
      continue;
    }
    const step = node.step;
    const x = node.x - node.width / 2;
    const y = node.y - node.height / 2;
    const classes = ["node", step.entry && "entry", (step.subscribes || []).length > 1 && "join", (step.await_before || step.await_after) && "awaits"];
    const group = s("g", { class: classes.filter(Boolean).join(" "), "data-step": step.name });
    group.append(s("rect", { x, y, width: node.width, height: node.height, rx: 8, class: "box" }));
    if ((step.subscribes || []).length > 1) {
      group.append(s("rect", { x: x + 3, y: y + 3, width: node.width - 6, height: node.height - 6, rx: 6, class: "join-ring" }));
    }
    group.append(s("text", { x: node.x, y: y + 20, "text-anchor": "middle", class: "node-name", text: step.name }));
    group.append(s("text", { x: node.x, y: y + 36, "text-anchor": "middle", class: "node-tags", text: node.tagLine || "step" }));
    const status = withStatus ? s("text", { x: node.x, y: y + 52, "text-anchor": "middle", class: "node-status", text: "not started" }) : null;
    if (status) group.append(status);
    group.append(s("title", { text: `${step.name}${node.tagLine ? ` (${node.tagLine})` : ""}` }));
    if (onStep) {
      group.setAttribute("tabindex", "0");
      group.setAttribute("role", "button");
      group.setAttribute("aria-label", `Step ${step.name}`);
      group.addEventListener("click", () => onStep(step.name));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onStep(step.name);
        }
      });
    }
    nodeLayer.append(group);
    nodes.set(step.name, { group, status, classes: classes.filter(Boolean).join(" ") });
  }
  wrap.append(svg);

  // steps: RunState.steps (name -> StepState); a step not in it has not been reached.
  function setStatuses(steps) {
    for (const [name, node] of nodes) {
      const state = steps ? steps[name] : null;
      const status = state ? state.status : "pending";
      node.group.setAttribute("class", `${node.classes} st-${status}`);
      node.group.dataset.status = status;
      if (node.status) {
        const attempts = state && state.attempts > 1 ? ` · attempt ${state.attempts}` : "";
        node.status.textContent = state ? `${status}${attempts}` : "not started";
      }
    }
  }
  return { el: wrap, setStatuses };
}

// A smooth path through dagre's points (quadratic segments between midpoints).
function curve(points) {
  if (!points || !points.length) return "";
  let d = `M ${points[0].x} ${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const next = points[i + 1];
    d += ` Q ${p.x} ${p.y} ${(p.x + next.x) / 2} ${(p.y + next.y) / 2}`;
  }
  const last = points[points.length - 1];
  return `${d} L ${last.x} ${last.y}`;
}
