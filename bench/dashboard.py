"""A 5,000-event run in the dashboard against reading the same events raw, in the same
browser, in the same run.

    .venv/bin/python bench/dashboard.py [--events 5000] [--loads 5] [--json]

One throwaway redis-server, one ``flowqueue api`` process, Debian's headless Chromium
(``/usr/bin/chromium``) driven by Playwright. A run of ``--events`` events (a start, log
lines, an end) is written straight to the store. Each load opens a fresh page and
measures with the Performance API (ms from the page's navigation start):

  (1) the dashboard: the run's page until its timeline holds every event (``ready``),
      and until the main thread is free after it (``interactive``: the end of the last
      long task, if one ends later);
  (2) the baseline: a blank page of the same origin that opens the same SSE stream with
      a bare ``EventSource`` and only counts the frames until the last one.

The ratio is dashboard ``interactive`` / baseline: what rendering the page costs on top
of receiving the data. Target: interactive within 2,000 ms.

Then live counters: the flows page stays open while runs start and complete at
``--rate`` runs a second for ``--live-seconds`` (each run's ``flow.started`` and
``flow.completed`` appended to the store, as a worker would); measured: how often the
page's completed counter changed, how far behind the store it was at the end (after
one second to settle), and the page's long tasks meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import cli, pct, verdict

from flowqueue import Settings
from flowqueue.backend.redis.embedded import EmbeddedRedis, free_port
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.model.events import NewEvent
from flowqueue.model.ids import new_run_id

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]
FLOW = "example-flow"  # workers/example_flow.py: the API knows its graph
TARGET_MS = 2_000.0
# Installed before the page's own scripts: records long tasks and when the timeline
# first says it holds every event.
WATCH = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const t of list.getEntries()) window.__longtasks.push([t.startTime, t.duration]);
}).observe({ type: "longtask", buffered: true });
window.__ready = null;
new MutationObserver(() => {
  const where = document.querySelector(".tt-where");
  if (window.__ready === null && where && where.textContent === "live: %d events") {
    window.__ready = performance.now();
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
# The baseline: the same stream, nothing drawn.
RAW = """
([url, total]) => new Promise((done, fail) => {
  let seen = 0;
  const source = new EventSource(url);
  source.onmessage = () => {
    seen += 1;
    if (seen === total) { source.close(); done(performance.now()); }
  };
  source.onerror = () => { source.close(); fail(new Error("stream failed after " + seen)); };
})
"""


def write_run(settings: Settings, total: int) -> str:
    run_id = new_run_id()
    events = [NewEvent(kind="flow.started", run_id=run_id, flow=FLOW, data={"input": {}})]
    events += [
        NewEvent(
            kind="log",
            run_id=run_id,
            flow=FLOW,
            step="step1",
            data={"level": "info", "msg": f"line {n}", "fields": {"n": n}},
        )
        for n in range(1, total - 1)
    ]
    events.append(NewEvent(kind="flow.completed", run_id=run_id, flow=FLOW, data={}))
    store = RedisEventStore(settings)
    for at in range(0, total, 1000):
        store.append_many(events[at : at + 1000])
    store.close()
    return run_id


def start_api(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQUEUE_")}
    env |= {"FLOWQUEUE_REDIS_URL": settings.redis_url, "FLOWQUEUE_KEY_PREFIX": settings.key_prefix}
    command = [str(Path(sys.executable).with_name("flowqueue")), "api", "--port", str(port)]
    api = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return api
        except httpx.TransportError:
            time.sleep(0.1)
    api.kill()
    raise SystemExit(f"flowqueue api did not start; see {log}")


def measure(base: str, run_id: str, total: int, loads: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[float]] = {"ready": [], "interactive": [], "longest_task": [], "raw": []}
    stream = f"/api/_flows/{FLOW}/runs/{run_id}/stream"
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.add_init_script(WATCH % total)
            page.goto(f"{base}/#/flows/{FLOW}/runs/{run_id}")
            deadline = time.monotonic() + 120
            while page.evaluate("window.__ready") is None:  # the CSP forbids wait_for_function
                if time.monotonic() > deadline:
                    raise SystemExit("the dashboard never showed every event")
                time.sleep(0.05)
            page.wait_for_timeout(500)  # let a long task that follows finish and be seen
            ready, tasks = page.evaluate("[window.__ready, window.__longtasks]")
            ends = [start + length for start, length in tasks]
            found["ready"].append(ready)
            found["interactive"].append(max([ready, *ends]))
            found["longest_task"].append(max([0.0, *(length for _, length in tasks)]))
            context.close()

            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/dashboard/assets/favicon.svg")  # same origin, nothing drawn
            found["raw"].append(page.evaluate(RAW, [stream, total]))
            context.close()
        browser.close()
    return found


COUNTER = f'.flow-card[data-flow="{FLOW}"] .c-completed'
# Records each change of the completed counter: (ms since navigation, its text).
WATCH_COUNTER = """
window.__counts = [];
new MutationObserver(() => {
  const cell = document.querySelector('__COUNTER__');
  const text = cell ? cell.textContent : null;
  const last = window.__counts[window.__counts.length - 1];
  if (text !== null && (!last || last[1] !== text)) window.__counts.push([performance.now(), text]);
}).observe(document, { subtree: true, childList: true, characterData: true });
""".replace("__COUNTER__", COUNTER)


def completed_runs(settings: Settings, rate: int, seconds: float) -> int:
    """Runs that start and complete, ``rate`` a second for ``seconds``; how many."""
    store = RedisEventStore(settings)
    done, began = 0, time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(elapsed * rate) + 1
        while done < due:
            run_id = new_run_id()
            store.append_many(
                [NewEvent(kind="flow.started", run_id=run_id, flow=FLOW, data={"input": {}})]
            )
            store.append_many([NewEvent(kind="flow.completed", run_id=run_id, flow=FLOW, data={})])
            done += 1
        time.sleep(0.005)
    store.close()
    return done


def live_counters(base: str, settings: Settings, rate: int, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(WATCH % 0 + WATCH_COUNTER)
        page.goto(f"{base}/#/flows")
        page.locator(COUNTER).wait_for(timeout=60_000)
        page.wait_for_timeout(1_000)
        before = int(page.locator(COUNTER).inner_text())
        began = page.evaluate("performance.now()")
        added = completed_runs(settings, rate, seconds)
        page.wait_for_timeout(1_000)
        counts, tasks = page.evaluate("[window.__counts, window.__longtasks]")
        shown = int(page.locator(COUNTER).inner_text())
        browser.close()
    during = [c for c in counts if c[0] >= began]
    busy = [length for start, length in tasks if start >= began]
    return {
        "live_rate": rate,
        "live_seconds": seconds,
        "live_runs": added,
        "live_updates_per_s": round(len(during) / (seconds + 1), 1),
        "live_behind_runs": before + added - shown,
        "live_longest_task_ms": round(max([0.0, *busy]), 1),
        "live_busy_share": round(sum(busy) / ((seconds + 1) * 1000), 3),
    }


def run(events: int, loads: int, rate: int, live_seconds: float) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        settings = Settings(redis_url=server.url, key_prefix="benchdash")
        run_id = write_run(settings, events)
        port = free_port()
        api = start_api(settings, port, Path(tmp) / "api.log")
        try:
            found = measure(f"http://127.0.0.1:{port}", run_id, events, loads)
            live = live_counters(f"http://127.0.0.1:{port}", settings, rate, live_seconds)
        finally:
            api.terminate()
            api.wait(30)
    result: dict[str, Any] = {"events": events, "loads": loads}
    for name, samples in found.items():
        result[f"{name}_p50_ms"] = round(pct(samples, 0.5), 1)
        result[f"{name}_max_ms"] = round(max(samples), 1)
    result["ratio"] = round(result["interactive_p50_ms"] / result["raw_p50_ms"], 2)
    result["target_ms"] = TARGET_MS
    return result | live


def report(result: dict[str, Any]) -> None:
    print(f"{result['events']} events, {result['loads']} loads (p50 / max, ms from navigation):")
    print(f"  dashboard ready        {result['ready_p50_ms']:>8} / {result['ready_max_ms']}")
    print(
        f"  dashboard interactive  {result['interactive_p50_ms']:>8} / "
        f"{result['interactive_max_ms']}   longest task {result['longest_task_max_ms']} ms"
    )
    print(f"  raw EventSource        {result['raw_p50_ms']:>8} / {result['raw_max_ms']}")
    print(f"  ratio (interactive / raw) {result['ratio']}")
    ok = result["interactive_max_ms"] <= TARGET_MS
    print(f"  target: interactive <= {TARGET_MS:.0f} ms: {verdict(ok)}")
    print(
        f"live counters, {result['live_runs']} runs at {result['live_rate']}/s for "
        f"{result['live_seconds']:g} s: the counter changed {result['live_updates_per_s']} "
        f"times a second, {result['live_behind_runs']} runs behind at the end; longest task "
        f"{result['live_longest_task_ms']} ms, main thread busy {result['live_busy_share']:.1%}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--rate", type=int, default=100, help="runs a second, live counters")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    cli(parser, run, report)
