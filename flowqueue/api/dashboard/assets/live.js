// Live updates: a throttle for refreshes driven by busy feeds, and EventSource wrapped to
// de-duplicate by event id (it reconnects by itself with Last-Event-ID after a blip).

export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  const run = () => {
    timer = null;
    last = Date.now();
    fn();
  };
  const throttled = () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(run, wait);
  };
  throttled.cancel = () => clearTimeout(timer);
  return throttled;
}

export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

// onEvent(event) once per id; onState("live" | "reconnecting" | "ended", detail).
// EventSource reconnects by itself after a dropped connection (with Last-Event-ID), but
// gives up on an answer that is not a stream (a 503 while Redis is away): then this opens
// a new one after the last id seen, backing off up to 30 s.
export function openStream(url, { onEvent, onState = () => {}, isLast = () => false }) {
  const seen = new Set();
  let source = null;
  let lastId = null;
  let closed = false;
  let retryMs = 2000;
  let timer = null;

  function connect() {
    const target = new URL(url, location.origin);
    if (lastId) target.searchParams.set("after", lastId);
    source = new EventSource(target.pathname + target.search, { withCredentials: true });
    source.onopen = () => {
      retryMs = 2000;
      onState("live");
    };
    source.onmessage = (message) => {
      const id = message.lastEventId;
      if (id && seen.has(id)) return;
      if (id) {
        seen.add(id);
        lastId = id;
      }
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours: ignore rather than break the stream
      }
      onEvent(event, id);
      if (isLast(event)) close("ended");
    };
    // The server says why its source failed; the browser reconnects after `retry:`.
    source.addEventListener("problem", (message) => {
      let detail = "the stream's source failed";
      try {
        detail = JSON.parse(message.data).detail || detail;
      } catch {
        /* keep the generic text */
      }
      onState("reconnecting", detail);
    });
    source.onerror = () => {
      if (closed) return;
      if (source.readyState !== EventSource.CLOSED) return onState("reconnecting", "connection lost; reconnecting");
      onState("reconnecting", `the stream was refused; trying again in ${retryMs / 1000} s`);
      timer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    };
  }

  function close(state = "closed") {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    if (source) source.close();
    onState(state);
  }
  connect();
  return { close };
}
