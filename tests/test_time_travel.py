"""Time travel over a run's log: ``GET …/runs/{run}?at=EVENT_ID`` and
``flowqueue show RUN --at EVENT_ID`` give the run as it was just after that event (the
dashboard's slider), the same state the reducer's ``state_at`` gives; an id that is not
one, or comes before the run began, is refused with a clear answer. The session's real
worker, API process and Redis."""

from __future__ import annotations

import pytest

from flowqueue import start_flow
from flowqueue.model.reducer import state_at

pytestmark = pytest.mark.e2e


def test_each_event_id_gives_the_run_as_it_was_then(api, cluster):
    run = start_flow("example-flow", {"name": "Ada"}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert log[-1].kind == "flow.completed"
    seen = []
    with api.client() as http:
        for event in log:
            answer = http.get(f"/api/_flows/example-flow/runs/{run}", params={"at": event.id})
            assert answer.status_code == 200, answer.text
            state = answer.json()
            assert state == state_at(log, event.id).model_dump(mode="json")
            assert state["last_event_id"] == event.id
            seen.append(state["status"])
        assert seen[0] == "running"
        assert seen[-1] == "completed"
        assert set(seen[:-1]) == {"running"}  # never completed before its last event
        before = http.get(f"/api/_flows/example-flow/runs/{run}", params={"at": "1-0"})
        assert before.status_code == 422
        assert "comes before the run's first event" in before.json()["detail"]
        bad = http.get(f"/api/_flows/example-flow/runs/{run}", params={"at": "yesterday"})
        assert bad.status_code == 422
    first = cluster.flowqueue("show", run, "--at", log[0].id)
    assert first.returncode == 0, first.stderr
    assert "status   running" in first.stdout.splitlines()
    last = cluster.flowqueue("show", run, "--at", log[-1].id, "--json")
    assert '"status": "completed"' in last.stdout
    refused = cluster.flowqueue("show", run, "--at", "1-0")
    assert refused.returncode == 1
    assert "comes before the run's first event" in refused.stderr
