"""Webhooks a user declares, and the verifiers that check who sent a delivery.

A ``Webhook`` names a verifier: ``StandardWebhooks``, ``Stripe``, ``GitHub``, ``Slack``,
or ``NoVerification()`` (never a default). Each keyed verifier holds one or two secrets
(two while a secret is rotated: either verifies), given directly or read from
environment variables when a delivery is verified; signatures are compared in
constant time, and a timestamp outside ``tolerance`` of this server's clock is refused.
``verify`` returns a ``Verified`` with the delivery's replay key, which the replay store
(``backend/redis/webhooks.py``) remembers for ``replay_window`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from flowqueue.errors import ConfigurationError, InvalidEvent, WebhookRejected
from flowqueue.model.validation import check_identifier
from flowqueue.settings import Settings

Seconds = float | int | timedelta
Secrets = str | tuple[str, ...]
DEFAULT_TOLERANCE = timedelta(minutes=5)  # Stripe's, Slack's and Standard Webhooks' own
DEFAULT_MAX_BODY_BYTES = 256 * 1024
MAX_SECRETS = 2  # the one in use and, while rotating, the next one
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # an RFC 9110 token
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds, as every scheme here sends them
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Verified:
    """A delivery whose signature checked out."""

    replay_key: str | None
    """What the replay store remembers (None: ``NoVerification``, nothing to remember).
    Always something the signature covers, so a replayer cannot change it."""
    replay_window: float
    """Seconds to remember ``replay_key``: as long as the delivery could verify again."""
    timestamp: int | None = None
    """Unix seconds the sender signed, where the scheme has a timestamp."""
    delivery_id: str | None = None
    """The sender's delivery id (``webhook-id``, ``X-GitHub-Delivery``), where it sends one."""
    delivery_id_signed: bool = False
    """Whether the signature covers ``delivery_id`` (Standard Webhooks' does, GitHub's not):
    only then may it serve as the start's idempotency key."""


class Verifier(Protocol):
    kind: ClassVar[str]

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified: ...


