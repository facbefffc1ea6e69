"""The dashboard (``GET /``) in a real headless Chromium against real workers: flows with
live counters, a run started from the schema-built form and followed live, time travel,
resuming a trigger await, cancelling a sleeping run, and the login form when a token is
set. Every test fails on any console error, page error, CSP violation or request that
tries to leave 127.0.0.1.

Screenshots of the main pages go to ``$FLOWQUEUE_SCREENSHOTS`` (default: a
``screenshots/`` folder in pytest's tmp dir); ``docs/screenshots/`` holds copies.

Needs Debian's ``chromium`` at /usr/bin/chromium (``.ci/run`` installs it); Playwright's
own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from flowqueue import get_run, resume
from flowqueue.model.events import NewEvent
from tests.api_harness import ApiProcess
from tests.test_docs_browser import CHROMIUM, CHROMIUM_ARGS, WATCH_CSP

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="NO BROWSER: /usr/bin/chromium is missing, so the dashboard was NOT tested in "
        "a browser; install it with `apt-get install -y chromium` (.ci/run does).",
    ),
]
TOKEN = "dashboard-browser-test-token-0123456789abcdef"
WAIT_MS = 30_000  # bounds waiting only; nothing here asserts how fast anything is
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}


@pytest.fixture(scope="module")
def dashboard(cluster: Any) -> Iterator[ApiProcess]:
    """An API process on the shared cluster, with a Flower address for the task links."""
    process = ApiProcess(
        cluster.env,
        cluster.log_dir / "dashboard-api.log",
        FLOWQUEUE_FLOWER_URL="http://127.0.0.1:5555",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def secured(cluster: Any) -> Iterator[ApiProcess]:
    process = ApiProcess(
        cluster.env, cluster.log_dir / "dashboard-secured.log", FLOWQUEUE_API_TOKEN=TOKEN
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FLOWQUEUE_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("dash") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Watched:
    """A page whose console, errors, CSP violations and outbound requests are recorded."""

    page: Any
    context: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [line for line in self.console if line.startswith("error")]

    def take_refusals(self, status: int) -> None:
        """Chromium logs every 4xx answer as a console error: after provoking ``status`` on
        purpose, check that such lines, and nothing else, were logged; then forget them."""
        refused = self.console_errors()
        assert refused, f"expected the browser to log the {status} answer"
        assert all(f"status of {status}" in line for line in refused), refused
        self.console.clear()

    def assert_clean(self) -> None:
        assert self.left == []
        assert self.errors == []
        assert self.console_errors() == []
        assert self.page.evaluate("window.__csp") == []


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    opened: list[Watched] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Watched:
        context = browser.new_context(viewport=viewport)
        watched = Watched(page=context.new_page(), context=context)

        def local_only(route: Any) -> None:
            url = urlsplit(route.request.url)
            if url.scheme == "data" or url.hostname == "127.0.0.1":
                route.continue_()
            else:
                watched.left.append(route.request.url)
                route.abort()

        context.route("**/*", local_only)
        watched.page.add_init_script(WATCH_CSP)
        watched.page.on("console", lambda m: watched.console.append(f"{m.type}: {m.text}"))
        watched.page.on("pageerror", lambda e: watched.errors.append(str(e)))
        opened.append(watched)
        return watched

    yield make
    for watched in opened:
        watched.context.close()


def start(api: ApiProcess, flow: str, value: Any) -> str:
    with api.client() as client:
        answer = client.post(f"/api/_flows/{flow}/start", json=value)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["run_id"])


def run_status(api: ApiProcess, flow: str, run_id: str) -> str:
    with api.client() as client:
        return str(client.get(f"/api/_flows/{flow}/runs/{run_id}").json()["status"])


def node(page: Any, step: str) -> Any:
    return page.locator(f'svg.graph g.node[data-step="{step}"]')


def test_flows_workers_queues_and_triggers_pages(dashboard, open_page, shots):
    from playwright.sync_api import expect

    watched = open_page()
    page = watched.page
    response = page.goto(f"{dashboard.url}/")
    assert response is not None
    assert response.status == 200
    assert "script-src 'self';" in response.headers["content-security-policy"]
    card = page.locator('.flow-card[data-flow="example-flow"]')
    expect(card).to_be_visible(timeout=WAIT_MS)
    assert page.locator(".flow-card").count() >= 10  # every flow of workers/ and tests/
    expect(card.locator(".workers")).to_contain_text("Served by", timeout=WAIT_MS)
    schedule = page.locator('.flow-card[data-flow="daily_report"] .triggers')
    expect(schedule).to_contain_text("daily-report")
    expect(schedule).to_contain_text("next")
    expect(page.locator(".live-badge")).to_have_text("live", timeout=WAIT_MS)

    # The counters follow the lifecycle feed: a run started elsewhere shows up.
    completed = card.locator("dd.c-completed")
    before = int(completed.inner_text())
    start(dashboard, "example-flow", {"name": "feed"})
    expect(completed).not_to_have_text(str(before), timeout=WAIT_MS)
    expect(card.locator("dd.c-step_ms_p50")).not_to_have_text("—", timeout=WAIT_MS)
    page.fill("#flow-filter", "example")
    expect(page.locator(".flow-card:visible")).to_have_count(1)
    page.fill("#flow-filter", "")
    page.locator("#flow-filter").blur()
    page.screenshot(path=shots / "flows.png")

    page.click('.nav a[data-page="workers"]')
    expect(page.locator(".workers-table tbody tr").first).to_contain_text("online", timeout=WAIT_MS)
    expect(page.locator(".workers-table")).to_contain_text("example-flow")
    page.screenshot(path=shots / "workers.png", full_page=True)

    page.click('.nav a[data-page="queues"]')
    expect(page.locator('.queues-table tr[data-queue="celery"]')).to_be_visible(timeout=WAIT_MS)

    page.click('.nav a[data-page="triggers"]')
    row = page.locator('.triggers-table tr[data-trigger="daily-report"]')
    expect(row).to_contain_text("active", timeout=WAIT_MS)
    row.get_by_role("button", name="pause daily-report").click()
    expect(row).to_contain_text("paused", timeout=WAIT_MS)
    row.get_by_role("button", name="History of daily-report").click()
    history = page.locator(".history-row:visible")
    expect(history).to_contain_text("paused", timeout=WAIT_MS)
    page.screenshot(path=shots / "triggers.png", full_page=True)
    row.get_by_role("button", name="resume daily-report").click()
    expect(row).to_contain_text("active", timeout=WAIT_MS)  # left as it was found
    watched.assert_clean()


def test_start_from_the_form_watch_it_live_and_travel_in_time(dashboard, open_page, shots):
    from playwright.sync_api import expect

    watched = open_page()
    page = watched.page
    page.goto(f"{dashboard.url}/#/flows/reminder")
    # The form is built from the input schema: Reminder(user, message, delay_seconds=2).
    expect(page.get_by_label("User")).to_be_visible(timeout=WAIT_MS)
    assert page.get_by_label("Delay Seconds").input_value() == "2"

    # Raw JSON that misses a required field: the API's 422 detail is shown as it is.
    page.check("#start-raw-toggle")
    page.fill("#start-raw", '{"user": "ann"}')
    page.click("text=Start run")
    expect(page.locator(".start-form .form-error")).to_contain_text("message", timeout=WAIT_MS)
    expect(page.locator(".start-form .form-error")).to_contain_text("422")
    watched.take_refusals(422)

    page.uncheck("#start-raw-toggle")
    page.get_by_label("User").fill("ann")
    page.get_by_label("Message").fill("water the plants")
    page.get_by_label("Delay Seconds").fill("1.5")
    page.screenshot(path=shots / "flow.png", full_page=True)
    page.click("text=Start run")

    page.wait_for_url(re.compile(r"#/flows/reminder/runs/"), timeout=WAIT_MS)
    run_id = page.url.rsplit("/", 1)[-1]
    # Live: the entry step is seen sleeping, then both steps complete, with no reload.
    expect(node(page, "send_reminder")).to_have_attribute(
        "data-status", "awaiting", timeout=WAIT_MS
    )
    expect(node(page, "follow_up")).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    expect(node(page, "send_reminder")).to_have_attribute("data-status", "completed")
    expect(page.locator(".run-status .badge")).to_have_text("completed", timeout=WAIT_MS)
    assert run_status(dashboard, "reminder", run_id) == "completed"
    expect(page.locator(".vlist[aria-label='Run timeline']")).to_contain_text("flow.completed")
    expect(page.locator(".steps-panel a", has_text="Flower").first).to_have_attribute(
        "href", f"http://127.0.0.1:5555/task/{run_id}:send_reminder"
    )
    page.screenshot(path=shots / "run.png", full_page=True)

    # Time travel: back to the first event (nothing started), then forward to live.
    slider = page.locator("#tt-slider")
    slider.focus()
    page.keyboard.press("Home")
    expect(node(page, "send_reminder")).to_have_attribute("data-status", "pending", timeout=WAIT_MS)
    expect(node(page, "follow_up")).to_have_attribute("data-status", "pending")
    expect(page.locator(".as-of")).to_contain_text("after event 1 (flow.started)")
    expect(page.locator(".run-status .badge")).to_have_text("running")
    page.keyboard.press("ArrowRight")  # event 2: the entry step started
    expect(node(page, "send_reminder")).to_have_attribute("data-status", "running", timeout=WAIT_MS)
    page.screenshot(path=shots / "run-time-travel.png", full_page=True)
    page.click("text=Back to live")
    expect(node(page, "follow_up")).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    expect(page.locator(".as-of")).to_be_hidden()
    watched.assert_clean()


def test_resume_a_trigger_await_from_its_button(dashboard, open_page, shots):
    from playwright.sync_api import expect

    run_id = start(dashboard, "expense-approval", {"employee": "cy", "amount": 42.5})
    watched = open_page(PHONE)
    page = watched.page
    page.goto(f"{dashboard.url}/#/flows/expense-approval/runs/{run_id}")
    resume = page.get_by_role("button", name="Resume request_approval")
    expect(resume).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".awaits")).to_contain_text("Approve 42.50 for cy?")
    expect(node(page, "request_approval")).to_have_attribute("data-status", "awaiting")
    page.screenshot(path=shots / "run-360.png", full_page=True)

    resume.click()
    dialog = page.locator("dialog.dialog")
    dialog.locator("textarea").fill('{"approved": true, "by": "dana"}')
    dialog.get_by_role("button", name="Resume").click()
    expect(node(page, "pay_expense")).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    expect(page.locator(".run-status .badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(page.locator(".awaits-panel")).to_contain_text("Nothing pending")
    assert run_status(dashboard, "expense-approval", run_id) == "completed"
    watched.assert_clean()


def test_a_dropped_stream_resumes_with_no_gap_or_duplicate(cluster, open_page, tmp_path):
    """The API process goes away while the page follows a waiting run, the run goes on
    meanwhile, and an API process comes back on the same address: the page's EventSource
    reconnects with Last-Event-ID and ends with every event of the log, once each."""
    from playwright.sync_api import expect

    api = ApiProcess(cluster.env, tmp_path / "before.log")
    run_id = start(api, "expense-approval", {"employee": "blip", "amount": 7})
    watched = open_page()
    page = watched.page
    page.goto(f"{api.url}/#/flows/expense-approval/runs/{run_id}")
    expect(page.get_by_role("button", name="Resume request_approval")).to_be_visible(
        timeout=WAIT_MS
    )
    expect(page.locator(".live-badge")).to_have_text("live", timeout=WAIT_MS)
    api.stop()  # the blip: the stream's connection drops, and nothing answers for a while
    expect(page.locator(".live-badge")).not_to_have_text("live", timeout=WAIT_MS)
    (waiting,) = get_run(run_id, app=cluster.app).awaits.values()
    assert waiting.trigger_id is not None
    resume(waiting.trigger_id, {"approved": True, "by": "blip"}, app=cluster.app)
    log = cluster.wait_terminal(run_id)  # every event after the drop is written meanwhile
    back = ApiProcess(cluster.env, tmp_path / "after.log", port=api.port)
    try:
        where = page.locator(".tt-where")
        expect(where).to_have_text(f"live: {len(log)} events", timeout=WAIT_MS)
        expect(page.locator(".run-status .badge")).to_have_text("completed", timeout=WAIT_MS)
        last = page.locator(".vlist[aria-label='Run timeline'] .vrow").last
        expect(last).to_contain_text("flow.completed", timeout=WAIT_MS)
        expect(last).to_contain_text(str(len(log)))  # numbered as the log's last: no duplicate
    finally:
        back.stop()
    # The browser logged the cut stream and its refused reconnects; nothing else.
    blip = ("ERR_INCOMPLETE_CHUNKED_ENCODING", "ERR_CONNECTION_REFUSED")
    others = [line for line in watched.console_errors() if not any(b in line for b in blip)]
    assert others == []
    watched.console.clear()
    watched.assert_clean()


def test_cancel_a_sleeping_run_from_its_button(dashboard, open_page):
    from playwright.sync_api import expect

    run_id = start(dashboard, "nap", {"seconds": 600})
    watched = open_page()
    page = watched.page
    page.goto(f"{dashboard.url}/#/flows/nap/runs/{run_id}")
    expect(node(page, "nap")).to_have_attribute("data-status", "awaiting", timeout=WAIT_MS)
    expect(page.locator(".awaits li[data-kind='time']")).to_contain_text("due")

    page.get_by_role("button", name="Cancel run").click()
    dialog = page.locator("dialog.dialog")
    dialog.get_by_label("Reason (optional)").fill("not needed any more")
    dialog.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".run-status .badge")).to_have_text("cancelled", timeout=WAIT_MS)
    expect(node(page, "nap")).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
    expect(page.locator(".run-meta")).to_contain_text("not needed any more")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert run_status(dashboard, "nap", run_id) == "cancelled"
    watched.assert_clean()


def test_a_5000_event_timeline_keeps_few_rows_in_the_page(cluster, dashboard, open_page):
    """A long log is streamed in whole, but the timeline holds only the rows in view."""
    from playwright.sync_api import expect

    run_id, total = f"dash-long-{uuid.uuid4().hex[:12]}", 5000
    events = [NewEvent(kind="flow.started", run_id=run_id, flow="announce", data={"input": {}})]
    events += [
        NewEvent(
            kind="log",
            run_id=run_id,
            flow="announce",
            step="announce",
            data={"level": "info", "msg": f"line {n}", "fields": {}},
        )
        for n in range(1, total - 1)
    ]
    events.append(NewEvent(kind="flow.completed", run_id=run_id, flow="announce", data={}))
    for at in range(0, total, 1000):
        cluster.fq.store.append_many(events[at : at + 1000])

    watched = open_page()
    page = watched.page
    page.goto(f"{dashboard.url}/#/flows/announce/runs/{run_id}")
    expect(page.locator(".tt-where")).to_have_text(f"live: {total} events", timeout=WAIT_MS)
    timeline = page.locator(".vlist[aria-label='Run timeline']")
    expect(timeline).to_contain_text("flow.completed", timeout=WAIT_MS)  # it follows the tail
    assert timeline.locator(".vrow").count() < 60
    timeline.evaluate("el => { el.scrollTop = 0; }")
    expect(timeline.locator(".vrow").first).to_contain_text("flow.started", timeout=WAIT_MS)
    assert timeline.locator(".vrow").count() < 60
    page.select_option("#log-level", "warning")
    expect(page.locator(".vlist[aria-label='Run logs']")).to_contain_text("No log lines")
    watched.assert_clean()


def test_login_form_when_a_token_is_set(secured, open_page):
    from playwright.sync_api import expect

    with httpx.Client(base_url=secured.url, timeout=30) as anonymous:
        assert anonymous.get("/").status_code == 200  # the shell is public, the data is not
        assert anonymous.get("/api/_flows").status_code == 401
        about = anonymous.get("/api/_about").json()  # public: says to log in, no 401 probe
        assert (about["auth"], about["session"], about["flower_url"]) == (True, False, None)

    watched = open_page()
    page = watched.page
    page.goto(f"{secured.url}/")
    token = page.get_by_label("API token")
    expect(token).to_be_visible(timeout=WAIT_MS)
    token.fill("not-the-token")
    page.click("text=Log in")
    expect(page.locator(".login .form-error")).to_have_text("Wrong token.", timeout=WAIT_MS)
    watched.take_refusals(401)  # the wrong token (the page asks /api/_about, never probes)

    token.fill(TOKEN)
    page.click("text=Log in")
    expect(page.locator('.flow-card[data-flow="example-flow"]')).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".live-badge")).to_have_text("live", timeout=WAIT_MS)  # SSE: cookie
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API token")).to_be_visible(timeout=WAIT_MS)
    watched.assert_clean()  # logged out: the login form again, and no 401 on the way
