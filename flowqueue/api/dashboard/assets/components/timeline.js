// The run's events, one fixed-height row each, in a virtualised list.
import { fmtTime, h } from "../dom.js";
import { virtualList } from "./vlist.js";

const ROW = 30;

function brief(value, max = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? "" : text.length > max ? `${text.slice(0, max)}…` : text;
}

export function summary(event) {
  const d = event.data || {};
  switch (event.kind) {
    case "flow.started":
      return `${(d.trigger && d.trigger.kind) || "manual"} start, input ${brief(d.input, 100)}`;
    case "flow.completed":
      return `completed in ${d.duration_ms ?? "?"} ms${d.result !== undefined && d.result !== null ? `, result ${brief(d.result, 100)}` : ""}`;
    case "flow.failed":
      return `${d.error ? `${d.error.type}: ${d.error.message}` : "failed"}${d.step ? ` (step ${d.step})` : ""}`;
    case "flow.cancelled":
      return d.reason ? `reason: ${d.reason}` : "cancelled";
    case "flow.rerun":
      return `re-run as ${d.rerun}`;
    case "flow.retried":
      return `retried: ${(d.steps || []).join(", ")}`;
    case "step.started":
      return `attempt ${d.attempt}${d.worker ? ` on ${d.worker}` : ""}`;
    case "step.completed":
      return `${d.duration_ms ?? "?"} ms, result ${brief(d.result, 100)}`;
    case "step.failed":
      return `attempt ${d.attempt}: ${d.error ? `${d.error.type}: ${d.error.message}` : "failed"}${d.will_retry ? " (will retry)" : ""}`;
    case "step.retry":
      return `attempt ${d.attempt} in ${d.delay_s} s`;
    case "step.await.time":
      return `sleeps until ${fmtTime(d.until)}`;
    case "step.await.event":
      return `waits for ${d.name}${d.match ? ` ${brief(d.match, 60)}` : ""}`;
    case "step.await.trigger":
      return `waits for trigger${d.info ? ` ${brief(d.info, 80)}` : ""}`;
    case "step.resumed":
      return `resumed${d.result !== undefined && d.result !== null ? ` with ${brief(d.result, 80)}` : ""}`;
    case "step.await.timeout":
      return `await ${d.key} timed out`;
    case "emit":
      return `${d.name} ${brief(d.payload, 100)}`;
    case "log":
      return `[${d.level}] ${d.msg}${d.fields && Object.keys(d.fields).length ? ` ${brief(d.fields, 80)}` : ""}`;
    case "state.set":
      return `${d.key} = ${brief(d.value, 100)}`;
    case "state.delete":
      return `${d.key} deleted`;
    case "step.once":
      return `${d.name} recorded ${brief(d.result, 80)}`;
    default:
      return brief(d);
  }
}

const family = (kind) => kind.split(".").slice(0, 2).join("-").replace(/\./g, "-");

export function timeline({ onPick }) {
  const list = virtualList({
    rowHeight: ROW,
    label: "Run timeline",
    emptyText: "No events yet.",
    renderRow(event, index) {
      return h(
        "div",
        { class: `tl-row k-${family(event.kind)}`, title: `${event.id} ${event.kind}`, onclick: () => onPick(index) },
        h("span", { class: "tl-n muted" }, String(index + 1)),
        h("span", { class: "tl-time mono" }, fmtTime(event.ts)),
        h("span", { class: "tl-kind" }, event.kind),
        h("span", { class: "tl-step" }, event.step || ""),
        h("span", { class: "tl-text" }, summary(event)),
      );
    },
  });
  return list;
}

export function logList() {
  return virtualList({
    rowHeight: ROW,
    label: "Run logs",
    emptyText: "No log lines at this level.",
    renderRow(event) {
      const d = event.data || {};
      return h(
        "div",
        { class: `log-row lv-${d.level}` },
        h("span", { class: "tl-time mono" }, fmtTime(event.ts)),
        h("span", { class: "lv" }, d.level),
        h("span", { class: "tl-step" }, event.step || ""),
        h("span", { class: "tl-text" }, `${d.msg}${d.fields && Object.keys(d.fields).length ? `  ${JSON.stringify(d.fields)}` : ""}`),
      );
    },
  });
}
