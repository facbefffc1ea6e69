"""Webhooks end to end: ``POST /api/_webhooks/{name}`` on a real ``flowqueue api`` process
(with FLOWQUEUE_API_TOKEN set, which the route does not need), real workers (the session's
cluster) and a real Redis. Signatures are made independently of the verifiers where the
scheme is simple (hmac per the provider's docs, the ``standardwebhooks`` package), else
with the verifiers' ``sign()``. Every refusal is checked to write nothing: no run in the
flow's index, no lifecycle event in the feed, no key (run, replay claim, idempotency)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import standardwebhooks

from flowqueue import GitHub, NoVerification, Slack, StandardWebhooks, Stripe, Webhook
from flowqueue.authoring.flows import FlowRegistry, StepDef
from flowqueue.errors import FlowDefinitionError
from tests.api_harness import ApiProcess
from tests.helpers import fake_step
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
TOKEN = "t" * 40
STANDARD_NEW = "whsec_" + base64.b64encode(b"the new standard webhooks secret").decode()
STANDARD_OLD = "whsec_" + base64.b64encode(b"the old standard webhooks secret").decode()
STRIPE = "whsec_stripe_test_secret"
GITHUB = "github test secret"
SLACK = "slack signing secret"
PAYMENTS = "whsec_" + base64.b64encode(b"payments example secret").decode()
HOOK_FLOWS = ("hook-standard", "hook-stripe", "hook-github", "hook-slack", "hook-open", "payments")


@pytest.fixture(scope="module")
def hooks(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """An API process with the webhooks' secrets and an API token set."""
    secrets = {
        "FLOWQUEUE_API_TOKEN": TOKEN,
        "FQ_TEST_STANDARD_SECRET": STANDARD_NEW,
        "FQ_TEST_STANDARD_OLD": STANDARD_OLD,
        "FQ_TEST_STRIPE_SECRET": STRIPE,
        "FQ_TEST_GITHUB_SECRET": GITHUB,
        "FQ_TEST_SLACK_SECRET": SLACK,
        "PAYMENTS_WEBHOOK_SECRET": PAYMENTS,
    }
    process = ApiProcess(cluster.env, tmp_path_factory.mktemp("hooks") / "api.log", **secrets)
    yield process
    process.stop()


# -- signing, independently of the code under test ------------------------------------------


def standard_headers(secret: str, body: bytes, msg_id: str, at: float | None = None) -> dict:
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode())
    stamp = str(int(when.timestamp()))
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}


def stripe_headers(secret: str, body: bytes, at: float | None = None) -> dict:
    stamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}


def github_headers(secret: str, body: bytes, delivery: str) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery}


def slack_headers(secret: str, body: bytes, at: float | None = None) -> dict:
    stamp = int(time.time() if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def new_body(**extra: Any) -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "test.event", **extra}).encode()


def signed(name: str, body: bytes, *, secret: str | None = None, at: float | None = None) -> dict:
    """Headers that verify ``body`` for webhook ``name`` (with another ``secret``: not)."""
    if name == "hook-standard":
        msg_id = f"msg_{uuid.uuid4().hex}"
        return standard_headers(secret or STANDARD_NEW, body, msg_id, at) | {"X-Event": "e.1"}
    if name == "hook-stripe":
        return stripe_headers(secret or STRIPE, body, at)
    if name == "hook-github":
        return github_headers(secret or GITHUB, body, str(uuid.uuid4()))
    if name == "hook-slack":
        return slack_headers(secret or SLACK, body, at)
    return {}


# -- what was written -------------------------------------------------------------------------


def written(cluster: Cluster) -> dict[str, Any]:
    """Everything a delivery could write: runs, lifecycle events in the feed, trigger
    registry records, replay and idempotency keys (of the webhooks' flows only: a schedule
    of workers/ may fire meanwhile)."""
    client = cluster.fq.coordinator.client
    keys = {
        key.decode()
        for key in client.scan_iter(f"{cluster.prefix}:*", count=1000)
        if any(part in key.decode() for part in (":run:", "webhook-seen", "idempot"))
    }
    runs = {flow: {r.run_id for r in cluster.fq.store.list_runs(flow)} for flow in HOOK_FLOWS}
    feed = [entry.id for entry in cluster.fq.store.read_feed() if entry.event.flow in HOOK_FLOWS]
    registry = [
        e for e in cluster.fq.trigger_registry.events(count=100_000) if e[1].flow in HOOK_FLOWS
    ]
    return {"runs": runs, "feed": feed, "registry": registry, "keys": keys}


