// A modal that asks for one value (a reason, a JSON payload); resolves undefined on cancel.
import { h } from "../dom.js";

let dialogs = 0;

export function ask({ title, label, value = "", multiline = false, asJson = false, confirm = "OK", note = "" }) {
  return new Promise((resolve) => {
    const id = `dlg-${++dialogs}`;
    const input = multiline
      ? h("textarea", { id, rows: 6, class: "mono", spellcheck: false })
      : h("input", { id, type: "text", autocomplete: "off" });
    input.value = value;
    const error = h("p", { class: "form-error", role: "alert" });
    const form = h(
      "form",
      { class: "dialog-form" },
      h("h2", {}, title),
      note ? h("p", { class: "muted small" }, note) : null,
      h("label", { for: id }, label),
      input,
      error,
      h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => close(undefined) }, "Cancel"), h("button", { type: "submit", class: "primary" }, confirm)),
    );
    const dialog = h("dialog", { class: "dialog", "aria-label": title }, form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!asJson) return close(input.value);
      const text = input.value.trim();
      try {
        close(text === "" ? null : JSON.parse(text));
      } catch (err) {
        error.textContent = `Not valid JSON: ${err.message}`;
      }
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(undefined);
    });
    function close(result) {
      dialog.close();
      dialog.remove();
      resolve(result);
    }
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
