// One flow: its graph, live counters, the start form and its runs.
import { api, flowPath } from "../api.js";
import { clear, errorBox, h, link, loading, section } from "../dom.js";
import { throttle } from "../live.js";
import { hrefFlows } from "../router.js";
import { flowGraph } from "../graph.js";
import { counters } from "../components/counters.js";
import { watchFeed } from "../components/feed.js";
import { liveBadge } from "../components/live_badge.js";
import { runsTable } from "../components/runs_table.js";
import { startForm } from "../components/start_form.js";

export function mountFlow(main, route) {
  const flow = route.flow;
  const status = liveBadge();
  const body = h("div", {}, loading("Loading the flow"));
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, link(hrefFlows(), "Flows"), " / "),
    h("div", { class: "page-head" }, h("h1", {}, flow), status.el),
    body,
  );
  let stats = null;
  let runs = null;
  let feed = null;

  api(flowPath(flow))
    .then((detail) => {
      stats = counters(detail.stats);
      runs = runsTable(flow);
      clear(
        body,
        h("div", { class: "panel counters-panel" }, stats.el),
        section("Steps", flowGraph(detail).el),
        h("div", { class: "two-col" }, section("Runs", runs.el), section("Start a run", startForm(flow, detail.input_schema))),
      );
      feed = watchFeed((event) => {
        if (event.flow !== flow) return;
        refreshStats();
        if (event.kind.startsWith("flow.")) refreshRuns();
      }, status.set);
    })
    .catch((err) => clear(body, errorBox(err, err.status === 404 ? "No such flow" : "Could not load the flow")));

  const refreshStats = throttle(async () => {
    try {
      stats.update((await api(flowPath(flow))).stats);
    } catch {
      /* the next event tries again */
    }
  }, 500);
  const refreshRuns = throttle(() => runs.refresh(), 1000);
  return () => {
    if (feed) feed.close();
    refreshStats.cancel();
    refreshRuns.cancel();
  };
}
