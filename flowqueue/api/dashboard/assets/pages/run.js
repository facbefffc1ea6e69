// One run, live: graph coloured by step status, the timeline over SSE, logs, steps with
// their failed attempts, pending awaits (resume a trigger), the data, time travel, and
// cancel / re-run / retry.

import { api, flowPath, post, runPath } from "../api.js";
import { badge, clear, errorBox, fmtMs, fmtTime, h, link, loading, section, shortId } from "../dom.js";
import { openStream, throttle } from "../live.js";
import { hrefFlow, hrefFlows, hrefRun } from "../router.js";
import { flowGraph } from "../graph.js";
import { ask } from "../components/dialog.js";
import { liveBadge } from "../components/live_badge.js";
import { awaitsPanel, dataPanel, stepsPanel } from "../components/run_panels.js";
import { logList, timeline } from "../components/timeline.js";
import { timeTravel } from "../components/timetravel.js";
import { toast } from "../components/toast.js";

const TERMINAL = new Set(["flow.completed", "flow.failed", "flow.cancelled"]);
const PAGE = 10000; // events per backfill request: the API's largest page
const LEVELS = ["debug", "info", "warning", "error"];

export function mountRun(main, route, ctx) {
  const { flow, run } = route;
  const live = liveBadge();
  const head = h("div", { class: "run-meta" });
  const actions = h("div", { class: "actions run-actions" });
  const body = h("div", {}, loading("Loading the run"));
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, link(hrefFlows(), "Flows"), " / ", link(hrefFlow(flow), flow), " / "),
    h("div", { class: "page-head" }, h("h1", { class: "run-title" }, "Run ", h("span", { class: "mono", title: run }, shortId(run))), h("span", { class: "run-status" }), live.el),
    head,
    actions,
    body,
  );

  const events = [];
  const known = new Set();
  const logs = [];
  let latest = null; // the live RunState
  let graph = null;
  let stream = null;
  let closed = false;
  const steps = stepsPanel(ctx.about);
  const awaits = awaitsPanel(resume);
  const data = dataPanel();
  const tl = timeline({ onPick: (index) => travel.pick(index) });
  const logView = logList();
  const level = h("select", { id: "log-level", onchange: filterLogs }, h("option", { value: "" }, "all levels"), LEVELS.map((x) => h("option", { value: x }, `${x} and up`)));
  const travel = timeTravel({ flow, run, events, onState: (state, index) => show(state, index), onLive: () => latest && show(latest, -1) });
  const asOf = h("p", { class: "as-of", hidden: true });

  // The graph and the log so far load side by side, and each shows as it comes.
  let failed = false;
  const fail = (err) => {
    if (failed) return;
    failed = true;
    clear(body, errorBox(err, err.status === 404 ? "No such run" : "Could not load the run"));
  };
  api(flowPath(flow))
    .then((detail) => {
      if (failed) return;
      graph = flowGraph(detail, { withStatus: true, onStep: focusStep });
      clear(
        body,
        section("Steps", graph.el, legend()),
        section("Time travel", travel.el, asOf),
        h("div", { class: "two-col" }, section("Step attempts", steps.el), section("Pending awaits", awaits.el)),
        section("Timeline", tl.el),
        section("Logs", h("div", { class: "toolbar" }, h("label", { for: "log-level" }, "Level"), level), logView.el),
        section("Data", data.el),
      );
      if (latest) show(latest, -1);
    })
    .catch(fail);
  // The log first, then the state: one API process reduces a long log for the state
  // while it would also be reading it out, and the timeline need not wait for that.
  const logRead = readLog().then((log) => {
    addMany(log);
    if (latest && graph && travel.isLive()) show(latest, -1); // failed attempts come from the log
  });
  const stateRead = logRead.then(() => api(runPath(flow, run))).then((state) => {
    latest = state;
    if (graph) show(state, -1);
  });
  Promise.all([stateRead, logRead])
    .then(() => {
      const last = events.length ? events[events.length - 1] : null;
      if (last && latest.last_event_id !== last.id) refresh(); // the state was read before the log's end
      if (last && TERMINAL.has(last.kind)) live.set("ended"); // nothing more will come
      else connect(last ? last.id : null);
    })
    .catch(fail);

  // The log so far in pages of JSON (one parse per page, one redraw), then the live
  // stream from after its last event: a long run shows at once, not frame by frame.
  async function readLog() {
    const log = [];
    let after = null;
    for (;;) {
      const query = `?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ""}`;
      const page = await api(`${runPath(flow, run)}/events${query}`);
      log.push(...page.events);
      if (!page.next_after || closed) return log;
      after = page.next_after;
    }
  }

  function connect(after) {
    if (closed) return;
    const url = `${runPath(flow, run)}/stream${after ? `?after=${encodeURIComponent(after)}` : ""}`;
    stream = openStream(url, { onEvent: add, onState: live.set, isLast: (event) => TERMINAL.has(event.kind) });
  }

  // Events arrive one by one (thousands at once while the backlog streams): the lists
  // redraw once per animation frame, the state is fetched at most 4 times a second.
  function add(event) {
    if (!keep(event)) return;
    redraw();
    refresh();
    if (TERMINAL.has(event.kind)) refresh();
  }

  function addMany(batch) {
    let added = 0;
    for (const event of batch) if (keep(event)) added += 1;
    if (added) redraw();
  }

  function keep(event) {
    if (known.has(event.id)) return false;
    known.add(event.id);
    events.push(event);
    if (event.kind === "log") {
      logs.push(event);
      if (passes(event)) logShown.push(event);
    }
    return true;
  }

  function redraw() {
    tl.itemsChanged();
    logView.itemsChanged();
    travel.grown();
  }

  const refresh = throttle(async () => {
    try {
      latest = await api(runPath(flow, run));
      if (travel.isLive()) show(latest, -1);
      else renderActions(latest);
    } catch {
      /* the next event tries again */
    }
  }, 250);

  let logShown = [];
  tl.setItems(events);
  logView.setItems(logShown);
  function passes(event) {
    const min = LEVELS.indexOf(level.value);
    return min < 0 || LEVELS.indexOf(String(event.data.level).toLowerCase()) >= min;
  }
  function filterLogs() {
    logShown = logs.filter(passes);
    logView.setItems(logShown);
  }

  // index: the event the state is as of (-1: live).
  function show(state, index) {
    const past = index >= 0;
    asOf.hidden = !past;
    asOf.textContent = past ? `Showing the run as it was after event ${index + 1} (${events[index].kind}); statuses below are as of then.` : "";
    main.classList.toggle("time-travelling", past);
    tl.select(past ? index : -1, past);
    if (graph) graph.setStatuses(state.steps);
    const failures = new Map();
    const upto = past ? index + 1 : events.length;
    for (let i = 0; i < upto; i++) {
      const event = events[i];
      if (event.kind !== "step.failed") continue;
      if (!failures.has(event.step)) failures.set(event.step, []);
      failures.get(event.step).push(event.data);
    }
    steps.render(state, failures);
    awaits.render(state, !past && !isTerminal(latest));
    data.render(state);
    renderHead(state);
    renderActions(latest || state);
  }

  function renderHead(state) {
    const status = main.querySelector(".run-status");
    clear(status, badge(state.status));
    const trigger = events[0] && events[0].kind === "flow.started" ? events[0].data.trigger : null;
    clear(
      head,
      h("span", {}, `Started ${fmtTime(state.started_at)}`),
      state.ended_at ? h("span", {}, ` · ended ${fmtTime(state.ended_at)} · ${fmtMs(state.duration_ms)}`) : null,
      trigger ? h("span", {}, ` · ${trigger.kind}${trigger.name ? ` ${trigger.name}` : ""}`) : null,
      ` · ${state.event_count} events`,
      state.cancel_reason ? h("span", {}, ` · cancelled: ${state.cancel_reason}`) : null,
      state.rerun_of ? h("span", {}, " · re-run of ", link(hrefRun(flow, state.rerun_of), shortId(state.rerun_of), { class: "mono" })) : null,
      state.reruns && state.reruns.length ? h("span", {}, " · re-run as ", state.reruns.map((id, i) => [i ? ", " : "", link(hrefRun(flow, id), shortId(id), { class: "mono" })])) : null,
    );
  }

  function isTerminal(state) {
    return !!state && ["completed", "failed", "cancelled"].includes(state.status);
  }

  function renderActions(state) {
    const ended = isTerminal(state);
    clear(
      actions,
      ended ? null : h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel run"),
      h("button", { type: "button", onclick: rerun }, "Re-run"),
      state.status === "failed" ? h("button", { type: "button", class: "primary", onclick: retry }, "Retry from failure") : null,
    );
  }

  async function act(what, call) {
    for (const button of actions.querySelectorAll("button")) button.disabled = true;
    try {
      return await call();
    } catch (err) {
      toast(`${what} failed: ${err.detail || err}`, { kind: "error", ms: 10000 });
      return undefined;
    } finally {
      for (const button of actions.querySelectorAll("button")) button.disabled = false;
    }
  }

  async function cancel() {
    const reason = await ask({ title: "Cancel this run?", label: "Reason (optional)", confirm: "Cancel run", note: "Its timers, waits and queued steps are dropped; a step already running finishes but is not recorded." });
    if (reason === undefined) return;
    const done = await act("Cancel", () => post(`${runPath(flow, run)}/cancel`, { reason }));
    if (done) toast("Run cancelled.");
    refresh();
  }

  async function rerun() {
    const started = await act("Re-run", () => post(`${runPath(flow, run)}/rerun`));
    if (started) location.hash = hrefRun(flow, started.run_id);
  }

  async function retry() {
    const done = await act("Retry", () => post(`${runPath(flow, run)}/retry`));
    if (!done) return;
    toast(`Retrying ${done.steps.join(", ") || "the run"}.`);
    if (stream) stream.close();
    connect(events.length ? events[events.length - 1].id : null); // the run goes on: follow it again
  }

  async function resume(info) {
    const payload = await ask({ title: `Resume ${info.step}`, label: "Payload (JSON, optional)", value: "{}", multiline: true, asJson: true, confirm: "Resume", note: info.info ? JSON.stringify(info.info) : "" });
    if (payload === undefined) return;
    const done = await act("Resume", () => post(`/api/_flows/triggers/${encodeURIComponent(info.trigger_id)}`, payload));
    if (done) toast(`Resumed ${info.step}.`);
    refresh();
  }

  function focusStep(name) {
    const item = document.getElementById(`step-${name}`);
    if (item) {
      item.scrollIntoView({ behavior: "smooth", block: "center" });
      item.classList.add("flash");
      setTimeout(() => item.classList.remove("flash"), 1200);
    }
  }

  return () => {
    closed = true;
    if (stream) stream.close();
    refresh.cancel();
  };
}

function legend() {
  return h(
    "ul",
    { class: "legend plain", "aria-label": "Step status colours" },
    ["pending", "queued", "running", "awaiting", "retrying", "completed", "failed", "cancelled"].map((x) => h("li", {}, h("span", { class: `swatch st-${x}`, "aria-hidden": "true" }), x)),
  );
}