def _as_tuple(value: Secrets | None) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def _seconds(value: Seconds, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{what} must be a number of seconds > 0 (or a timedelta).")
    return seconds


def _bytes(text: str) -> bytes:
    # compare_digest refuses non-ASCII text, and a header may hold some.
    return text.encode("utf-8", "surrogatepass")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _content_key(message: bytes) -> str:
    """A replay key for schemes whose delivery id is unsigned or absent: the signed
    content's hash. Not the signature: with two secrets a delivery can carry two valid
    ones, and a replayer could swap one for the other."""
    return "sha256:" + hashlib.sha256(message).hexdigest()


@dataclass(frozen=True, kw_only=True)
class _Keyed:
    """A verifier keyed by up to two HMAC secrets, given or read from the environment."""

    kind: ClassVar[str]
    secret: Secrets | None = field(default=None, repr=False)
    """The secret, or (new, old) while rotating. Prefer ``secret_env`` in production."""
    secret_env: Secrets | None = None
    """Environment variable(s) holding the secret, read at each delivery: ("NAME",
    "NAME_OLD") lets a deployment rotate by setting or unsetting the second."""

    def __post_init__(self) -> None:
        given, names = _as_tuple(self.secret), _as_tuple(self.secret_env)
        if bool(given) == bool(names):
            raise ConfigurationError(
                f"{self.kind}: give secret= or secret_env= (one, or two while rotating), "
                "not both and not neither."
            )
        if len(given) > MAX_SECRETS or len(names) > MAX_SECRETS:
            raise ConfigurationError(
                f"{self.kind}: at most {MAX_SECRETS} secrets are active at once (new and old)."
            )
        for name in names:
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                raise ConfigurationError(
                    f"{self.kind}: secret_env takes environment variable names like "
                    f"ORDERS_WEBHOOK_SECRET, not {name!r}."
                )
        for number, secret in enumerate(given, 1):
            self._key(secret, f"secret number {number}")  # refuse a bad one at declaration

    def _key(self, secret: object, where: str) -> bytes:
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f"{self.kind}: {where} is empty or not text.")
        return secret.encode()

    def keys(self) -> list[bytes]:
        """The active secrets as HMAC keys (the environment is read now)."""
        if not self.secret_env:
            given = enumerate(_as_tuple(self.secret), 1)
            return [self._key(secret, f"secret number {number}") for number, secret in given]
        keys = []
        for number, name in enumerate(_as_tuple(self.secret_env)):
            value = os.environ.get(name, "")
            if value:
                keys.append(self._key(value, f"${name}"))
            elif number == 0:  # the second is optional: set only while rotating
                raise ConfigurationError(
                    f"{self.kind}: ${name} is unset or empty: set it to the sender's signing "
                    "secret."
                )
        return keys

    def _matches(self, message: bytes, given: list[bytes], *, hexed: bool) -> bool:
        """Whether any signature given is the HMAC of ``message`` under any active secret
        (each compared in constant time)."""
        digests = [_hmac(key, message) for key in self.keys()]
        expected = [digest.hex().encode() if hexed else digest for digest in digests]
        return any(hmac.compare_digest(e, g) for e in expected for g in given)

    def _rejected(self, reason: str, what: str) -> WebhookRejected:
        return WebhookRejected(f"{self.kind} webhook refused: {what}", reason=reason)

    def _bad_signature(self, header: str) -> WebhookRejected:
        return self._rejected(
            "bad_signature",
            f"no signature in {header} matches the body with this webhook's secret(s). Check "
            "the secret is the sender's and that nothing changes the body on the way.",
        )

    def _header(self, headers: Mapping[str, str], name: str) -> str:
        value = _lower(headers).get(name.lower())
        if not value:
            raise self._rejected(
                "missing_header",
                f"the {name} header is missing. Check that the sender signs with the "
                f"{self.kind} scheme.",
            )
        return value


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass(frozen=True, kw_only=True)
class _Timed(_Keyed):
    tolerance: Seconds = DEFAULT_TOLERANCE
    """How far the signed timestamp may be from this server's clock, either way."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _seconds(self.tolerance, f"{self.kind}(tolerance=...)")

    @property
    def replay_window(self) -> float:
        # A delivery verifies from tolerance before its timestamp to tolerance after, so
        # remembering it for twice the tolerance from its first arrival covers every retry.
        return 2 * _seconds(self.tolerance, "tolerance")

    def _timestamp(self, text: str, header: str, now: float | None) -> int:
        if not _TIMESTAMP.fullmatch(text):
            raise self._rejected("malformed_header", f"the {header} timestamp is not Unix seconds.")
        timestamp, tolerance = int(text), _seconds(self.tolerance, "tolerance")
        age = (time.time() if now is None else now) - timestamp
        if age > tolerance:
            raise self._rejected(
                "stale_timestamp",
                f"the signature is {age:.0f} s old, more than the tolerance of "
                f"{tolerance:.0f} s: a late delivery or a replay (or this server's clock "
                "is wrong).",
            )
        if -age > tolerance:
            raise self._rejected(
                "future_timestamp",
                f"the signature is dated {-age:.0f} s ahead of this server's clock, more than "
                f"the tolerance of {tolerance:.0f} s: check the clocks.",
            )
        return timestamp


@dataclass(frozen=True, kw_only=True)
class StandardWebhooks(_Timed):
    """The Standard Webhooks scheme (standardwebhooks.com): ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
    id.timestamp.body>`` (space-separated entries); secrets are ``whsec_<base64>``."""

    kind: ClassVar[str] = "standard_webhooks"

    def _key(self, secret: object, where: str) -> bytes:
        text = super()._key(secret, where).decode().removeprefix("whsec_")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ConfigurationError(
                f"{self.kind}: {where} is not whsec_<base64> (copy it whole from the sender)."
            )
        return key

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        delivery = self._header(headers, "webhook-id")
        stamp = self._header(headers, "webhook-timestamp")
        signatures = self._header(headers, "webhook-signature")
        timestamp = self._timestamp(stamp, "webhook-timestamp", now)
        given = []
        for entry in signatures.split():
            version, _, encoded = entry.partition(",")
            if version == "v1":  # others (v1a: asymmetric) are not this verifier's
                try:
                    given.append(base64.b64decode(encoded, validate=True))
                except (binascii.Error, ValueError):
                    continue
        message = f"{delivery}.{timestamp}.".encode() + body
        if not self._matches(message, given, hexed=False):
            raise self._bad_signature("webhook-signature")
        return Verified(delivery, self.replay_window, timestamp, delivery, True)

    def sign(
        self, body: bytes, *, delivery_id: str, timestamp: int | None = None
    ) -> dict[str, str]:
        """The headers a sender would send with ``body`` (for tests and demos)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = _hmac(self.keys()[0], f"{delivery_id}.{stamp}.".encode() + body)
        signature = "v1," + base64.b64encode(digest).decode()
        return {
            "webhook-id": delivery_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signature,
        }


