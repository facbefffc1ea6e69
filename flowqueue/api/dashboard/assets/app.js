// The dashboard's shell: who is logged in, the navigation, and which page is mounted.
// Each page module exports mount(container, route, ctx) and returns its cleanup.

import { api, post } from "./api.js";
import { clear, h } from "./dom.js";
import { parseRoute } from "./router.js";
import { showLogin } from "./pages/login.js";
import { mountFlows } from "./pages/flows.js";
import { mountFlow } from "./pages/flow.js";
import { mountRun } from "./pages/run.js";
import { mountWorkers } from "./pages/workers.js";
import { mountQueues } from "./pages/queues.js";
import { mountTriggers } from "./pages/triggers.js";
import { toast } from "./components/toast.js";

const PAGES = {
  flows: mountFlows,
  flow: mountFlow,
  run: mountRun,
  workers: mountWorkers,
  queues: mountQueues,
  triggers: mountTriggers,
};
const NAV = [
  ["flows", "Flows", "#/flows"],
  ["workers", "Workers", "#/workers"],
  ["queues", "Queues", "#/queues"],
  ["triggers", "Triggers", "#/triggers"],
];

const root = document.getElementById("app");
const ctx = { about: { version: "", flower_url: null, auth: false } };
let cleanup = null;
let started = false;

function shell() {
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "Main" },
    NAV.map(([page, label, href]) => h("a", { href, dataset: { page } }, label)),
  );
  const right = h("div", { class: "header-right" });
  if (ctx.about.version) right.append(h("span", { class: "muted version" }, `v${ctx.about.version}`));
  if (ctx.about.auth) right.append(h("button", { type: "button", class: "ghost", onclick: logout }, "Log out"));
  const header = h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/flows" }, h("span", { class: "logo", "aria-hidden": "true" }), "flowqueue"),
    nav,
    right,
  );
  const main = h("div", { id: "page", class: "page" });
  clear(root, header, main);
  return main;
}

function route() {
  const main = document.getElementById("page");
  if (!main) return;
  if (cleanup) cleanup();
  cleanup = null;
  const current = parseRoute(location.hash);
  const top = current.page === "flow" || current.page === "run" ? "flows" : current.page;
  for (const a of document.querySelectorAll(".nav a")) {
    if (a.dataset.page === top) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.replaceChildren();
  const mount = PAGES[current.page];
  if (!mount) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "No such page. "), h("a", { href: "#/flows" }, "All flows"));
    return;
  }
  window.scrollTo(0, 0);
  cleanup = mount(main, current, ctx) || null;
}

async function logout() {
  try {
    await post("/api/_logout");
  } finally {
    location.hash = "#/flows";
    location.reload();
  }
}

function login() {
  if (cleanup) cleanup();
  cleanup = null;
  started = false;
  showLogin(root, () => start());
}

async function start() {
  try {
    ctx.about = await api("/api/_about");
    // An API that tells whether this browser's session is valid spares the 401 probe.
    if (ctx.about.auth && ctx.about.session === false) return login();
  } catch (err) {
    if (err.status === 401) return login();
    if (err.status !== 404) {
      clear(root, h("div", { class: "error-box", role: "alert" }, `The API did not answer: ${err.detail || err}`));
      return;
    }
    // An API without /api/_about: the dashboard works, with no Flower links.
  }
  started = true;
  shell();
  if (!location.hash) history.replaceState(null, "", "#/flows");
  route();
}

window.addEventListener("hashchange", () => started && route());
// A session that expires while the page is open: back to the login form, once.
window.addEventListener("fq:unauthorized", () => {
  if (started && ctx.about.auth) {
    toast("Your session expired; log in again.");
    login();
  }
});
start();
