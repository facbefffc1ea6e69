// A form built from the flow's input JSON Schema: one input per top-level property by
// type (text, number, checkbox, select for enums), a JSON textarea for arrays, nested
// objects and anything else; required fields marked. "Raw JSON" edits the whole input.

import { h } from "../dom.js";

let forms = 0;

function resolve(schema, root) {
  let node = schema || {};
  for (let depth = 0; node.$ref && depth < 10; depth++) {
    const path = node.$ref.replace(/^#\//, "").split("/");
    node = path.reduce((at, key) => (at ? at[key] : undefined), root) || {};
  }
  // Optional[X] is anyOf [X, null]: the form shows X, and empty means "not sent".
  const options = node.anyOf || node.oneOf;
  if (options) {
    const real = options.filter((o) => o.type !== "null");
    if (real.length === 1) return { ...resolve(real[0], root), title: node.title, default: node.default, description: node.description };
  }
  return node;
}

// An example value of the schema's shape, shown as a JSON field's placeholder.
function skeleton(raw, root, depth) {
  const node = resolve(raw, root);
  if (depth > 3) return null;
  if (node.default !== undefined) return node.default;
  if (Array.isArray(node.enum)) return node.enum[0];
  if (node.type === "array") return node.items ? [skeleton(node.items, root, depth + 1)] : [];
  if (node.type === "object" || node.properties) {
    const out = {};
    for (const [key, value] of Object.entries(node.properties || {})) out[key] = skeleton(value, root, depth + 1);
    return out;
  }
  return { string: "", integer: 0, number: 0, boolean: false }[node.type] ?? null;
}

function kindOf(prop) {
  if (Array.isArray(prop.enum)) return "enum";
  if (["string", "integer", "number", "boolean"].includes(prop.type)) return prop.type;
  return "json";
}

// The top-level object the form can show as fields; null when it is not one.
export function formable(schema) {
  if (!schema) return null;
  const top = resolve(schema, schema);
  if (top.type !== "object" || !top.properties) return null;
  return top;
}

export function schemaForm(schema) {
  const id = ++forms;
  const top = formable(schema);
  const required = new Set((top && top.required) || []);
  const fields = [];
  const el = h("div", { class: "schema-form" });
  if (!top) return { el, fields, read: () => ({}), top };
  for (const [name, raw] of Object.entries(top.properties)) {
    const prop = resolve(raw, schema);
    const kind = kindOf(prop);
    const inputId = `f${id}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const isRequired = required.has(name);
    const label = h("label", { for: inputId }, prop.title || name, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
    let input;
    if (kind === "enum") {
      input = h(
        "select",
        { id: inputId, name },
        isRequired ? null : h("option", { value: "" }, "(not set)"),
        prop.enum.map((value) => h("option", { value: JSON.stringify(value) }, String(value))),
      );
      if (prop.default !== undefined) input.value = JSON.stringify(prop.default);
    } else if (kind === "boolean") {
      input = h("input", { id: inputId, name, type: "checkbox" });
      input.checked = prop.default === true;
    } else if (kind === "json") {
      input = h("textarea", { id: inputId, name, rows: 3, class: "mono", spellcheck: false });
      input.placeholder = JSON.stringify(prop.default !== undefined ? prop.default : skeleton(prop, schema, 0));
    } else {
      const numeric = kind === "integer" || kind === "number";
      input = h("input", { id: inputId, name, type: numeric ? "number" : "text", step: kind === "integer" ? "1" : numeric ? "any" : undefined });
      if (prop.default !== undefined && prop.default !== null) input.value = String(prop.default);
    }
    if (isRequired) input.setAttribute("aria-required", "true");
    const hint = prop.description || (kind === "json" ? `JSON ${prop.type || "value"}` : null);
    const row = h("div", { class: `field field-${kind}` }, kind === "boolean" ? [input, label] : [label, input], hint ? h("small", { class: "muted" }, hint) : null);
    el.append(row);
    fields.push({ name, kind, input, required: isRequired });
  }

  // The input as a value; throws Error(message) naming the field that is wrong.
  function read() {
    const value = {};
    for (const field of fields) {
      const { name, kind, input } = field;
      if (kind === "boolean") {
        value[name] = input.checked;
        continue;
      }
      const text = input.value.trim();
      if (text === "") {
        if (field.required) throw new Error(`${name} is required.`);
        continue;
      }
      if (kind === "enum") value[name] = JSON.parse(input.value);
      else if (kind === "integer" || kind === "number") {
        const number = Number(text);
        if (!Number.isFinite(number)) throw new Error(`${name} must be a number.`);
        value[name] = number;
      } else if (kind === "json") {
        try {
          value[name] = JSON.parse(text);
        } catch (err) {
          throw new Error(`${name} is not valid JSON: ${err.message}`);
        }
      } else value[name] = input.value;
    }
    return value;
  }
  return { el, fields, read, top };
}