@dataclass(frozen=True, kw_only=True)
class Stripe(_Timed):
    """Stripe's scheme: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of t.body>``
    (several ``v1`` while Stripe rolls a secret); the secret (``whsec_...``) is used as is."""

    kind: ClassVar[str] = "stripe"
    header: ClassVar[str] = "Stripe-Signature"

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        value = self._header(headers, self.header)
        stamps, given = [], []
        for item in value.split(","):
            name, _, text = item.strip().partition("=")
            if name == "t":
                stamps.append(text)
            elif name == "v1":
                given.append(_bytes(text.lower()))
        if len(stamps) != 1 or not given:
            raise self._rejected(
                "malformed_header", f"{self.header} needs one t=<unix seconds> and a v1=<hex>."
            )
        timestamp = self._timestamp(stamps[0], self.header, now)
        message = f"{timestamp}.".encode() + body
        if not self._matches(message, given, hexed=True):
            raise self._bad_signature(self.header)
        return Verified(_content_key(message), self.replay_window, timestamp)

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The headers Stripe would send with ``body`` (for tests and demos)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        digest = _hmac(self.keys()[0], f"{stamp}.".encode() + body).hex()
        return {self.header: f"t={stamp},v1={digest}"}


@dataclass(frozen=True, kw_only=True)
class Slack(_Timed):
    """Slack's ``v0`` scheme: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature:
    v0=<hex HMAC-SHA256 of v0:timestamp:body>``, keyed by the app's signing secret."""

    kind: ClassVar[str] = "slack"

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        stamp = self._header(headers, "X-Slack-Request-Timestamp")
        signature = self._header(headers, "X-Slack-Signature")
        timestamp = self._timestamp(stamp, "X-Slack-Request-Timestamp", now)
        version, _, digest = signature.partition("=")
        if version != "v0" or not _HEX_SHA256.fullmatch(digest):
            raise self._rejected("malformed_header", "X-Slack-Signature is not v0=<hex>.")
        message = f"v0:{timestamp}:".encode() + body
        if not self._matches(message, [_bytes(digest.lower())], hexed=True):
            raise self._bad_signature("X-Slack-Signature")
        return Verified(_content_key(message), self.replay_window, timestamp)

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The headers Slack would send with ``body`` (for tests and demos)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        digest = _hmac(self.keys()[0], f"v0:{stamp}:".encode() + body).hex()
        return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}"}


