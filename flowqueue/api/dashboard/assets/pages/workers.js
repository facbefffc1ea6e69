// Workers from the registry: online / lost / offline, and the flows and steps each serves.
import { api } from "../api.js";
import { badge, clear, empty, errorBox, fmtRelative, fmtTime, h, loading, table } from "../dom.js";
import { hrefFlow } from "../router.js";

const ORDER = { online: 0, lost: 1, offline: 2 };

export function mountWorkers(main) {
  const body = h("div", { class: "panel" }, loading("Loading workers"));
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Workers"), h("span", { class: "muted small" }, "refreshed every 5 s")), body);

  async function load() {
    try {
      const workers = await api("/api/_workers");
      workers.sort((a, b) => (ORDER[a.status] ?? 3) - (ORDER[b.status] ?? 3) || a.hostname.localeCompare(b.hostname));
      if (!workers.length) return clear(body, empty("No worker has registered. Start one: celery -A flowqueue worker"));
      const rows = workers.map((w) =>
        h(
          "tr",
          { dataset: { worker: w.hostname } },
          h("td", {}, h("strong", {}, w.hostname), h("div", { class: "muted small" }, `pid ${w.pid ?? "?"}${w.version ? ` · v${w.version}` : ""}`)),
          h("td", {}, badge(w.status)),
          h("td", {}, `${fmtTime(w.last_seen)}`, h("div", { class: "muted small" }, fmtRelative(w.last_seen))),
          h("td", {}, w.concurrency ?? "—"),
          h("td", {}, (w.queues || []).join(", ") || "—"),
          h(
            "td",
            { class: "served" },
            Object.entries(w.flows || {}).map(([flow, steps]) => h("div", {}, h("a", { href: hrefFlow(flow) }, flow), h("span", { class: "muted" }, `: ${steps.join(", ")}`))),
          ),
        ),
      );
      clear(body, table(["Worker", "Status", "Last seen", "Concurrency", "Queues", "Flows and steps served"], rows, "workers-table"));
    } catch (err) {
      clear(body, errorBox(err, "Could not read the worker registry"));
    }
  }
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