def firings(cluster: Cluster, name: str) -> list[Any]:
    return [event for _, event in cluster.fq.trigger_registry.history(name, count=1000)]


def post(api: ApiProcess, name: str, body: bytes, headers: dict) -> httpx.Response:
    with api.client() as client:
        return client.post(f"/api/_webhooks/{name}", content=body, headers=headers)


def result_of(log: list[Any]) -> Any:
    return next(e for e in log if e.kind == "step.completed").data["result"]


def completed(cluster: Cluster, run_id: str) -> list[Any]:
    log = cluster.wait_terminal(run_id)
    assert log[-1].kind == "flow.completed", [e.kind for e in log]
    return log


# -- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hook-standard", "hook-stripe", "hook-github", "hook-slack"])
def test_a_correct_signature_starts_a_run_that_completes(hooks, cluster, name):
    body = new_body()
    headers = signed(name, body)
    answer = post(hooks, name, body, headers)  # no Authorization header: not needed
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["webhook"] == name
    assert accepted["flow"] == name
    assert accepted["replayed"] is False
    log = completed(cluster, accepted["run_id"])
    fired = firings(cluster, name)[0]  # newest first
    assert (fired.kind, fired.trigger, fired.flow) == ("trigger.fired", "webhook", name)
    assert fired.run_id == accepted["run_id"]
    trigger = log[0].data["trigger"]
    assert trigger["kind"] == "webhook"
    assert trigger["name"] == name
    result = result_of(log)
    if name == "hook-standard":  # headers selected: {"body", "headers"}, the id as the key
        assert result == {"body": json.loads(body), "headers": {"x-event": "e.1"}}
        assert trigger["delivery_id"] == trigger["idempotency_key"] == headers["webhook-id"]
    elif name == "hook-stripe":  # the event id in the body is the idempotency key
        assert result == "test.event"
        assert trigger["idempotency_key"] == json.loads(body)["id"]
    else:
        assert result == json.loads(body)
    if name == "hook-github":  # unsigned, so recorded but never used as a key
        assert trigger["delivery_id"] == headers["X-GitHub-Delivery"]
        assert "idempotency_key" not in trigger


def test_the_verifiers_own_sign_helpers_verify_through_the_route(hooks, cluster):
    cases = [
        ("hook-standard", StandardWebhooks(secret=STANDARD_NEW), {"delivery_id": "msg_own"}),
        ("hook-stripe", Stripe(secret=STRIPE), {}),
        ("hook-github", GitHub(secret=GITHUB), {"delivery_id": "gh-own"}),
        ("hook-slack", Slack(secret=SLACK), {}),
    ]
    for name, verifier, options in cases:
        body = new_body()
        answer = post(hooks, name, body, verifier.sign(body, **options))
        assert answer.status_code == 202, (name, answer.text)
        completed(cluster, answer.json()["run_id"])


def test_no_verification_is_explicit_and_accepts_anything(hooks, cluster):
    before = written(cluster)
    answer = post(hooks, "hook-open", b'{"anyone": true}', {})
    assert answer.status_code == 202, answer.text
    assert result_of(completed(cluster, answer.json()["run_id"])) == {"anyone": True}
    after = written(cluster)  # what the refusal tests compare sees an accepted delivery
    assert after["runs"]["hook-open"] - before["runs"]["hook-open"] == {answer.json()["run_id"]}
    assert len(after["feed"]) > len(before["feed"])
    assert len(after["registry"]) == len(before["registry"]) + 1
    assert after["keys"] - before["keys"]


def test_the_route_needs_no_token_though_the_api_has_one(hooks):
    with hooks.client() as client:
        assert client.get("/api/_flows").status_code == 401  # the token is on
        body = new_body()
        answer = client.post(
            "/api/_webhooks/hook-stripe", content=body, headers=signed("hook-stripe", body)
        )
        assert answer.status_code == 202, answer.text


def test_rotation_accepts_either_active_secret(hooks, cluster):
    for secret in (STANDARD_OLD, STANDARD_NEW):
        body = new_body()
        answer = post(hooks, "hook-standard", body, signed("hook-standard", body, secret=secret))
        assert answer.status_code == 202, answer.text
        completed(cluster, answer.json()["run_id"])
    third = "whsec_" + base64.b64encode(b"a secret nobody set").decode()
    body = new_body()
    before = written(cluster)
    answer = post(hooks, "hook-standard", body, signed("hook-standard", body, secret=third))
    assert answer.status_code == 401
    assert answer.json()["reason"] == "bad_signature"
    assert written(cluster) == before


