"""What kind of Redis the store talks to. flowqueue's scripts touch cross-run keys (timer
sets, the feed, flow indexes, signals) beside a run's own, so they need one Redis (or a
primary with replicas); on a Redis Cluster node they would fail with CROSSSLOT or MOVED
replies that say nothing about why. ``check_standalone`` says it up front instead."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flowqueue.errors import ConfigurationError
from flowqueue.settings import redact_url


def check_standalone(url: str, timeout: float = 2.0) -> None:
    """``ConfigurationError`` if ``url`` is a Redis Cluster node. A Redis that does not
    answer within ``timeout`` is not checked here: the first real call says so."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        info = client.info("cluster")
    except redis.RedisError:
        return
    finally:
        client.close()
    if info.get("cluster_enabled") in (1, "1"):
        raise ConfigurationError(
            f"FLOWQUEUE_REDIS_URL {redact_url(url)!r} is a Redis Cluster node, and flowqueue "
            "needs one Redis (or a primary with replicas): its scripts touch cross-run keys "
            "beside a run's own. Point FLOWQUEUE_REDIS_URL at a standalone Redis."
        )
