// Messages waiting in each Celery queue (every priority level counted).
import { api } from "../api.js";
import { clear, empty, errorBox, h, loading, table } from "../dom.js";

export function mountQueues(main) {
  const body = h("div", { class: "panel" }, loading("Reading the broker"));
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Queues"), h("span", { class: "muted small" }, "refreshed every 3 s")), body);
  async function load() {
    try {
      const queues = await api("/api/_queues");
      if (!queues.length) return clear(body, empty("No queues (eager mode sends nothing to a broker)."));
      const max = Math.max(1, ...queues.map((q) => q.depth || 0));
      const rows = queues.map((q) => {
        const bar = h("span", { class: "bar" });
        bar.style.width = `${Math.round(((q.depth || 0) / max) * 100)}%`; // CSSOM: allowed by the CSP
        return h(
          "tr",
          { dataset: { queue: q.name } },
          h("td", { class: "mono" }, q.name),
          h("td", { class: "num" }, q.depth === null ? h("span", { class: "muted" }, "no such queue") : String(q.depth)),
          h("td", { class: "bar-cell", "aria-hidden": "true" }, bar),
        );
      });
      clear(body, table(["Queue", "Waiting", ""], rows, "queues-table"));
    } catch (err) {
      clear(body, errorBox(err, "Could not read the queues"));
    }
  }
  load();
  const timer = setInterval(load, 3000);
  return () => clearInterval(timer);
}
