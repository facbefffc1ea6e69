"""A broker that refuses the first step never strands a run at "running"."""

from __future__ import annotations

import pytest

from flowqueue import create_app, get_run
from flowqueue.errors import BrokerUnavailable
from flowqueue.model.reducer import RunStatus
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings


def test_a_run_whose_first_step_cannot_be_sent_ends_cancelled_with_the_reason(settings: Settings):
    app = create_app(settings.model_copy(update={"workers": "workers"}))
    app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    app.conf.task_publish_retry = False
    with pytest.raises(BrokerUnavailable, match="broker") as refused:
        flowqueue_of(app).orchestrator.start_run("example-flow", {"name": "x"})
    run_id = str(refused.value).split()[1]
    state = get_run(run_id, app=app)
    assert state.status is RunStatus.CANCELLED
    assert "could not be sent to the Celery broker" in (state.cancel_reason or "")
    flowqueue_of(app).store.close()
