// A flow's runs: status filter, paging by next_before, go to a run by id, re-run on rows.
import { api, enc, flowPath, post, runPath } from "../api.js";
import { badge, clear, empty, errorBox, fmtMs, fmtTime, h, loading, shortId } from "../dom.js";
import { hrefRun } from "../router.js";
import { toast } from "./toast.js";

const STATUSES = ["running", "completed", "failed", "cancelled"];
const PAGE = 25;

export function runsTable(flow) {
  const status = h("select", { id: "runs-status", onchange: () => load(null, []) }, h("option", { value: "" }, "all"), STATUSES.map((x) => h("option", { value: x }, x)));
  const search = h("input", { id: "runs-search", type: "search", placeholder: "run id", autocomplete: "off", spellcheck: false });
  const searchMessage = h("span", { class: "form-error small", role: "alert" });
  const body = h("div", { class: "runs-body" }, loading("Loading runs"));
  const newer = h("button", { type: "button", class: "ghost", onclick: goNewer, disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "ghost", onclick: goOlder, disabled: true }, "Older →");
  const pageInfo = h("span", { class: "muted small" });
  const el = h(
    "div",
    { class: "runs" },
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "runs-status" }, "Status"),
      status,
      h(
        "form",
        { class: "inline", onsubmit: goToRun, role: "search" },
        h("label", { for: "runs-search" }, "Find run"),
        search,
        h("button", { type: "submit", class: "ghost" }, "Go"),
        searchMessage,
      ),
    ),
    body,
    h("div", { class: "pager" }, newer, pageInfo, older),
  );
  let cursors = []; // the `before` of each page shown before this one
  let current = null;
  let next = null;

  async function load(before, stack) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (before) params.set("before", before);
    if (status.value) params.set("status", status.value);
    try {
      const page = await api(`${flowPath(flow)}/runs?${params}`);
      cursors = stack;
      current = before;
      next = page.next_before;
      render(page.runs);
    } catch (err) {
      clear(body, errorBox(err, "Could not list runs"));
    }
  }

  function render(runs) {
    newer.disabled = cursors.length === 0;
    older.disabled = !next;
    pageInfo.textContent = cursors.length ? `page ${cursors.length + 1}` : "newest";
    if (!runs.length) {
      clear(body, empty(status.value ? `No ${status.value} runs.` : "No runs yet."));
      return;
    }
    const rows = runs.map((run) =>
      h(
        "tr",
        { dataset: { run: run.run_id } },
        h("td", {}, h("a", { href: hrefRun(flow, run.run_id), class: "mono", title: run.run_id }, shortId(run.run_id))),
        h("td", {}, badge(run.status)),
        h("td", {}, fmtTime(run.started_at)),
        h("td", {}, run.started_at && run.ended_at ? fmtMs(new Date(run.ended_at) - new Date(run.started_at)) : "—"),
        h("td", { class: "row-actions" }, h("button", { type: "button", class: "ghost small", "aria-label": `Re-run ${run.run_id}`, onclick: () => rerun(run.run_id) }, "Re-run")),
      ),
    );
    clear(
      body,
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "runs-table" }, h("thead", {}, h("tr", {}, ["Run", "Status", "Started", "Duration", h("span", { class: "sr-only" }, "Actions")].map((x) => h("th", { scope: "col" }, x)))), h("tbody", {}, rows)),
      ),
    );
  }

  async function rerun(runId) {
    try {
      const started = await post(`${runPath(flow, runId)}/rerun`);
      toast("Re-run started.", { link: { href: hrefRun(flow, started.run_id), text: "Open it" } });
      refresh();
    } catch (err) {
      toast(`Re-run failed: ${err.detail || err}`, { kind: "error" });
    }
  }

  function goOlder() {
    if (next) load(next, [...cursors, current]);
  }
  function goNewer() {
    const stack = cursors.slice(0, -1);
    load(cursors[cursors.length - 1] || null, stack);
  }

  async function goToRun(event) {
    event.preventDefault();
    searchMessage.textContent = "";
    const id = search.value.trim();
    if (!id) return;
    try {
      await api(`${flowPath(flow)}/runs/${enc(id)}/events?limit=1`);
      location.hash = hrefRun(flow, id);
    } catch (err) {
      searchMessage.textContent = err.status === 404 ? `No run ${id} in ${flow}.` : err.detail || String(err);
    }
  }

  // Live: only the newest page follows new runs; older pages stay put while read.
  function refresh() {
    if (cursors.length === 0) load(null, []);
  }
  load(null, []);
  return { el, refresh };
}
