"""Webhook replay protection: each delivery's replay key is claimed once per window.

One ``SET NX PX`` decides: the first delivery with a replay key sets it (to the run id it
will start) and goes on; any other within the window finds it set and is refused. Keys
are hashed, so a sender's id of any length or alphabet makes a valid key name.
"""

from __future__ import annotations

import hashlib
import math

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from flowqueue.backend.redis.keys import Keys
from flowqueue.errors import WebhookRejected


def seen_key(keys: Keys, webhook: str, replay_key: str) -> str:
    return keys.webhook_seen(webhook, hashlib.sha256(replay_key.encode()).hexdigest())


async def claim_delivery(
    redis: aioredis.Redis,
    keys: Keys,
    *,
    webhook: str,
    replay_key: str,
    window_seconds: float,
    run_id: str,
) -> None:
    """Claim ``replay_key`` for ``window_seconds`` for the run ``run_id`` will start;
    ``WebhookRejected`` (reason ``replayed``, ``run_id`` the first run) if it was claimed
    within the window."""
    key = seen_key(keys, webhook, replay_key)
    window_ms = max(1, math.ceil(window_seconds * 1000))
    if await redis.set(key, run_id, nx=True, px=window_ms):
        return
    first = await redis.get(key)  # (SET NX GET needs Redis 7; the embedded server is 6.2)
    first_run = first.decode() if isinstance(first, bytes) else None
    raise WebhookRejected(
        f"Webhook {webhook!r} refused a replayed delivery: one with the same id or signed "
        f"content was accepted within the last {window_seconds:g} s"
        + (f" and started run {first_run}." if first_run else ".")
        + " A sender retrying a delivery that was accepted needs to do nothing more.",
        reason="replayed",
        run_id=first_run,
    )


async def release_delivery(
    redis: aioredis.Redis, keys: Keys, *, webhook: str, replay_key: str, run_id: str
) -> None:
    """Undo ``claim_delivery`` when the run could not be started, so the sender's retry is
    accepted; a claim since made by another delivery is left alone."""
    key = seen_key(keys, webhook, replay_key)
    async with redis.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            if await pipe.get(key) == run_id.encode():
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                pipe.delete(key)
                await pipe.execute()
        except WatchError:  # claimed again meanwhile: that claim is not ours to undo
            pass
