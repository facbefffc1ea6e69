"""Webhooks: ``POST /api/_webhooks/{name}`` starts a run of the flow bound to ``name``.

No API token: the signature is the auth (``api/auth.py`` lists this route among the
public ones). A refusal costs at most one bounded body read and the HMACs, nothing in
Redis: the body is read with the webhook's size limit, then verified, then parsed and
checked against the entry step's input model; only then is the delivery's replay key
claimed (409 on a replay) and the run started (the claim is released if it fails).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from flowqueue.api.body import JSON_VALUE_REF, parse_json, raw_body, request_body
from flowqueue.api.context import context_of
from flowqueue.api.models import WebhookAccepted
from flowqueue.api.problems import ApiError, problem, problem_responses
from flowqueue.authoring.flows import FlowRegistry
from flowqueue.authoring.webhooks import Verified
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.webhooks import claim_delivery, release_delivery
from flowqueue.errors import ConfigurationError, WebhookRejected
from flowqueue.model.ids import new_run_id
from flowqueue.model.validation import IDENT_PATTERN
from flowqueue.runtime.engine import Flowqueue
from flowqueue.settings import Settings

log = logging.getLogger("flowqueue.api")
# Deliberately without require_token: senders cannot hold the API token; each delivery
# proves itself with its webhook's signature instead.
public = APIRouter()
WebhookName = Annotated[
    str, Path(description="The webhook's name (Webhook(name=...)).", pattern=IDENT_PATTERN)
]
BODY = request_body(
    JSON_VALUE_REF,
    required=False,
    description="The sender's JSON body, exactly as signed (the signature covers its bytes).",
)


@dataclass(frozen=True)
class Replays:
    """The replay claim of one verified delivery (none for ``NoVerification``)."""

    redis: aioredis.Redis
    keys: Keys
    webhook: str
    verified: Verified

    async def claim(self, run_id: str) -> None:
        replay_key, window = self.verified.replay_key, self.verified.replay_window
        if replay_key is not None:
            await claim_delivery(
                self.redis,
                self.keys,
                webhook=self.webhook,
                replay_key=replay_key,
                window_seconds=window,
                run_id=run_id,
            )

    async def release(self, run_id: str) -> None:
        replay_key = self.verified.replay_key
        if replay_key is not None:
            await release_delivery(
                self.redis, self.keys, webhook=self.webhook, replay_key=replay_key, run_id=run_id
            )


def _record_firing(fq: Flowqueue, name: str, flow: str, run_id: str) -> None:
    """trigger.fired in the trigger registry, after the run started."""
    try:
        fq.trigger_registry.fired("webhook", name, flow, run_id)
    except Exception:  # the run started: a lost record must not refuse the delivery
        log.exception("could not record webhook %s firing run %s", name, run_id)


def check_webhooks(flows: FlowRegistry, settings: Settings) -> None:
    """At API start: a warning for each webhook whose secret is not set (its deliveries
    get 503), and for a body limit the store's cap lowers."""
    for name, (hook, _) in flows.webhooks.items():
        if hook.body_limit(settings) < hook.max_body_bytes:
            log.warning(
                "webhook %r takes bodies up to %d bytes, FLOWQUEUE_MAX_PAYLOAD_BYTES (not its "
                "max_body_bytes=%d)",
                name,
                hook.body_limit(settings),
                hook.max_body_bytes,
            )
        keys = getattr(hook.verifier, "keys", None)
        try:
            if keys is not None:
                keys()
        except ConfigurationError as exc:
            log.warning("webhook %r cannot verify deliveries (they get 503): %s", name, exc)


@public.post(
    "/api/_webhooks/{name}",
    response_model=WebhookAccepted,
    status_code=202,
    responses=problem_responses(401, 404, 408, 409, 413, 422, 503),
    openapi_extra=BODY,
)
async def webhook(request: Request, name: WebhookName) -> WebhookAccepted | Response:
    """Start a run of the flow bound to this webhook, once its signature checks out. No
    API token: the signature is the auth. The input is the JSON body, or ``{"body": ...,
    "headers": {...}}`` when the webhook selects headers; it is checked against the entry
    step's input model before anything is written. Refusals write nothing: 401 (``reason``:
    missing_header, malformed_header, bad_signature, stale_timestamp, future_timestamp),
    413 (over the webhook's max_body_bytes), 422 (not JSON, or not the input model), 409
    (a replayed delivery: ``run_id`` is the run the first one started)."""
    ctx = context_of(request)
    found = ctx.fq.flows.webhook(name)
    if found is None:
        raise ApiError(404, f"no webhook named {name!r} is declared on this server.")
    hook, graph = found
    limit = hook.body_limit(ctx.settings)
    body = await raw_body(request, limit=limit, limit_name=f"max_body_bytes of webhook {name!r}")
    try:
        verified = hook.verify(body, request.headers)
    except WebhookRejected as exc:
        return problem(401, str(exc), reason=exc.reason)
    except ConfigurationError as exc:  # the detail names settings: the log only
        log.error("webhook %r cannot verify a delivery: %s", name, exc)
        raise ApiError(
            503, f"webhook {name!r} is not configured on this server; see the API's log."
        ) from None
    value = parse_json(body, unique_keys=True)
    run_input = hook.run_input(value, request.headers)
    trigger: dict[str, Any] = {"kind": "webhook", "name": name, "delivery_id": verified.delivery_id}
    key = hook.idempotency_key(verified, value)
    orchestrator = ctx.fq.orchestrator
    await run_in_threadpool(orchestrator.check_start, graph.name, run_input, trigger)
    run_id = new_run_id()
    replays = Replays(ctx.redis, ctx.fq.keys, name, verified)
    try:
        await replays.claim(run_id)
    except WebhookRejected as exc:
        return problem(409, str(exc), reason=exc.reason, **exc.about)
    try:
        started = await run_in_threadpool(
            orchestrator.start_run,
            graph.name,
            run_input,
            run_id=run_id,
            trigger=trigger,
            idempotency_key=key,
            idempotency_scope="webhook",
        )
    except BaseException:
        await replays.release(run_id)  # so that the sender's retry is accepted
        raise
    if started != run_id:
        # The event id started a run before (a retry signed anew): point the claim there.
        await replays.release(run_id)
        with contextlib.suppress(WebhookRejected):
            await replays.claim(started)
    else:  # a replayed event id started nothing: no firing
        await run_in_threadpool(_record_firing, ctx.fq, name, graph.name, run_id)
    return WebhookAccepted(
        webhook=name, flow=graph.name, run_id=started, replayed=started != run_id
    )


ROUTERS = (public,)
