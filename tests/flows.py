"""Flows used only by the tests (workers load them with FLOWQUEUE_WORKERS=workers,tests.flows)."""

from __future__ import annotations

import time
from typing import Any

from flowqueue import AwaitTimeout, FlowContext, NonRetriableError, Retry, step


@step(flow="slow", entry=True, emits=["slow.done"])
def slow_step(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    ctx.log.info("slow step begins", attempt=ctx.attempt)
    time.sleep(float(input.get("seconds", 3)))
    ctx.emit("slow.done", {"attempt": ctx.attempt})
    return {"attempt": ctx.attempt}


@step(flow="slow", subscribes=["slow.done"])
def after_slow(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["slow.done"]


@step(flow=["audit-a", "audit-b"], entry=True)
def audit(ctx: FlowContext, input: dict[str, Any]) -> str:
    """One step serving two flows."""
    return f"{ctx.flow}:{input.get('what')}"


class Boom(Exception):
    pass


class Permanent(Exception):
    retriable = False


@step(flow="always-fails", entry=True, retry=Retry(attempts=2, delay=0.1, jitter=False))
def always_fails(ctx: FlowContext, input: dict[str, Any]) -> None:
    raise Boom(f"attempt {ctx.attempt}")


@step(flow="non-retriable", entry=True, retry=Retry(attempts=5, delay=0.1))
def gives_up(ctx: FlowContext, input: dict[str, Any]) -> None:
    if input.get("attribute"):
        raise Permanent("bad account number")
    raise NonRetriableError("card reported stolen")


@step(flow="too-slow", entry=True, soft_time_limit=0.5, retry=Retry(attempts=1))
def too_slow(ctx: FlowContext, input: dict[str, Any]) -> None:
    time.sleep(3)


@step(flow="late-retry", entry=True, retry=Retry(attempts=2, delay=3, jitter=False))
def late_retry(ctx: FlowContext, input: dict[str, Any]) -> int:
    if ctx.attempt == 1:
        raise Boom("first attempt fails; the retry is 3 s away")
    return ctx.attempt


# -- awaits ------------------------------------------------------------------------------


@step(flow="nap", entry=True)
def nap(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    started = ctx.once("started", time.time)  # recorded once, replayed after the sleep
    ctx.log.info("going to sleep")  # written once: not again while replaying
    ctx.sleep(float(input.get("seconds", 1)))
    return {"started": started}


@step(flow="wait-event", entry=True)
def wait_event(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    ctx.log.info("waiting", name=input["name"])
    try:
        payload = ctx.wait_for_event(
            input["name"], match=input.get("match"), timeout=input.get("timeout")
        )
    except AwaitTimeout:
        return {"timeout": True}
    return {"payload": payload}


@step(flow="wait-trigger", entry=True)
def wait_trigger(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = ctx.wait_for_trigger(timeout=input.get("timeout"), info={"q": "go on?"})
    except AwaitTimeout:
        return {"timeout": True}
    return {"payload": payload}


@step(flow="two-waits", entry=True)
def two_waits(ctx: FlowContext, input: dict[str, Any]) -> list[Any]:
    first = ctx.wait_for_event("first", match={"k": input["k"]})
    ctx.log.info("between the waits")
    second = ctx.wait_for_event("second", match={"k": input["k"]})
    return [first, second]


@step(flow="announce", entry=True)
def announce(ctx: FlowContext, input: dict[str, Any]) -> None:
    ctx.emit(input["name"], input.get("payload"))


@step(flow="fickle", entry=True)
def fickle(ctx: FlowContext, input: dict[str, Any]) -> None:
    """Reaches a different await on replay: a non-determinism error fails the run."""
    if not ctx.state.get("slept"):
        ctx.state.set("slept", True)
        ctx.sleep(0.1)
    else:
        ctx.wait_for_event("never")


# -- limits ------------------------------------------------------------------------------


@step(flow="echo", entry=True, emits=["echo.value"])
def echo(ctx: FlowContext, input: Any) -> Any:
    """Writes its input through every way a step has: state, a log field, an emission
    and its result (the round-trip tests read each back)."""
    ctx.state.set("value", input)
    ctx.log.info("echo", value=input)
    ctx.emit("echo.value", input)
    return input


# -- redeliveries (tests/test_guarantees.py) -----------------------------------------------


@step(
    flow="patient-retry",
    entry=True,
    retry=Retry(attempts=3, backoff="fixed", delay=3600, max_delay=3600, jitter=False),
)
def patient_retry(ctx: FlowContext, input: dict[str, Any]) -> int:
    """Fails twice; its retries are an hour away, so a test sends their timers itself."""
    if ctx.attempt < 3:
        raise Boom(f"attempt {ctx.attempt}")
    return ctx.attempt


@step(flow="siblings", entry=True)
def quick_sibling(ctx: FlowContext, input: dict[str, Any]) -> str:
    return "quick"


@step(flow="siblings", entry=True)
def gated_sibling(ctx: FlowContext, input: dict[str, Any]) -> Any:
    """Keeps the run active (awaiting, holding no worker) until the test opens the gate."""
    return ctx.wait_for_event("gate.open", match={"key": input["key"]})


# -- Flower (tests/test_flower.py) ---------------------------------------------------------


@step(flow="flower-await", entry=True, retry=Retry(attempts=2, delay=0.2, jitter=False))
def flower_await(ctx: FlowContext, input: dict[str, Any]) -> Any:
    """Fails its first attempt, parks its second on a trigger, and once resumed holds long
    enough for a monitor to see it run again."""
    if ctx.attempt == 1:
        raise Boom("the first attempt fails")
    payload = ctx.wait_for_trigger(info={"q": "go on?"})
    time.sleep(float(input.get("hold", 0)))
    return payload


# -- what only Celery sees (tests/test_e2e_celery_signals.py) ------------------------------


@step(flow="hard-limit", entry=True, time_limit=1, retry=Retry(attempts=2, delay=0.1, jitter=False))
def past_hard_limit(ctx: FlowContext, input: dict[str, Any]) -> None:
    """Never ends by itself: Celery kills its process at the hard time limit, every attempt."""
    ctx.log.info("sleeping past the hard time limit")
    time.sleep(60)


@step(flow="lost-child", entry=True, retry=Retry(attempts=2, delay=0.1, jitter=False))
def lost_child(ctx: FlowContext, input: dict[str, Any]) -> int:
    """Logs its pool process id on the first attempt and waits there to be SIGKILLed."""
    import os  # this section is appended: its import stays here

    if ctx.attempt == 1:
        ctx.log.info("pool child", pid=os.getpid())
        time.sleep(60)
    return ctx.attempt


# -- start triggers (tests/test_event_triggers.py) -------------------------------------------


@step(flow="on-ping", entry=True, on_event=["ping.sent", "ping.again"])
def on_ping(ctx: FlowContext, input: Any) -> Any:
    """Started by either signal, with no input model: any JSON payload is its input."""
    return input


# -- webhooks (tests/test_webhooks_e2e.py; the secrets are in the API process's env) ---------

from pydantic import BaseModel  # noqa: E402 - this section is appended: its imports stay here

from flowqueue import (  # noqa: E402
    GitHub,
    NoVerification,
    Slack,
    StandardWebhooks,
    Stripe,
    Webhook,
)

HOOK_STANDARD = Webhook(
    name="hook-standard",
    verifier=StandardWebhooks(secret_env=("FQ_TEST_STANDARD_SECRET", "FQ_TEST_STANDARD_OLD")),
    headers=("X-Event",),
)
HOOK_STRIPE = Webhook(
    name="hook-stripe", verifier=Stripe(secret_env="FQ_TEST_STRIPE_SECRET"), idempotency_field="id"
)
HOOK_GITHUB = Webhook(name="hook-github", verifier=GitHub(secret_env="FQ_TEST_GITHUB_SECRET"))
HOOK_SLACK = Webhook(
    name="hook-slack", verifier=Slack(secret_env="FQ_TEST_SLACK_SECRET"), max_body_bytes=1024
)
HOOK_OPEN = Webhook(name="hook-open", verifier=NoVerification())


class StripeEvent(BaseModel):
    id: str
    type: str


@step(flow="hook-standard", entry=True, webhook=HOOK_STANDARD)
def hook_standard(ctx: FlowContext, input: Any) -> Any:
    return input


@step(flow="hook-stripe", entry=True, webhook=HOOK_STRIPE)
def hook_stripe(ctx: FlowContext, event: StripeEvent) -> str:
    return event.type


@step(flow="hook-github", entry=True, webhook=HOOK_GITHUB)
def hook_github(ctx: FlowContext, input: Any) -> Any:
    return input


@step(flow="hook-slack", entry=True, webhook=HOOK_SLACK)
def hook_slack(ctx: FlowContext, input: Any) -> Any:
    return input


@step(flow="hook-open", entry=True, webhook=HOOK_OPEN)
def hook_open(ctx: FlowContext, input: Any) -> Any:
    return input


# Re-run and retry-from-failure (test_rerun_retry.py): mend_gate fails until the test
# sets its key's flag in Redis, so a retry of the failed run can complete it.
import os  # noqa: E402 - this section is appended: its imports stay here

import redis  # noqa: E402


class MendInput(BaseModel):
    key: str
    note: str = ""


def mend_flag(key: str) -> str:
    return f"test-mend:{key}"  # a key of the test's own database; ``key`` is unique


@step(flow="mend", entry=True, emits=["mend.begun"])
def mend_start(ctx: FlowContext, input: MendInput) -> str:
    ctx.emit("mend.begun", {"key": input.key})
    return input.key


@step(flow="mend", subscribes=["mend.begun"], emits=["mend.done"], retry=Retry(attempts=1))
def mend_gate(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    key = inputs["mend.begun"]["key"]
    with redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"]) as client:
        if not client.exists(mend_flag(key)):
            raise Boom(f"no flag for {key} (attempt {ctx.attempt})")
    ctx.emit("mend.done", {"key": key, "attempt": ctx.attempt})
    return inputs


@step(flow="mend", subscribes=["mend.done"])
def mend_end(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    return dict(inputs["mend.done"])


from flowqueue import Schedule  # noqa: E402 - this section is appended: its imports stay here

# Every-second schedules for tests/test_e2e_schedules.py only: every other cluster loads
# this module too, so they exist only where FQTEST_SCHEDULES (catch_up_one) or
# FQTEST_SKIP_SCHEDULES (skip) says how many.
_EVERY_SECOND = [
    Schedule("* * * * * *", name=f"tick-{i}", input={"i": i})
    for i in range(int(os.environ.get("FQTEST_SCHEDULES", "0")))
]
_EVERY_SECOND += [
    Schedule("* * * * * *", name=f"skip-{i}", input={"i": i}, missed="skip")
    for i in range(int(os.environ.get("FQTEST_SKIP_SCHEDULES", "0")))
]


@step(flow="tick", entry=True, schedule=_EVERY_SECOND)
def tick(ctx: FlowContext, input: dict[str, Any] | None) -> dict[str, Any] | None:
    return input


# -- deferred claims (tests/test_deferred_claims.py) ---------------------------------------


@step(flow="quiet", entry=True)
def quiet(ctx: FlowContext, input: dict[str, Any]) -> float:
    """Runs for a while and writes nothing until it returns."""
    time.sleep(float(input.get("seconds", 0)))
    return time.time()
