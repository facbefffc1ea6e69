"""The production event store: one Redis Stream per run, appended by a Lua script.

``RedisEventStore`` is the blocking API (Celery workers); ``AsyncRedisEventStore`` the
asyncio API (the API server). Both encode and decode through ``RedisCommands``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

import redis
import redis.asyncio as aioredis

from flowqueue.backend.bridge import LoopThread
from flowqueue.backend.checks import check_cursor
from flowqueue.backend.live import HasId, merge_backfill_and_live
from flowqueue.backend.redis._commands import Plan, RedisCommands
from flowqueue.backend.redis._hub import (
    Decoder,
    RedisLiveHub,
    decode_feed_line,
    decode_run_line,
    retry_while_unreachable,
)
from flowqueue.backend.redis.scripts import APPEND, LIST_RUNS
from flowqueue.backend.store import FeedEntry, FlowStats, RunSummary
from flowqueue.model.events import Event, NewEvent
from flowqueue.settings import Settings

T = TypeVar("T", bound=HasId)


def client_name(settings: Settings) -> str:
    """Shown by CLIENT LIST, so operators can tell flowqueue's connections apart."""
    return f"flowqueue:{settings.key_prefix}"


def _settings(settings: Settings | None, url: str | None) -> Settings:
    settings = settings or Settings()
    return settings if url is None else settings.model_copy(update={"redis_url": url})


class RedisEventStore:
    def __init__(self, settings: Settings | None = None, *, url: str | None = None) -> None:
        self.settings = _settings(settings, url)
        self.commands = RedisCommands(self.settings)  # shared with the run coordinator
        self.client = redis.Redis.from_url(
            self.settings.redis_url, client_name=client_name(self.settings)
        )
        self._aio: AsyncRedisEventStore | None = None
        self._bridge: tuple[LoopThread, AsyncRedisEventStore] | None = None

    def append(self, event: NewEvent) -> Event:
        return self.append_many((event,))[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        call = self.commands.append_call(events)
        return self.commands.appended(events, APPEND.run(self.client, **call)) if call else []

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        return self._run_plan(self.commands.range_plan(run_id, after, limit, reverse=False))

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return self._run_plan(self.commands.range_plan(run_id, before, limit, reverse=True))

    def read_feed(self, after: str | None = None, limit: int | None = None) -> list[FeedEntry]:
        return self._run_plan(self.commands.feed_plan(after, limit))

    def flow_stats(self, flow: str) -> FlowStats:
        return self.commands.flow_stats(self.client.hgetall(self.commands.keys.flow_stats(flow)))

    def _run_plan(self, plan: Plan[T]) -> list[T]:
        try:
            request = next(plan)
            while True:
                reverse, key, near, far, count = request
                fetch = self.client.xrevrange if reverse else self.client.xrange
                request = plan.send(fetch(key, near, far, count))
        except StopIteration as done:
            items: list[T] = done.value
            return items

    def count(self, run_id: str) -> int:
        return int(self.client.xlen(self.commands.keys.run_stream(run_id)))

    def list_runs(self, flow: str, limit: int = 50, before: str | None = None) -> list[RunSummary]:
        rows = LIST_RUNS.run(self.client, **self.commands.list_runs_call(flow, limit, before))
        return self.commands.list_runs_result(rows, before)

    def subscribe(self, run_id: str, after: str | None = None) -> Iterator[Event]:
        check_cursor("after", after)
        if self._bridge is None:
            self._bridge = (LoopThread("flowqueue-subscribe"), AsyncRedisEventStore(self.settings))
        loop, store = self._bridge
        return loop.iterate(store.subscribe(run_id, after))

    @property
    def aio(self) -> AsyncRedisEventStore:
        if self._aio is None:
            self._aio = AsyncRedisEventStore(self.settings)
        return self._aio

    def close(self) -> None:
        if self._bridge is not None:
            loop, store = self._bridge
            loop.run(store.aclose())
            loop.stop()
            self._bridge = None
        self.client.close()


class AsyncRedisEventStore:
    def __init__(self, settings: Settings | None = None, *, url: str | None = None) -> None:
        self.settings = _settings(settings, url)
        self.commands = RedisCommands(self.settings)
        # Many concurrent readers (SSE backfills) queue for a connection instead of
        # failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self.settings.redis_url,
            max_connections=self.settings.redis_max_connections,
            timeout=self.settings.reconnect_timeout,
            client_name=client_name(self.settings),
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self._hub: RedisLiveHub | None = None

    async def append(self, event: NewEvent) -> Event:
        return (await self.append_many((event,)))[0]

    async def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        call = self.commands.append_call(events)
        return (
            self.commands.appended(events, await APPEND.run_async(self.client, **call))
            if call
            else []
        )

    async def read(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return await self._run_plan(self.commands.range_plan(run_id, after, limit, reverse=False))

    async def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return await self._run_plan(self.commands.range_plan(run_id, before, limit, reverse=True))

    async def read_feed(
        self, after: str | None = None, limit: int | None = None
    ) -> list[FeedEntry]:
        return await self._run_plan(self.commands.feed_plan(after, limit))

    async def flow_stats(self, flow: str) -> FlowStats:
        raw = await self.client.hgetall(self.commands.keys.flow_stats(flow))
        return self.commands.flow_stats(raw)

    async def _run_plan(self, plan: Plan[T]) -> list[T]:
        try:
            request = next(plan)
            while True:
                reverse, key, near, far, count = request
                fetch = self.client.xrevrange if reverse else self.client.xrange
                request = plan.send(await fetch(key, near, far, count))
        except StopIteration as done:
            items: list[T] = done.value
            return items

    async def count(self, run_id: str) -> int:
        return int(await self.client.xlen(self.commands.keys.run_stream(run_id)))

    async def list_runs(
        self, flow: str, limit: int = 50, before: str | None = None
    ) -> list[RunSummary]:
        call = self.commands.list_runs_call(flow, limit, before)
        rows = await LIST_RUNS.run_async(self.client, **call)
        return self.commands.list_runs_result(rows, before)

    @property
    def hub(self) -> RedisLiveHub:
        """The store's one Pub/Sub connection, shared by all its subscribers."""
        if self._hub is None:
            self._hub = RedisLiveHub(self.client, self.settings.subscriber_buffer)
        return self._hub

    def subscribe_feed(self, after: str | None = None) -> AsyncGenerator[FeedEntry, None]:
        check_cursor("after", after)
        return self._follow(self.commands.keys.feed_live, decode_feed_line, self.read_feed, after)

    def subscribe(self, run_id: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        check_cursor("after", after)
        read = partial(self.read, run_id)
        return self._follow(self.commands.keys.run_live(run_id), decode_run_line, read, after)

    async def _follow(
        self,
        channel: str,
        decode: Decoder,
        read: Callable[[str | None, int], Awaitable[list[T]]],
        after: str | None,
    ) -> AsyncGenerator[T, None]:
        """Backfill with ``read`` (retried while Redis is unreachable), then live from
        ``channel``: every item after ``after`` once, in order."""
        page_size = self.commands.page_size

        async def read_page(cursor: str | None) -> list[T]:
            return await retry_while_unreachable(
                lambda: read(cursor, page_size), self.settings.reconnect_timeout
            )

        async with self.hub.attach(channel, decode) as buffer:
            async for item in merge_backfill_and_live(buffer, read_page, page_size, after):
                yield item

    async def aclose(self) -> None:
        if self._hub is not None:
            await self._hub.aclose()
            self._hub = None
        await self.client.aclose()
