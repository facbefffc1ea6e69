// A flow's live counters (FlowStats): numbers updated in place, never re-rendered.
import { fmtMs, h } from "../dom.js";

const FIELDS = [
  ["running", "running"],
  ["awaiting", "awaiting"],
  ["completed", "completed"],
  ["failed", "failed"],
  ["step_ms_p50", "p50 step"],
  ["step_ms_p95", "p95 step"],
];

export function counters(stats) {
  const cells = new Map();
  const el = h(
    "dl",
    { class: "counters" },
    FIELDS.map(([key, label]) => {
      const value = h("dd", { class: `c-${key}` });
      cells.set(key, value);
      return h("div", { class: "counter" }, h("dt", {}, label), value);
    }),
  );
  function update(next) {
    for (const [key] of FIELDS) {
      const raw = next ? next[key] : undefined;
      const text = key.startsWith("step_ms") ? (raw === undefined ? "—" : fmtMs(raw)) : String(raw ?? 0);
      const cell = cells.get(key);
      if (cell.textContent !== text) cell.textContent = text;
      cell.classList.toggle("zero", !raw);
    }
  }
  update(stats);
  return { el, update };
}
