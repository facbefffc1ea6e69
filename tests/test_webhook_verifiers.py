"""Webhook verifiers (flowqueue/authoring/webhooks.py) and the replay store
(flowqueue/backend/redis/webhooks.py).

Every signature a test expects is computed here independently of the code under test:
with the Standard Webhooks reference package, or with hmac per each provider's docs
(Stripe: HMAC-SHA256 of "t.body" in ``t=…,v1=<hex>``; GitHub: ``sha256=<hex>`` of the
body; Slack: ``v0=<hex>`` of "v0:timestamp:body"), and checked against the published
examples of GitHub, Slack and the Standard Webhooks libraries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
import standardwebhooks
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from flowqueue.authoring.webhooks import (
    GitHub,
    NoVerification,
    Slack,
    StandardWebhooks,
    Stripe,
    Verified,
    Webhook,
)
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.webhooks import claim_delivery, release_delivery, seen_key
from flowqueue.errors import ConfigurationError, WebhookRejected
from flowqueue.settings import Settings

NOW = 1_700_000_000
BODY = b'{"type":"order.created","data":{"id":42}}'


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def standard_secret(seed: str) -> str:
    return "whsec_" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def sign_standard(secret: str, body: bytes, ts: int, delivery: str = "msg_1") -> dict[str, str]:
    # The reference package signs text; bytes that are not UTF-8 are signed by hand below.
    if body.decode("utf-8", "replace").encode() == body:
        moment = datetime.fromtimestamp(ts, UTC)
        signature = standardwebhooks.Webhook(secret).sign(delivery, moment, body.decode())
    else:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{delivery}.{ts}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return {"webhook-id": delivery, "webhook-timestamp": str(ts), "webhook-signature": signature}


def sign_stripe(secret: str, body: bytes, ts: int, delivery: str = "") -> dict[str, str]:
    return {"Stripe-Signature": f"t={ts},v1={_hex(secret, f'{ts}.'.encode() + body)}"}


def sign_github(secret: str, body: bytes, ts: int, delivery: str = "d-1") -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + _hex(secret, body), "X-GitHub-Delivery": delivery}


def sign_slack(secret: str, body: bytes, ts: int, delivery: str = "") -> dict[str, str]:
    signature = "v0=" + _hex(secret, f"v0:{ts}:".encode() + body)
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature}


@dataclass(frozen=True)
class Scheme:
    name: str
    make: Callable[..., Any]  # the verifier class
    sign: Callable[[str, bytes, int], dict[str, str]]
    secret: Callable[[str], str]  # a secret of this scheme's shape, from a seed
    required: tuple[str, ...]  # headers without which nothing verifies
    timed: bool = True


SCHEMES = [
    Scheme(
        "standard",
        StandardWebhooks,
        sign_standard,
        standard_secret,
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ),
    Scheme("stripe", Stripe, sign_stripe, lambda s: f"whsec_{s}", ("Stripe-Signature",)),
    Scheme("github", GitHub, sign_github, lambda s: f"gh {s}", ("X-Hub-Signature-256",), False),
    Scheme(
        "slack",
        Slack,
        sign_slack,
        lambda s: hashlib.md5(s.encode()).hexdigest(),
        ("X-Slack-Request-Timestamp", "X-Slack-Signature"),
    ),
]
TIMED = [s for s in SCHEMES if s.timed]
by_name = pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)


def rejected(call: Callable[[], Any]) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        call()
    return info.value


# -- the providers' published examples ------------------------------------------------


def test_the_published_examples_verify():
    # Standard Webhooks: the vector of the reference libraries' tests.
    vector = StandardWebhooks(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    done = vector.verify(b'{"test": 2432232314}', headers, now=1614265330 + 5)
    assert done.delivery_id == done.replay_key == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert done.timestamp == 1614265330
    # GitHub's docs: "It's a Secret to Everybody", "Hello, World!".
    github = GitHub(secret="It's a Secret to Everybody")
    digest = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github.verify(b"Hello, World!", {"x-hub-signature-256": f"sha256={digest}"})
    # Slack's docs: a slash command signed at 1531420618.
    slack = Slack(secret="8f742231b10e8888abcd99yyyzzz85a5")
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhoo"
        b"k-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3"
        b"97700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc88"
        b"7a14d10d2c447fce8b6703c"
    )
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    headers = {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": signature}
    assert slack.verify(body, headers, now=1531420618).timestamp == 1531420618


def test_the_reference_package_accepts_what_standard_webhooks_signs():
    secret = standard_secret("interop")
    headers = StandardWebhooks(secret=secret).sign(BODY, delivery_id="msg_interop")
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "type": "order.created",
        "data": {"id": 42},
    }


@by_name
def test_sign_gives_what_the_provider_sends(scheme):
    secret = scheme.secret("sign")
    verifier = scheme.make(secret=secret)
    extra: dict[str, Any] = {"timestamp": NOW} if scheme.timed else {}
    if scheme.name in ("standard", "github"):
        extra["delivery_id"] = "msg_1" if scheme.name == "standard" else "d-1"
    assert verifier.sign(BODY, **extra) == scheme.sign(secret, BODY, NOW)


# -- each verifier: right, wrong, stale, future, missing, rotated, tampered --------------


@by_name
def test_a_correct_signature_verifies(scheme):
    secret = scheme.secret("right")
    done = scheme.make(secret=secret).verify(BODY, scheme.sign(secret, BODY, NOW), now=NOW + 1)
    assert isinstance(done, Verified)
    assert done.replay_key
    assert done.timestamp == (NOW if scheme.timed else None)
    assert done.replay_window == (600 if scheme.timed else 86_400)


@by_name
def test_header_names_are_case_insensitive(scheme):
    secret = scheme.secret("case")
    headers = {k.upper(): v for k, v in scheme.sign(secret, BODY, NOW).items()}
    assert scheme.make(secret=secret).verify(BODY, headers, now=NOW)


@by_name
def test_a_wrong_secret_is_a_bad_signature_and_the_message_holds_no_secret(scheme):
    ours, theirs = scheme.secret("ours"), scheme.secret("theirs")
    error = rejected(
        lambda: scheme.make(secret=ours).verify(BODY, scheme.sign(theirs, BODY, NOW), now=NOW)
    )
    assert error.reason == "bad_signature"
    assert "secret" in str(error)
    assert ours not in str(error)
    assert theirs not in str(error)


@by_name
def test_a_tampered_body_is_a_bad_signature(scheme):
    secret = scheme.secret("tamper")
    headers = scheme.sign(secret, BODY, NOW)
    tampered = BODY.replace(b"42", b"43")
    error = rejected(lambda: scheme.make(secret=secret).verify(tampered, headers, now=NOW))
    assert error.reason == "bad_signature"


@pytest.mark.parametrize("scheme", TIMED, ids=lambda s: s.name)
def test_stale_and_future_timestamps_are_refused_past_the_tolerance(scheme):
    secret = scheme.secret("clock")
    verifier = scheme.make(secret=secret)  # the default tolerance: 5 minutes
    headers = scheme.sign(secret, BODY, NOW)
    assert verifier.verify(BODY, headers, now=NOW + 300)
    assert verifier.verify(BODY, headers, now=NOW - 300)
    stale = rejected(lambda: verifier.verify(BODY, headers, now=NOW + 301))
    assert stale.reason == "stale_timestamp"
    assert "301 s old" in str(stale)
    future = rejected(lambda: verifier.verify(BODY, headers, now=NOW - 301))
    assert future.reason == "future_timestamp"
    # The real clock, when none is given.
    fresh = scheme.sign(secret, BODY, int(time.time()))
    assert verifier.verify(BODY, fresh).timestamp is not None
    old = scheme.sign(secret, BODY, int(time.time()) - 3600)
    assert rejected(lambda: verifier.verify(BODY, old)).reason == "stale_timestamp"


@pytest.mark.parametrize("scheme", TIMED, ids=lambda s: s.name)
def test_the_tolerance_is_configurable(scheme):
    secret = scheme.secret("tolerance")
    headers = scheme.sign(secret, BODY, NOW)
    wide = scheme.make(secret=secret, tolerance=timedelta(minutes=10))
    assert wide.verify(BODY, headers, now=NOW + 599).replay_window == 1200
    narrow = scheme.make(secret=secret, tolerance=30)
    assert rejected(lambda: narrow.verify(BODY, headers, now=NOW + 31)).reason == "stale_timestamp"
    with pytest.raises(ConfigurationError, match="tolerance"):
        scheme.make(secret=secret, tolerance=0)


@by_name
def test_each_missing_header_is_named(scheme):
    secret = scheme.secret("missing")
    verifier = scheme.make(secret=secret)
    headers = scheme.sign(secret, BODY, NOW)
    for name in scheme.required:
        partial = {k: v for k, v in headers.items() if k != name}
        error = rejected(lambda partial=partial: verifier.verify(BODY, partial, now=NOW))
        assert error.reason == "missing_header"
        assert name in str(error)
    assert rejected(lambda: verifier.verify(BODY, {}, now=NOW)).reason == "missing_header"


@by_name
def test_malformed_headers_are_refused_not_crashed_on(scheme):
    secret = scheme.secret("malformed")
    verifier = scheme.make(secret=secret)
    good = scheme.sign(secret, BODY, NOW)
    for name in scheme.required:
        for junk in ("x", "v1", "t=", "=", "v1,@@@", "sha256=zz", "v0=ünïcödé", "t=1,v1="):
            headers = good | {name: junk}
            error = rejected(lambda headers=headers: verifier.verify(BODY, headers, now=NOW))
            assert error.reason in ("malformed_header", "bad_signature", "stale_timestamp")


@by_name
def test_rotation_two_secrets_verify_a_third_does_not(scheme):
    new, old, other = (scheme.secret(s) for s in ("new", "old", "other"))
    verifier = scheme.make(secret=(new, old))
    assert verifier.verify(BODY, scheme.sign(new, BODY, NOW), now=NOW)
    assert verifier.verify(BODY, scheme.sign(old, BODY, NOW), now=NOW)
    third = rejected(lambda: verifier.verify(BODY, scheme.sign(other, BODY, NOW), now=NOW))
    assert third.reason == "bad_signature"
    with pytest.raises(ConfigurationError, match="at most 2"):
        scheme.make(secret=(new, old, other))


@by_name
def test_secrets_from_the_environment_rotate_by_setting_the_second(scheme, monkeypatch):
    new, old = scheme.secret("env-new"), scheme.secret("env-old")
    verifier = scheme.make(secret_env=("HOOK_SECRET", "HOOK_SECRET_OLD"))
    assert new not in repr(verifier)
    monkeypatch.setenv("HOOK_SECRET", new)
    monkeypatch.delenv("HOOK_SECRET_OLD", raising=False)
    assert verifier.verify(BODY, scheme.sign(new, BODY, NOW), now=NOW)
    old_headers = scheme.sign(old, BODY, NOW)
    assert rejected(lambda: verifier.verify(BODY, old_headers, now=NOW)).reason == "bad_signature"
    monkeypatch.setenv("HOOK_SECRET_OLD", old)  # rotating: both verify
    assert verifier.verify(BODY, old_headers, now=NOW)
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ConfigurationError, match=r"\$HOOK_SECRET is unset") as unset:
        verifier.verify(BODY, old_headers, now=NOW)
    assert old not in str(unset.value)


@by_name
def test_a_secret_is_declared_exactly_one_way_and_never_shown(scheme):
    secret = scheme.secret("shown")
    assert secret not in repr(scheme.make(secret=secret))
    assert secret not in repr(scheme.make(secret=(secret, scheme.secret("other"))))
    with pytest.raises(ConfigurationError, match="not both and not neither"):
        scheme.make()
    with pytest.raises(ConfigurationError, match="not both and not neither"):
        scheme.make(secret=secret, secret_env="HOOK_SECRET")
    with pytest.raises(ConfigurationError, match="environment variable names"):
        scheme.make(secret_env="not a name")
    with pytest.raises(ConfigurationError, match="empty"):
        scheme.make(secret="")


def test_a_standard_webhooks_secret_must_be_whsec_base64(monkeypatch):
    for bad in ("whsec_!!!notbase64", "whsec_", "whsec_a"):
        with pytest.raises(ConfigurationError, match="whsec_<base64>") as info:
            StandardWebhooks(secret=bad)
        assert "!!!" not in str(info.value)
        assert "whsec_a" not in str(info.value)
    monkeypatch.setenv("BAD_SECRET", "whsec_!!!")
    verifier = StandardWebhooks(secret_env="BAD_SECRET")
    with pytest.raises(ConfigurationError, match=r"\$BAD_SECRET is not whsec_<base64>"):
        verifier.verify(BODY, sign_standard(standard_secret("x"), BODY, NOW), now=NOW)
    # The prefix is optional, as in the reference package; unpadded base64 is accepted.
    bare = standard_secret("bare").removeprefix("whsec_").rstrip("=")
    assert StandardWebhooks(secret=bare).verify(
        BODY, sign_standard(standard_secret("bare"), BODY, NOW), now=NOW
    )


def test_standard_webhooks_takes_any_v1_entry_and_skips_other_versions():
    secret = standard_secret("entries")
    headers = sign_standard(secret, BODY, NOW)
    ours = headers["webhook-signature"]
    other = sign_standard(standard_secret("other"), BODY, NOW)["webhook-signature"]
    listed = headers | {"webhook-signature": f"v1a,AAAA {other} v2,{ours[3:]} {ours}"}
    assert StandardWebhooks(secret=secret).verify(BODY, listed, now=NOW)
    only_v2 = headers | {"webhook-signature": f"v2,{ours[3:]}"}
    error = rejected(lambda: StandardWebhooks(secret=secret).verify(BODY, only_v2, now=NOW))
    assert error.reason == "bad_signature"


def test_a_signed_delivery_id_is_the_standard_replay_key_and_cannot_be_swapped():
    secret = standard_secret("ids")
    headers = sign_standard(secret, BODY, NOW, delivery="msg_a")
    assert StandardWebhooks(secret=secret).verify(BODY, headers, now=NOW).replay_key == "msg_a"
    swapped = headers | {"webhook-id": "msg_b"}  # the id is signed: a new one fails
    error = rejected(lambda: StandardWebhooks(secret=secret).verify(BODY, swapped, now=NOW))
    assert error.reason == "bad_signature"


def test_replay_keys_do_not_depend_on_what_a_replayer_can_change():
    new, old = "whsec_new", "whsec_old"
    both = Stripe(secret=(new, old))
    one = sign_stripe(new, BODY, NOW)["Stripe-Signature"]
    two = sign_stripe(old, BODY, NOW)["Stripe-Signature"].split(",")[1]
    keys = {
        both.verify(BODY, {"Stripe-Signature": value}, now=NOW).replay_key
        for value in (f"{one},{two}", one, f"t={NOW},{two}")
    }
    assert len(keys) == 1  # Stripe rolling a secret sends two v1: dropping one changes nothing
    github = GitHub(secret="gh")
    first = github.verify(BODY, sign_github("gh", BODY, 0, "d-1"))
    again = github.verify(BODY, sign_github("gh", BODY, 0, "d-2"))  # the delivery id is unsigned
    assert (first.delivery_id, again.delivery_id) == ("d-1", "d-2")
    assert first.replay_key == again.replay_key


def test_stripe_needs_one_t_and_a_v1():
    headers = sign_stripe("whsec_s", BODY, NOW)
    value = headers["Stripe-Signature"]
    for bad in (
        f"t={NOW}",
        value.split(",")[1],
        f"{value},t={NOW}",
        f"{value.split(',')[1]},v0=ab",
    ):
        error = rejected(
            lambda bad=bad: Stripe(secret="whsec_s").verify(
                BODY, {"Stripe-Signature": bad}, now=NOW
            )
        )
        assert error.reason == "malformed_header"


# -- any body and any secret round-trip ---------------------------------------------------


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(SCHEMES),
    body=st.binary(max_size=2048) | st.text(max_size=512).map(str.encode),
    key=st.binary(min_size=1, max_size=64),
    text=st.text(min_size=1, max_size=64),
    flip=st.integers(min_value=0),
)
def test_any_body_and_secret_round_trip_and_any_changed_byte_fails(scheme, body, key, text, flip):
    # Standard Webhooks keys are bytes (whsec_<base64>); the others use the text as is.
    secret = "whsec_" + base64.b64encode(key).decode() if scheme.name == "standard" else text
    verifier = scheme.make(secret=secret)
    headers = scheme.sign(secret, body, NOW)
    assert verifier.verify(body, headers, now=NOW).replay_key
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        error = rejected(lambda: verifier.verify(changed, headers, now=NOW))
        assert error.reason == "bad_signature"


# -- NoVerification and the Webhook declaration --------------------------------------------


def test_no_verification_is_explicit_and_has_nothing_to_replay_check():
    done = NoVerification().verify(b"anything", {})
    assert done == Verified(replay_key=None, replay_window=0.0)
    with pytest.raises(ConfigurationError, match="explicitly, NoVerification"):
        Webhook(name="open", verifier=None)  # type: ignore[arg-type]


def test_a_webhook_declaration_is_checked():
    hook = Webhook(
        name="orders.stripe",
        verifier=Stripe(secret="whsec_x"),
        headers=("Stripe-Signature", "X-Request-Id", "x-request-id"),
    )
    assert hook.headers == ("stripe-signature", "x-request-id")
    assert hook.max_body_bytes == 256 * 1024
    sent = {"X-Request-ID": "r-1", "Cookie": "c", "Stripe-Signature": "s"}
    assert hook.input_headers(sent) == {"stripe-signature": "s", "x-request-id": "r-1"}
    with pytest.raises(ConfigurationError, match="webhook name"):
        Webhook(name="bad name", verifier=NoVerification())
    with pytest.raises(ConfigurationError, match="not an HTTP header name"):
        Webhook(name="h", verifier=NoVerification(), headers=("Bad Header",))
    with pytest.raises(ConfigurationError, match="tuple of names"):
        Webhook(name="h", verifier=NoVerification(), headers="X-One")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        Webhook(name="h", verifier=NoVerification(), max_body_bytes=0)


def test_the_body_limit_is_checked_before_the_signature_and_bounded_by_the_settings():
    hook = Webhook(name="small", verifier=GitHub(secret="gh"), max_body_bytes=16)
    big = b"x" * 17
    error = rejected(lambda: hook.verify(big, sign_github("gh", big, 0)))
    assert error.reason == "body_too_large"
    assert hook.verify(b"x" * 16, sign_github("gh", b"x" * 16, 0)).replay_key
    assert hook.body_limit(Settings(max_payload_bytes=16)) == 16
    assert hook.body_limit(Settings(max_payload_bytes=15)) == 15  # the store's cap wins


def test_the_error_survives_a_round_trip_through_its_args():
    error = WebhookRejected("refused", reason="replayed", run_id="r1")
    assert (error.reason, error.about) == ("replayed", {"run_id": "r1"})
    assert str(type(error)(*error.args)) == "refused"


# -- the replay store, on the suite's redis-server ------------------------------------------


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


def test_a_replayed_delivery_is_refused_within_its_window_and_accepted_after(
    redis_server, settings
):
    keys = Keys(settings.key_prefix)

    async def scenario() -> None:
        client = await _client(redis_server.url)
        try:
            claim = dict(webhook="orders", replay_key="msg_1", window_seconds=0.5)
            await claim_delivery(client, keys, **claim, run_id="run-1")
            with pytest.raises(WebhookRejected) as again:
                await claim_delivery(client, keys, **claim, run_id="run-2")
            assert (again.value.reason, again.value.run_id) == ("replayed", "run-1")
            assert "run-1" in str(again.value)
            # Another webhook, or another key, is another delivery.
            await claim_delivery(client, keys, **claim | {"webhook": "other"}, run_id="run-3")
            await claim_delivery(client, keys, **claim | {"replay_key": "msg_2"}, run_id="run-4")
            ttl = await client.pttl(seen_key(keys, "orders", "msg_1"))
            assert 0 < ttl <= 500
            deadline = time.monotonic() + 15  # the window is 0.5 s; wait generously
            while True:
                try:
                    await claim_delivery(client, keys, **claim, run_id="run-5")
                    break
                except WebhookRejected:
                    assert time.monotonic() < deadline, "the claim never expired"
                    await asyncio.sleep(0.1)
            assert await client.get(seen_key(keys, "orders", "msg_1")) == b"run-5"
        finally:
            await client.aclose()

    run(scenario())


def test_a_release_undoes_only_its_own_claim(redis_server, settings):
    keys = Keys(settings.key_prefix)

    async def scenario() -> None:
        client = await _client(redis_server.url)
        try:
            claim = dict(webhook="orders", replay_key="msg_9", window_seconds=60)
            await claim_delivery(client, keys, **claim, run_id="run-1")
            release = dict(webhook="orders", replay_key="msg_9")
            await release_delivery(client, keys, **release, run_id="someone-else")
            with pytest.raises(WebhookRejected):
                await claim_delivery(client, keys, **claim, run_id="run-2")
            await release_delivery(client, keys, **release, run_id="run-1")  # the run failed
            await claim_delivery(client, keys, **claim, run_id="run-2")  # the retry goes on
        finally:
            await client.aclose()

    run(scenario())


def test_verified_deliveries_flow_into_the_replay_store(redis_server, settings):
    keys = Keys(settings.key_prefix)
    secret = "whsec_stripe"
    hook = Webhook(name="pay", verifier=Stripe(secret=secret))
    headers = sign_stripe(secret, BODY, int(time.time()))

    async def deliver(run_id: str) -> None:
        done = hook.verify(BODY, headers)
        assert done.replay_key is not None
        client = await _client(redis_server.url)
        try:
            await claim_delivery(
                client,
                keys,
                webhook=hook.name,
                replay_key=done.replay_key,
                window_seconds=done.replay_window,
                run_id=run_id,
            )
        finally:
            await client.aclose()

    run(deliver("run-1"))
    with pytest.raises(WebhookRejected) as replayed:
        run(deliver("run-2"))
    assert replayed.value.reason == "replayed"


def test_fifty_concurrent_deliveries_of_one_id_claim_once(redis_server, settings):
    keys = Keys(settings.key_prefix)

    async def scenario() -> list[str]:
        client = await _client(redis_server.url)
        try:

            async def one(n: int) -> str:
                try:
                    await claim_delivery(
                        client,
                        keys,
                        webhook="burst",
                        replay_key="msg_burst",
                        window_seconds=60,
                        run_id=f"run-{n}",
                    )
                    return "claimed"
                except WebhookRejected as exc:
                    return exc.reason

            return list(await asyncio.gather(*(one(n) for n in range(50))))
        finally:
            await client.aclose()

    outcomes = run(scenario())
    assert outcomes.count("claimed") == 1
    assert outcomes.count("replayed") == 49
