// Start triggers (schedules, event triggers, webhooks): status, last and next firing,
// each one's history (paged), and pause / resume for schedules.
import { api, enc, post } from "../api.js";
import { badge, clear, empty, errorBox, fmtRelative, fmtTime, h, loading, shortId } from "../dom.js";
import { hrefFlow, hrefRun } from "../router.js";
import { toast } from "../components/toast.js";

export function mountTriggers(main) {
  const body = h("div", { class: "panel" }, loading("Loading triggers"));
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Triggers and schedules")), body);
  const open = new Set(); // names whose history is shown, kept across refreshes

  async function load() {
    try {
      const triggers = await api("/api/_triggers");
      if (!triggers.length) return clear(body, empty("No start triggers: no step declares a schedule, on_event or a webhook."));
      clear(body, h("div", { class: "table-wrap" }, h("table", { class: "triggers-table" }, h("thead", {}, h("tr", {}, ["Kind", "Name", "Flow", "Status", "Last fired", "Next", ""].map((x) => h("th", { scope: "col" }, x)))), triggers.map(row))));
    } catch (err) {
      clear(body, errorBox(err, "Could not list triggers"));
    }
  }

  function row(t) {
    const history = h("td", { colspan: 7, class: "history-cell" });
    const historyRow = h("tr", { class: "history-row", hidden: !open.has(t.name) }, history);
    const toggle = h("button", { type: "button", class: "ghost small", "aria-expanded": String(open.has(t.name)), "aria-label": `History of ${t.name}`, onclick: toggleHistory }, "History");
    const actions = [toggle];
    if (t.kind === "schedule") {
      const pause = t.status === "paused" ? "resume" : "pause";
      actions.unshift(h("button", { type: "button", class: "small", "aria-label": `${pause} ${t.name}`, onclick: () => setPaused(t.name, pause) }, pause === "pause" ? "Pause" : "Resume"));
    }
    const next = t.next_fire_times || [];
    const main = h(
      "tr",
      { dataset: { trigger: t.name } },
      h("td", {}, h("span", { class: "kind" }, t.kind)),
      h("td", {}, h("strong", {}, t.name), t.cron ? h("div", { class: "muted small mono" }, `${t.cron}${t.timezone ? ` · ${t.timezone}` : ""}`) : null),
      h("td", {}, h("a", { href: hrefFlow(t.flow) }, t.flow)),
      h("td", {}, badge(t.status)),
      h("td", {}, t.last_fired ? [fmtTime(t.last_fired.at), t.last_fired.run_id ? h("div", {}, h("a", { class: "mono small", href: hrefRun(t.flow, t.last_fired.run_id) }, shortId(t.last_fired.run_id))) : null] : h("span", { class: "muted" }, "never")),
      h("td", {}, next.length ? [fmtTime(next[0]), h("div", { class: "muted small" }, fmtRelative(next[0]))] : h("span", { class: "muted" }, t.kind === "schedule" ? "paused" : "on demand")),
      h("td", { class: "row-actions" }, actions),
    );
    if (open.has(t.name)) showHistory(t, history, null);
    function toggleHistory() {
      const show = historyRow.hidden;
      historyRow.hidden = !show;
      toggle.setAttribute("aria-expanded", String(show));
      if (show) {
        open.add(t.name);
        showHistory(t, history, null);
      } else open.delete(t.name);
    }
    return [main, historyRow];
  }

  async function showHistory(t, cell, before) {
    clear(cell, loading("Loading history"));
    const params = new URLSearchParams({ limit: "10" });
    if (before) params.set("before", before);
    try {
      const page = await api(`/api/_triggers/${enc(t.name)}/history?${params}`);
      const items = page.firings.map((f) =>
        h("li", {}, h("span", { class: "kind" }, f.kind.replace(/^trigger\./, "")), ` ${fmtTime(f.at)}`, f.tick ? h("span", { class: "muted" }, ` tick ${fmtTime(f.tick)}`) : null, f.run_id ? [" → ", h("a", { class: "mono", href: hrefRun(f.flow || t.flow, f.run_id) }, shortId(f.run_id))] : null),
      );
      clear(
        cell,
        items.length ? h("ul", { class: "plain history" }, items) : empty(before ? "No older records." : "Never fired, paused or resumed."),
        h("div", { class: "pager" }, before ? h("button", { type: "button", class: "ghost small", onclick: () => showHistory(t, cell, null) }, "Newest") : null, page.next_before ? h("button", { type: "button", class: "ghost small", onclick: () => showHistory(t, cell, page.next_before) }, "Older →") : null),
      );
    } catch (err) {
      clear(cell, errorBox(err, "Could not load the history"));
    }
  }

  async function setPaused(name, action) {
    try {
      const answer = await post(`/api/_schedules/${enc(name)}/${action}`);
      toast(`${name} is ${answer.status}${answer.changed ? "" : " (it was already)"}.`);
    } catch (err) {
      toast(`Could not ${action} ${name}: ${err.detail || err}`, { kind: "error" });
    }
    load();
  }

  load();
  const timer = setInterval(load, 15_000);
  return () => clearInterval(timer);
}
