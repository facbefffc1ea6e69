// The time-travel slider over the run's event ids: moving it asks the API for the run as
// it was just after that event (…/runs/{run}?at=ID), debounced; "Live" follows the tail.
import { api, enc, runPath } from "../api.js";
import { fmtTime, h } from "../dom.js";
import { debounce } from "../live.js";
import { summary } from "./timeline.js";

export function timeTravel({ flow, run, events, onState, onLive }) {
  const slider = h("input", { id: "tt-slider", type: "range", min: 1, max: 1, value: 1, step: 1, disabled: true });
  const where = h("output", { for: "tt-slider", class: "tt-where" }, "live");
  const live = h("button", { type: "button", class: "ghost small", onclick: goLive, disabled: true }, "Back to live");
  const el = h(
    "div",
    { class: "timetravel" },
    h("label", { for: "tt-slider", class: "sr-only" }, "Time travel: the event to see the run as of"),
    slider,
    live,
    where,
  );
  let following = true;
  let request = 0;

  const fetchAt = debounce(async (index) => {
    const event = events[index];
    if (!event) return;
    const ticket = ++request;
    try {
      const state = await api(`${runPath(flow, run)}?at=${enc(event.id)}`);
      if (ticket !== request || following) return;
      onState(state, index);
    } catch (err) {
      if (ticket === request) where.textContent = `could not load: ${err.detail || err}`;
    }
  }, 150);

  slider.addEventListener("input", () => {
    const index = Number(slider.value) - 1;
    if (index >= events.length - 1 && following) return;
    following = false;
    live.disabled = false;
    describe(index);
    fetchAt(index);
  });

  function describe(index) {
    const event = events[index];
    if (!event) return;
    where.textContent = `as of event ${index + 1} of ${events.length}: ${event.kind}${event.step ? ` ${event.step}` : ""}, ${fmtTime(event.ts)} — ${summary(event)}`;
  }

  function goLive() {
    following = true;
    request++;
    live.disabled = true;
    grown();
    onLive();
  }

  // Called when events were appended: the slider's range grows; live, it follows the end.
  function grown() {
    slider.max = String(Math.max(1, events.length));
    slider.disabled = events.length < 2;
    if (following) {
      slider.value = slider.max;
      where.textContent = events.length ? `live: ${events.length} event${events.length === 1 ? "" : "s"}` : "live";
    }
  }

  return {
    el,
    grown,
    goLive,
    isLive: () => following,
    pick(index) {
      slider.value = String(index + 1);
      slider.dispatchEvent(new Event("input"));
    },
  };
}
