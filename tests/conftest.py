"""Test harness: a throwaway redis-server per session; every test gets its own key prefix.

Tests never touch a Redis they did not start (the machine's own on :6379 is left alone).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

# Anything that falls back to the environment must fail loudly, never reach a real Redis
# (port 9 is "discard": nothing listens there).
os.environ["FLOWQUEUE_REDIS_URL"] = "redis://127.0.0.1:9/0"
os.environ.pop("CELERY_BROKER_URL", None)

from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.backend.store import EventStore
from flowqueue.settings import Settings


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: EmbeddedRedis) -> Settings:
    """Settings pointing at the test server, with a key prefix no other test uses."""
    return Settings(redis_url=redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:12]}")


StoreFactory = Callable[..., EventStore]


@pytest.fixture
def make_store(settings: Settings) -> Iterator[StoreFactory]:
    """Builds stores on the test server (``memory://`` runs this same store on a server of
    its own: tests/test_eager_memory.py)."""
    made: list[EventStore] = []

    def build(**overrides: Any) -> EventStore:
        impl = RedisEventStore(settings.model_copy(update=overrides))
        made.append(impl)
        return impl

    yield build
    for impl in made:
        impl.close()


@pytest.fixture
def store(make_store: StoreFactory) -> EventStore:
    return make_store()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Any]]:
    """Apps on the suite's server with the example and test flows; ``eager`` (the default)
    runs whole flows inline, else steps wait in the broker (no worker). No pump: nothing
    sweeps unless a test reads or sweeps."""
    from flowqueue import create_app

    apps: list[Any] = []

    def build(*, eager: bool = True, **overrides: Any) -> Any:
        app = create_app(
            settings.model_copy(update={"workers": "workers,tests.flows", **overrides})
        )
        app.conf.task_always_eager = eager
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.flowqueue.close()


@pytest.fixture
def make_coordinator(settings: Settings) -> Iterator[Any]:
    """Builds (store, run coordinator) pairs on the test server."""
    made: list[EventStore] = []

    def build(**overrides: Any) -> tuple[EventStore, Any]:
        redis_store = RedisEventStore(settings.model_copy(update=overrides))
        made.append(redis_store)
        return redis_store, RedisRunCoordinator(redis_store)

    yield build
    for impl in made:
        impl.close()


@pytest.fixture(scope="session")
def cluster(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Celery worker (and a client app) shared by the end-to-end tests."""
    from tests.worker_harness import Cluster

    group = Cluster(redis_server.url, tmp_path_factory.mktemp("workers"))
    group.start_worker(concurrency=2)
    yield group
    group.close()


@pytest.fixture(scope="session")
def api(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real ``flowqueue api`` process serving the shared cluster."""
    from tests.api_harness import ApiProcess

    process = ApiProcess(cluster.env, tmp_path_factory.mktemp("api") / "api.log")
    yield process
    process.stop()
