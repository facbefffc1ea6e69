// "live" / "reconnecting" / "ended": what a page's stream is doing, said in words.
import { h } from "../dom.js";

const TEXT = { live: "live", reconnecting: "reconnecting…", ended: "ended", closed: "closed", connecting: "connecting…" };

export function liveBadge() {
  const el = h("span", { class: "live-badge connecting", role: "status", title: "" }, TEXT.connecting);
  function set(state, detail) {
    el.className = `live-badge ${state}`;
    el.textContent = TEXT[state] || state;
    el.title = detail || "";
  }
  return { el, set };
}
