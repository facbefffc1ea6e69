"""The trigger routes and commands: ``GET /api/_triggers`` lists every start trigger
(the example's schedule with its next fire times, event triggers, webhooks), a signal's
firing is recorded in the trigger registry with the runs it started, a schedule pauses
and resumes behind the API token (recorded too), history pages by cursor, and the CLI
says the same (one line for an unknown schedule). The session's real worker and Redis,
a real API process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from flowqueue import signal
from tests.api_harness import ApiProcess
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPORT = "daily-report"  # workers/reports.py


@pytest.fixture(scope="module")
def api_with_token(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("api-triggers") / "api.log"
    process = ApiProcess(cluster.env, log, FLOWQUEUE_API_TOKEN=TOKEN)
    yield process
    process.stop()


def by_name(listing: list[dict[str, object]]) -> dict[tuple[object, object, object], dict]:
    return {(t["kind"], t["name"], t["flow"]): t for t in listing}


def test_every_start_trigger_is_listed_with_its_next_fire_times(api_with_token, cluster):
    with api_with_token.client(headers=AUTH) as http:
        listing = http.get("/api/_triggers").json()
    found = by_name(listing)
    report = found[("schedule", REPORT, "daily_report")]
    assert (report["cron"], report["timezone"], report["missed"]) == (
        "30 6 * * *",
        "Europe/Berlin",
        "catch_up_one",
    )
    # the session's worker declared it when it started (the trigger registry)
    assert report["declared_by"].startswith("w")
    assert report["declared_at"]
    nexts = [datetime.fromisoformat(t) for t in report["next_fire_times"]]
    assert len(nexts) == 3
    assert nexts == sorted(nexts)
    assert all(t.astimezone(_berlin()).strftime("%H:%M") == "06:30" for t in nexts)
    # event triggers: every flow whose entry step declares on_event (workers/signups.py)
    assert found[("event", "user.signed_up", "welcome")]["status"] == "active"
    assert found[("event", "user.signed_up", "crm-sync")]["next_fire_times"] == []


def _berlin():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


def signup() -> dict[str, str]:
    user = uuid.uuid4().hex[:8]
    return {"user_id": user, "email": f"{user}@example.com"}


def test_a_signal_that_starts_runs_records_a_firing_per_run(api_with_token, cluster):
    sent = signal("user.signed_up", signup(), app=cluster.app)
    assert set(sent.runs) == {"welcome", "crm-sync"}
    with api_with_token.client(headers=AUTH) as http:
        page = http.get("/api/_triggers/user.signed_up/history", params={"limit": 10}).json()
        listing = by_name(http.get("/api/_triggers").json())
    fired = {(f["flow"], f["run_id"]) for f in page["firings"] if f["kind"] == "trigger.fired"}
    assert set(sent.runs.items()) <= fired
    assert all(f["trigger"] == "event" for f in page["firings"])
    for flow, run_id in sent.runs.items():
        assert listing[("event", "user.signed_up", flow)]["last_fired"]["run_id"] == run_id
    # a replay of the same idempotency key starts nothing, so it records nothing
    key = uuid.uuid4().hex
    payload = signup()
    first = signal("user.signed_up", payload, idempotency_key=key, app=cluster.app)
    again = signal("user.signed_up", payload, idempotency_key=key, app=cluster.app)
    assert again.replayed
    assert again.runs == first.runs
    history = cluster.fq.trigger_registry.history("user.signed_up", count=100)
    recorded = [e.run_id for _, e in history if e.run_id in set(first.runs.values())]
    assert sorted(recorded) == sorted(first.runs.values())


def test_a_schedule_pauses_and_resumes_behind_the_token_and_history_pages(api_with_token):
    with api_with_token.client() as anonymous:
        assert anonymous.post(f"/api/_schedules/{REPORT}/pause").status_code == 401
        assert anonymous.get("/api/_triggers").status_code == 401
    with api_with_token.client(headers=AUTH) as http:
        paused = http.post(f"/api/_schedules/{REPORT}/pause").json()
        assert paused == {"name": REPORT, "status": "paused", "changed": True}
        assert http.post(f"/api/_schedules/{REPORT}/pause").json()["changed"] is False
        listed = by_name(http.get("/api/_triggers").json())[("schedule", REPORT, "daily_report")]
        assert (listed["status"], listed["next_fire_times"]) == ("paused", [])
        assert http.post(f"/api/_schedules/{REPORT}/resume").json()["status"] == "active"
        listed = by_name(http.get("/api/_triggers").json())[("schedule", REPORT, "daily_report")]
        assert listed["status"] == "active"
        assert len(listed["next_fire_times"]) == 3
        first = http.get(f"/api/_triggers/{REPORT}/history", params={"limit": 1}).json()
        assert [f["kind"] for f in first["firings"]] == ["trigger.resumed"]
        older = http.get(
            f"/api/_triggers/{REPORT}/history", params={"limit": 1, "before": first["next_before"]}
        ).json()
        assert [f["kind"] for f in older["firings"]] == ["trigger.paused"]
        missing = http.post("/api/_schedules/no-such-schedule/pause")
        assert missing.status_code == 404
        assert REPORT in missing.json()["detail"]
        assert http.get("/api/_triggers/no-such-trigger/history").status_code == 404
        bad = http.get(f"/api/_triggers/{REPORT}/history", params={"before": "nope"})
        assert bad.status_code == 422


def test_the_cli_lists_triggers_and_schedules_and_pauses_by_name(cluster):
    shown = cluster.flowqueue("schedules", "--next", "2")
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith(REPORT))
    assert "30 6 * * * (Europe/Berlin, missed: catch_up_one)" in line
    assert line.count("T04:30:00Z") + line.count("T05:30:00Z") == 2  # 06:30 Berlin, in UTC
    listed = cluster.flowqueue("triggers", "--json")
    kinds = {json.loads(line)["kind"] for line in listed.stdout.splitlines()}
    assert kinds >= {"schedule", "event"}
    assert cluster.flowqueue("schedule", "pause", REPORT).stdout.strip() == f"paused {REPORT}"
    again = cluster.flowqueue("schedule", "pause", REPORT)
    assert again.stdout.strip() == f"{REPORT} was paused already"
    assert cluster.flowqueue("schedule", "resume", REPORT).stdout.strip() == f"resumed {REPORT}"
    unknown = cluster.flowqueue("schedule", "resume", "nightly-typo")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"Error: no schedule 'nightly-typo'; known schedules: {REPORT} (GET /api/_triggers, "
        "flowqueue schedules)."
    ]
