// The one way the dashboard talks to the API: same-origin fetch with the session cookie,
// the CSRF header on every request (the API requires it on POSTs that ride on the cookie),
// and problem+json errors turned into ApiError with the server's `detail`.

export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.problem = problem;
  }
}

// The server's clock, from the Date header: live feeds start "from now" in its terms.
let serverOffsetMs = 0;
export function serverNowMs() {
  return Date.now() + serverOffsetMs;
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json", "X-Requested-With": "flowqueue" };
  const init = { method, headers, credentials: "same-origin", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the API did not answer (network error); retrying may help.");
  }
  const date = response.headers.get("Date");
  if (date) serverOffsetMs = Date.parse(date) - Date.now();
  if (response.status === 401 && !path.startsWith("/api/_login")) {
    window.dispatchEvent(new CustomEvent("fq:unauthorized"));
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      /* not JSON: the status says enough */
    }
    const detail = problem && (problem.detail || problem.title);
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail), problem);
  }
  if (response.status === 204) return null;
  return response.json();
}

export const post = (path, body) => api(path, { method: "POST", body });

// Path segments are user data (flow names, run ids): always encoded.
export const enc = encodeURIComponent;
export const flowPath = (flow) => `/api/_flows/${enc(flow)}`;
export const runPath = (flow, run) => `${flowPath(flow)}/runs/${enc(run)}`;
