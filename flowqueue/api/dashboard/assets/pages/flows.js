// Every flow: live counters, its start triggers with their next firing, and the workers
// serving it. Counters refresh on the lifecycle feed, throttled: a flood of runs costs
// at most two GET /api/_flows a second.

import { api } from "../api.js";
import { badge, clear, empty, errorBox, fmtRelative, fmtTime, h, loading } from "../dom.js";
import { throttle } from "../live.js";
import { hrefFlow } from "../router.js";
import { counters } from "../components/counters.js";
import { watchFeed } from "../components/feed.js";
import { liveBadge } from "../components/live_badge.js";

export function mountFlows(main) {
  const status = liveBadge();
  const filter = h("input", { id: "flow-filter", type: "search", placeholder: "Filter flows", oninput: applyFilter });
  const list = h("div", { class: "cards" }, loading("Loading flows"));
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Flows"), status.el),
    h("div", { class: "toolbar" }, h("label", { for: "flow-filter", class: "sr-only" }, "Filter flows by name"), filter),
    list,
  );
  const cards = new Map();
  let triggers = [];
  let workers = [];

  async function load() {
    const [flows, trig, work] = await Promise.allSettled([api("/api/_flows"), api("/api/_triggers"), api("/api/_workers")]);
    if (flows.status === "rejected") {
      clear(list, errorBox(flows.reason, "Could not list flows"));
      return;
    }
    triggers = trig.status === "fulfilled" ? trig.value : [];
    workers = work.status === "fulfilled" ? work.value : [];
    clear(list);
    if (!flows.value.length) list.append(empty("No flows: no worker module with @step is imported (FLOWQUEUE_WORKERS)."));
    for (const flow of flows.value) {
      const card = flowCard(flow, triggers, workers);
      cards.set(flow.name, card);
      list.append(card.el);
    }
    applyFilter();
  }

  const refresh = throttle(async () => {
    try {
      for (const flow of await api("/api/_flows")) cards.get(flow.name)?.update(flow.stats);
    } catch {
      /* the next event retries; the badge shows the feed's state */
    }
  }, 500);

  function applyFilter() {
    const needle = filter.value.trim().toLowerCase();
    for (const [name, card] of cards) card.el.hidden = needle !== "" && !name.toLowerCase().includes(needle);
  }

  load();
  const feed = watchFeed(() => refresh(), status.set);
  const slow = setInterval(refresh, 15_000); // awaits resolve without feed events too
  return () => {
    feed.close();
    refresh.cancel();
    clearInterval(slow);
  };
}

function flowCard(flow, triggers, workers) {
  const stats = counters(flow.stats);
  const mine = triggers.filter((t) => t.flow === flow.name);
  const serving = workers.filter((w) => w.flows && w.flows[flow.name]);
  const steps = flow.steps.length;
  const el = h(
    "article",
    { class: "card flow-card", dataset: { flow: flow.name } },
    h("h2", {}, h("a", { href: hrefFlow(flow.name) }, flow.name)),
    h("p", { class: "muted small" }, `${steps} step${steps === 1 ? "" : "s"} · ${flow.edges.length} edge${flow.edges.length === 1 ? "" : "s"}`),
    stats.el,
    mine.length
      ? h(
          "ul",
          { class: "plain triggers" },
          mine.map((t) =>
            h(
              "li",
              {},
              h("span", { class: "kind" }, t.kind),
              ` ${t.name} `,
              t.status === "paused" ? badge("paused") : null,
              t.next_fire_times && t.next_fire_times.length
                ? h("span", { class: "muted" }, ` next ${fmtTime(t.next_fire_times[0])} (${fmtRelative(t.next_fire_times[0])})`)
                : null,
            ),
          ),
        )
      : null,
    h(
      "p",
      { class: "workers small" },
      serving.length
        ? ["Served by ", serving.map((w, i) => [i ? ", " : "", h("span", { class: `worker-name st-${w.status}` }, w.hostname)])]
        : h("span", { class: "warn" }, "No worker serves it"),
    ),
  );
  return { el, update: stats.update };
}