# -- refused, writing nothing -------------------------------------------------------------------

WRONG = "whsec_" + base64.b64encode(b"wrong").decode()
HOUR = 3600.0


def refusals() -> list[Any]:
    """(webhook, body, headers for it at test time, status, reason), by case."""
    body = new_body()
    tampered = body.replace(b"test.event", b"evil.event")
    not_json = b"id=evt_1&type=form"
    off_model = json.dumps({"id": "evt_no_type"}).encode()
    big = new_body(padding="x" * 2048)  # hook-slack's max_body_bytes is 1024
    twice = b'{"id": "evt_2", "type": "payment.refunded", "type": "payment.succeeded"}'
    cases = []
    for name in ("hook-standard", "hook-stripe", "hook-github", "hook-slack"):
        cases += [
            (
                f"{name} wrong secret",
                name,
                body,
                lambda n=name: signed(n, body, secret=WRONG),
                401,
                "bad_signature",
            ),
            (f"{name} unsigned", name, body, dict, 401, "missing_header"),
            (
                f"{name} tampered body",
                name,
                tampered,
                lambda n=name: signed(n, body),
                401,
                "bad_signature",
            ),
        ]
    for name in ("hook-standard", "hook-stripe", "hook-slack"):
        cases += [
            (
                f"{name} stale",
                name,
                body,
                lambda n=name: signed(n, body, at=time.time() - HOUR),
                401,
                "stale_timestamp",
            ),
            (
                f"{name} future",
                name,
                body,
                lambda n=name: signed(n, body, at=time.time() + HOUR),
                401,
                "future_timestamp",
            ),
        ]
    cases += [
        ("not JSON", "hook-github", not_json, lambda: signed("hook-github", not_json), 422, None),
        (
            "input model",
            "hook-stripe",
            off_model,
            lambda: signed("hook-stripe", off_model),
            422,
            None,
        ),
        ("too large", "hook-slack", big, lambda: signed("hook-slack", big), 413, None),
        (
            "a key twice",  # signed, but which "type" counts depends on the parser
            "hook-github",
            twice,
            lambda: signed("hook-github", twice),
            422,
            None,
        ),
        ("unknown webhook", "no-such-hook", body, dict, 404, None),
    ]
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.parametrize(("name", "body", "headers", "status", "reason"), refusals())
def test_a_refused_delivery_writes_nothing(hooks, cluster, name, body, headers, status, reason):
    before = written(cluster)
    answer = post(hooks, name, body, headers())
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem.get("reason") == reason
    for secret in (STANDARD_NEW, STANDARD_OLD, STRIPE, GITHUB, SLACK):
        assert secret not in answer.text
    assert written(cluster) == before


def test_a_body_streamed_past_the_limit_is_refused_unread(hooks, cluster):
    before = written(cluster)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(64):
            yield b"x" * 1024

    with hooks.client() as client:
        answer = client.post(
            "/api/_webhooks/hook-slack", content=chunks(), headers=signed("hook-slack", b"")
        )
    assert answer.status_code == 413, answer.text
    assert "max_body_bytes" in answer.json()["detail"]
    assert written(cluster) == before


def test_a_webhook_whose_secret_is_unset_answers_503_naming_no_setting(api, cluster):
    """The session's API process has none of the secrets in its environment."""
    before = written(cluster)
    body = new_body()
    answer = post(api, "hook-stripe", body, signed("hook-stripe", body))
    assert answer.status_code == 503, answer.text
    assert "FQ_TEST_STRIPE_SECRET" not in answer.text
    assert "FQ_TEST_STRIPE_SECRET" in api.log_path.read_text()  # the operator's hint
    assert written(cluster) == before


