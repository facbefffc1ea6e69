// The login form: POST /api/_login {token} sets an HttpOnly session cookie; then the
// dashboard loads as usual (the token itself is never stored by the page).

import { post } from "../api.js";
import { clear, h } from "../dom.js";

export function showLogin(root, onDone) {
  const input = h("input", {
    id: "login-token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const message = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    { class: "login panel", onsubmit: onSubmit },
    h("h1", {}, h("span", { class: "logo", "aria-hidden": "true" }), "flowqueue"),
    h("p", { class: "muted" }, "This API needs its token (FLOWQUEUE_API_TOKEN)."),
    h("label", { for: "login-token" }, "API token"),
    input,
    message,
    submit,
  );
  clear(root, h("div", { class: "login-wrap" }, form));
  input.focus();

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    message.textContent = "";
    try {
      await post("/api/_login", { token: input.value });
      input.value = "";
      onDone();
    } catch (err) {
      message.textContent =
        err.status === 401
          ? "Wrong token."
          : err.status === 429
            ? `Too many attempts: ${err.detail}`
            : err.detail || String(err);
      submit.disabled = false;
      input.select();
    }
  }
}