@dataclass(frozen=True, kw_only=True)
class GitHub(_Keyed):
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.

    The scheme has no timestamp and does not sign ``X-GitHub-Delivery``, so the replay
    key is the body's hash, remembered for ``replay_window``; a delivery captured and
    sent again after that verifies again (GitHub's scheme cannot tell).
    """

    kind: ClassVar[str] = "github"
    replay_window: Seconds = timedelta(days=1)
    """How long a body, once accepted, is refused again."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _seconds(self.replay_window, "GitHub(replay_window=...)")

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        signature = self._header(headers, "X-Hub-Signature-256")
        algorithm, _, digest = signature.partition("=")
        if algorithm != "sha256" or not _HEX_SHA256.fullmatch(digest):
            raise self._rejected("malformed_header", "X-Hub-Signature-256 is not sha256=<hex>.")
        if not self._matches(body, [_bytes(digest.lower())], hexed=True):
            raise self._bad_signature("X-Hub-Signature-256")
        delivery = _lower(headers).get("x-github-delivery") or None
        window = _seconds(self.replay_window, "replay_window")
        return Verified(_content_key(body), window, None, delivery)

    def sign(self, body: bytes, *, delivery_id: str | None = None) -> dict[str, str]:
        """The headers GitHub would send with ``body`` (for tests and demos)."""
        headers = {"X-Hub-Signature-256": "sha256=" + _hmac(self.keys()[0], body).hex()}
        return headers | ({"X-GitHub-Delivery": delivery_id} if delivery_id else {})


@dataclass(frozen=True)
class NoVerification:
    """Accept every delivery unsigned: anyone who can reach the route starts runs. Only
    ever chosen explicitly; nothing to replay-check either."""

    kind: ClassVar[str] = "none"

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        return Verified(None, 0.0)


@dataclass(frozen=True, kw_only=True)
class Webhook:
    """A webhook: ``POST /api/_webhooks/<name>`` checked by ``verifier``; the body and the
    ``headers`` allow-listed here become the input of the run it starts."""

    name: str
    verifier: Verifier
    headers: tuple[str, ...] = ()
    """Request headers copied into the run input (case-insensitive; stored lower-case)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Larger bodies are refused unread; at most FLOWQUEUE_MAX_PAYLOAD_BYTES."""
    idempotency_field: str | None = None
    """The top-level field of the JSON body holding the sender's event id (Stripe: ``id``,
    Slack's Events API: ``event_id``): the start's idempotency key, so a retry the sender
    signed anew (new timestamp, so new signed content) starts nothing new. Default: the
    delivery id where the signature covers it (Standard Webhooks' ``webhook-id``)."""

    def __post_init__(self) -> None:
        try:
            check_identifier("webhook name", self.name)
        except Exception as exc:
            raise ConfigurationError(str(exc)) from None
        if not hasattr(self.verifier, "verify") or not isinstance(
            getattr(self.verifier, "kind", None), str
        ):
            raise ConfigurationError(
                f"Webhook {self.name!r}: verifier= takes StandardWebhooks(...), Stripe(...), "
                "GitHub(...), Slack(...) or, explicitly, NoVerification()."
            )
        if isinstance(self.headers, str):
            raise ConfigurationError(
                f"Webhook {self.name!r}: headers= takes a tuple of names, e.g. ('X-Event',)."
            )
        for name in self.headers:
            if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                raise ConfigurationError(
                    f"Webhook {self.name!r}: {name!r} is not an HTTP header name."
                )
        object.__setattr__(self, "headers", tuple(dict.fromkeys(h.lower() for h in self.headers)))
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes <= 0:
            raise ConfigurationError(f"Webhook {self.name!r}: max_body_bytes must be > 0.")
        if self.idempotency_field is not None and (
            not isinstance(self.idempotency_field, str) or not self.idempotency_field
        ):
            raise ConfigurationError(
                f"Webhook {self.name!r}: idempotency_field= takes a top-level field name of "
                "the body, e.g. 'id'."
            )

    def body_limit(self, settings: Settings) -> int:
        """The most bytes a delivery may have: ``max_body_bytes``, and never more than
        FLOWQUEUE_MAX_PAYLOAD_BYTES (the body travels in the run's input, which the
        store caps; a larger body could only be refused later)."""
        return min(self.max_body_bytes, settings.max_payload_bytes)

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float | None = None
    ) -> Verified:
        """``WebhookRejected`` unless ``body`` fits and its signature checks out."""
        if len(body) > self.max_body_bytes:
            raise WebhookRejected(
                f"Webhook {self.name!r} refused a body of {len(body)} bytes: the limit is "
                f"{self.max_body_bytes} (max_body_bytes).",
                reason="body_too_large",
            )
        return self.verifier.verify(body, headers, now=now)

    def input_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The allow-listed headers present in ``headers``, by lower-case name."""
        lower = _lower(headers)
        return {name: lower[name] for name in self.headers if name in lower}

    def run_input(self, body: Any, headers: Mapping[str, str]) -> Any:
        """The input of the run a delivery starts: the parsed body itself, or
        ``{"body": ..., "headers": {...}}`` when the webhook selects headers."""
        if not self.headers:
            return body
        return {"body": body, "headers": self.input_headers(headers)}

    def idempotency_key(self, verified: Verified, body: Any) -> str | None:
        """The start's idempotency key: the body's ``idempotency_field``, else a signed
        delivery id, else none. A value that is not a valid key is hashed."""
        if self.idempotency_field is not None:
            value = body.get(self.idempotency_field) if isinstance(body, dict) else None
            found = value if isinstance(value, str | int) and not isinstance(value, bool) else None
        else:
            found = verified.delivery_id if verified.delivery_id_signed else None
        if found is None or found == "":
            return None
        text = str(found)
        try:
            check_identifier("idempotency key", text)
        except InvalidEvent:
            return "sha256:" + hashlib.sha256(_bytes(text)).hexdigest()
        return text