@pytest.mark.parametrize("name", ["hook-standard", "hook-stripe", "hook-github", "hook-slack"])
def test_a_replayed_delivery_is_refused_naming_the_first_run(hooks, cluster, name):
    body = new_body()
    headers = signed(name, body)
    first = post(hooks, name, body, headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    completed(cluster, run_id)
    before = written(cluster)
    again = post(hooks, name, body, headers)
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["reason"] == "replayed"
    assert problem["run_id"] == run_id
    assert run_id in problem["detail"]
    assert written(cluster) == before


def test_a_retry_signed_anew_with_the_same_event_id_starts_nothing_new(hooks, cluster):
    body = new_body()
    first = post(hooks, "hook-stripe", body, signed("hook-stripe", body, at=time.time() - 30))
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    completed(cluster, run_id)
    runs, fired = written(cluster)["runs"]["hook-stripe"], len(firings(cluster, "hook-stripe"))
    retry = post(hooks, "hook-stripe", body, signed("hook-stripe", body))  # a new signature
    assert retry.status_code == 202, retry.text
    assert retry.json() == {
        "webhook": "hook-stripe",
        "flow": "hook-stripe",
        "run_id": run_id,
        "replayed": True,
    }
    assert written(cluster)["runs"]["hook-stripe"] == runs
    assert len(firings(cluster, "hook-stripe")) == fired  # nothing new fired


def test_a_manual_starts_key_never_swallows_a_webhook_delivery(hooks, cluster):
    """A manual start's Idempotency-Key and a webhook's delivery id are kept apart: a
    signed delivery whose id a manual start used starts its own run."""
    delivery = f"msg_{uuid.uuid4().hex}"
    with hooks.client() as client:
        manual = client.post(
            "/api/_flows/hook-standard/start",
            json={"manual": True},
            headers={"Idempotency-Key": delivery, "Authorization": f"Bearer {TOKEN}"},
        )
    assert manual.status_code == 201, manual.text
    body = new_body()
    answer = post(hooks, "hook-standard", body, standard_headers(STANDARD_NEW, body, delivery))
    assert answer.status_code == 202, answer.text
    assert answer.json()["replayed"] is False
    assert answer.json()["run_id"] != manual.json()["run_id"]
    log = completed(cluster, answer.json()["run_id"])
    assert log[0].data["input"]["body"] == json.loads(body)


def test_the_payments_example_books_a_signed_payment(hooks, cluster):
    event = {
        "type": "payment.succeeded",
        "data": {"payment_id": "pay_1", "amount_cents": 1250, "currency": "EUR"},
    }
    body = json.dumps(event).encode()
    headers = StandardWebhooks(secret=PAYMENTS).sign(body, delivery_id=f"msg_{uuid.uuid4().hex}")
    answer = post(hooks, "payments", body, headers)
    assert answer.status_code == 202, answer.text
    log = completed(cluster, answer.json()["run_id"])
    booked = [e for e in log if e.kind == "state.set"]
    assert booked[-1].data["value"] == {"payment_id": "pay_1", "cents": 1250}
    before = written(cluster)
    bad = json.dumps({**event, "type": "payment.stolen"}).encode()
    headers = StandardWebhooks(secret=PAYMENTS).sign(bad, delivery_id="msg_bad")
    assert post(hooks, "payments", bad, headers).status_code == 422
    assert written(cluster) == before


# -- declaring ----------------------------------------------------------------------------------


def test_a_webhook_name_starts_one_flow_from_an_entry_step():
    hook = Webhook(name="orders", verifier=NoVerification())
    with pytest.raises(FlowDefinitionError, match="not an entry step"):
        StepDef.from_task(fake_step(entry=False, subscribes=["x"], webhook=hook))
    with pytest.raises(FlowDefinitionError, match="starts one flow"):
        StepDef.from_task(fake_step(flow=["f", "g"], webhook=hook))
    with pytest.raises(FlowDefinitionError, match=r"flowqueue\.Webhook"):
        StepDef.from_task(fake_step(webhook="orders"))
    first = StepDef.from_task(fake_step(webhook=hook))
    other = StepDef.from_task(fake_step(name="t.other", step_name="other", flow="g", webhook=hook))
    with pytest.raises(FlowDefinitionError) as raised:
        FlowRegistry([first, other])
    message = str(raised.value)
    assert "'orders' is declared twice" in message
    assert "'t.first'" in message
    assert "'t.other'" in message
    registry = FlowRegistry([first])
    found = registry.webhook("orders")
    assert found is not None
    assert found[1].name == "f"
    assert registry.webhook("nope") is None
    assert registry.flow("f").info().steps[0].webhook == "orders"


def test_a_body_limit_past_the_stores_is_lowered_to_it_with_a_warning(caplog):
    from flowqueue.api.routes_webhooks import check_webhooks
    from flowqueue.settings import Settings

    hook = Webhook(name="big", verifier=NoVerification(), max_body_bytes=10**9)
    registry = FlowRegistry([StepDef.from_task(fake_step(webhook=hook))])
    settings = Settings(redis_url="redis://127.0.0.1:9/0")
    check_webhooks(registry, settings)
    assert hook.body_limit(settings) == settings.max_payload_bytes
    assert "takes bodies up to" in caplog.text
