// "Start a run": the schema-built form, or raw JSON; the API's 422 detail is shown as is.
import { flowPath, post } from "../api.js";
import { h, json } from "../dom.js";
import { hrefRun } from "../router.js";
import { schemaForm } from "./schema_form.js";
import { toast } from "./toast.js";

export function startForm(flow, schema) {
  const form = schemaForm(schema);
  const hasFields = form.fields.length > 0;
  const raw = h("textarea", { id: "start-raw", name: "raw", rows: 8, class: "mono", spellcheck: false });
  raw.value = hasFields ? "" : "{}";
  const rawRow = h("div", { class: "field" }, h("label", { for: "start-raw" }, "Input (JSON)"), raw);
  const rawToggle = h("input", { id: "start-raw-toggle", type: "checkbox", onchange: switchMode });
  const error = h("div", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Start run");
  const el = h(
    "form",
    { class: "start-form", onsubmit: onSubmit, novalidate: true },
    hasFields ? h("div", { class: "field field-boolean toggle" }, rawToggle, h("label", { for: "start-raw-toggle" }, "Edit as raw JSON")) : null,
    form.el,
    rawRow,
    error,
    h("div", { class: "actions" }, submit, schema ? null : h("span", { class: "muted small" }, "This flow declares no input model: any JSON value.")),
  );
  rawRow.hidden = hasFields;

  function switchMode() {
    error.textContent = "";
    if (rawToggle.checked) {
      try {
        raw.value = json(form.read());
      } catch {
        raw.value = raw.value || "{}";
      }
    }
    form.el.hidden = rawToggle.checked;
    rawRow.hidden = !rawToggle.checked;
  }

  async function onSubmit(event) {
    event.preventDefault();
    error.textContent = "";
    let value;
    try {
      if (!rawRow.hidden) {
        const text = raw.value.trim();
        value = text === "" ? null : JSON.parse(text);
      } else value = form.read();
    } catch (err) {
      error.textContent = err instanceof SyntaxError ? `Not valid JSON: ${err.message}` : err.message;
      return;
    }
    submit.disabled = true;
    try {
      const started = await post(`${flowPath(flow)}/start`, value);
      for (const warning of started.warnings || []) toast(warning, { kind: "warn", ms: 12000 });
      location.hash = hrefRun(flow, started.run_id);
    } catch (err) {
      error.textContent = err.status === 422 ? `Refused (422): ${err.detail}` : err.detail || String(err);
    } finally {
      submit.disabled = false;
    }
  }
  return el;
}
