// The run page's panels, each re-rendered from one RunState (live, or as of an event).
import { badge, clear, empty, fmtMs, fmtRelative, fmtTime, h, json } from "../dom.js";

function flowerLink(about, step) {
  if (!about.flower_url || !step.task_id) return null;
  const base = about.flower_url.replace(/\/+$/, "");
  const task = encodeURIComponent(step.task_id).replace(/%3A/g, ":");
  return h("a", { href: `${base}/task/${task}`, target: "_blank", rel: "noopener noreferrer", "aria-label": `${step.name} in Flower` }, "Flower");
}

// failures: step name -> the data of its step.failed events, oldest first.
export function stepsPanel(about) {
  const el = h("div", { class: "steps-panel" });
  function render(state, failures) {
    const steps = Object.values(state.steps || {});
    if (!steps.length) return clear(el, empty("No step has been sent yet."));
    clear(
      el,
      steps.map((step) => {
        const failed = failures.get(step.name) || [];
        return h(
          "div",
          { class: "step-item", id: `step-${step.name}`, dataset: { step: step.name, status: step.status } },
          h(
            "div",
            { class: "step-line" },
            h("strong", {}, step.name),
            badge(step.status),
            h("span", { class: "muted small" }, [`attempt ${step.attempts || 0}`, step.duration_ms === null || step.duration_ms === undefined ? null : fmtMs(step.duration_ms), step.worker].filter(Boolean).join(" · ")),
            flowerLink(about, step),
          ),
          step.awaiting ? h("p", { class: "small" }, `Awaiting ${step.awaiting.kind}${due(step.awaiting)}`) : null,
          step.will_retry && step.next_retry_at ? h("p", { class: "small warn" }, `Retries ${fmtRelative(step.next_retry_at)}`) : null,
          failed.map((data) =>
            h(
              "details",
              { class: "attempt-error" },
              h("summary", {}, `Attempt ${data.attempt}: ${data.error ? `${data.error.type}: ${data.error.message}` : "failed"}${data.will_retry ? " (retried)" : ""}${data.reason ? ` [${data.reason}]` : ""}`),
              data.error && data.error.traceback ? h("pre", { class: "traceback" }, data.error.traceback) : h("p", { class: "muted small" }, "No traceback recorded."),
            ),
          ),
        );
      }),
    );
  }
  return { el, render };
}

function due(info) {
  const at = info.until || info.timeout_at;
  if (!at) return "";
  return `${info.until ? ", due" : ", times out"} ${fmtTime(at)} (${fmtRelative(at)})`;
}

export function awaitsPanel(onResume) {
  const el = h("div", { class: "awaits-panel" });
  function render(state, live) {
    const awaits = Object.values(state.awaits || {});
    if (!awaits.length) return clear(el, empty("Nothing pending."));
    clear(
      el,
      h(
        "ul",
        { class: "plain awaits" },
        awaits.map((info) =>
          h(
            "li",
            { dataset: { kind: info.kind } },
            h("strong", {}, info.step || "run"),
            ` waits for ${info.kind === "time" ? "a time" : info.kind === "event" ? `event ${info.name}` : "a trigger"}`,
            h("span", { class: "muted" }, due(info)),
            info.match ? h("div", { class: "mono small" }, `match ${JSON.stringify(info.match)}`) : null,
            info.info ? h("div", { class: "small" }, JSON.stringify(info.info)) : null,
            info.kind === "trigger" && info.trigger_id && live
              ? h("button", { type: "button", class: "primary small resume", "aria-label": `Resume ${info.step}`, onclick: () => onResume(info) }, "Resume…")
              : null,
          ),
        ),
      ),
    );
  }
  return { el, render };
}

export function dataPanel() {
  const el = h("div", { class: "data-panel" });
  function block(title, value) {
    return h("div", { class: "data-block" }, h("h3", {}, title), h("pre", { class: "json" }, value === undefined ? "—" : json(value)));
  }
  function render(state) {
    clear(
      el,
      block("Input", state.input),
      state.result !== null && state.result !== undefined ? block("Result", state.result) : null,
      state.error ? block("Error", state.error) : null,
      block("State", state.state || {}),
      state.emitted && state.emitted.length ? block("Emitted", state.emitted.map((e) => ({ name: e.name, step: e.step, payload: e.payload }))) : null,
    );
  }
  return { el, render };
}
