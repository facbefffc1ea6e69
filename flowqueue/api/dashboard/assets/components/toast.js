// Short notices that survive page changes (a started run, a failed action).
import { h } from "../dom.js";

let box = null;

export function toast(message, { kind = "info", link = null, ms = 6000 } = {}) {
  if (!box || !box.isConnected) {
    box = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = h(
    "div",
    { class: `toast ${kind}` },
    h("span", {}, message),
    link ? h("a", { href: link.href }, link.text) : null,
    h("button", { type: "button", class: "ghost small", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
  );
  box.append(item);
  setTimeout(() => item.remove(), ms);
}
