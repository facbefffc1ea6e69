"""The production event store: one Redis Stream per run, appended by a Lua script.

``RedisEventStore`` is the blocking API (Celery workers); ``AsyncRedisEventStore`` the
asyncio API (the API server). Both encode and decode through ``RedisCommands``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from flowqueue.backend.archive import Archive, RunCursor, merge_runs
from flowqueue.backend.bridge import LoopThread
from flowqueue.backend.checks import check_cursor
from flowqueue.backend.live import HasId, LiveBuffer, LiveSink, LiveSource, merge_backfill_and_live
from flowqueue.backend.redis._commands import Entries, Plan, RedisCommands, unknown_cursor
from flowqueue.backend.redis._hub import (
    Decoder,
    RedisLiveHub,
    decode_feed_line,
    decode_run_line,
    retry_while_unreachable,
)
from flowqueue.backend.redis._pinned import PinnedScriptsRedis
from flowqueue.backend.redis.scripts import APPEND, FLOW_STATS, LIST_RUNS, SWEEP
from flowqueue.backend.store import ExpiredRun, FeedEntry, FlowStats, RunSummary
from flowqueue.errors import UnknownRun
from flowqueue.model.events import Event, NewEvent
from flowqueue.model.ids import ms_to_datetime
from flowqueue.settings import Settings

T = TypeVar("T", bound=HasId)
SWEEP_BATCH = 1_000  # expired runs one script call drops at most


def _cut(body: bytes | None) -> int:
    """Where a shortened event's run id and flow fields go back (run_lib.lua's ``stored``
    keeps ``{"kind":"<kind>","step":...``), or 0 for a body stored whole."""
    if body is None or not body.startswith(b'{"kind":"'):
        return 0
    cut = body.find(b'",', 9) + 2
    return cut if cut > 1 and body.startswith(b'"step":', cut) else 0


def shortened(entries: Entries) -> bool:
    """Whether a page of a run's log holds events stored without their run id and flow."""
    return any(_cut(fields.get(b"e")) for _, fields in entries)


def restore(entries: Entries, run_id: str, flow: str) -> Entries:
    """The page with each shortened event whole again, byte for byte as it was written: its
    run id and flow fields back, and the run id where it holds the byte 1."""
    run = run_id.encode()
    head = b'"run_id":"%s","flow":"%s",' % (run, flow.encode())
    out = []
    for entry_id, fields in entries:
        body = fields.get(b"e")
        cut = _cut(body)
        if body is not None and cut:
            fields = {**fields, b"e": body[:cut] + head + body[cut:].replace(b"\x01", run)}
        out.append((entry_id, fields))
    return out


def gone(run_id: str, flow: str) -> UnknownRun:
    """A write to a run whose keys have expired (the scripts write nothing)."""
    return UnknownRun(
        f"run {run_id} is gone: it ended and its retention passed, so nothing was written "
        "(FLOWQUEUE_<STATUS>_RETENTION_SECONDS say how long ended runs are kept).",
        run_id=run_id,
        flow=flow,
    )


class ScriptNames:
    """The names the scripts take besides ``RedisCommands``' (shared with the run
    coordinator): the rest of a run's keys, its flow's expiry set, and how long each end
    keeps a run (run_lib.lua); a flow's index, counters and expiry set (expiry_lib.lua)."""

    def __init__(self, commands: RedisCommands, settings: Settings) -> None:
        self.commands = commands
        self.keys = keys = commands.keys
        self._fixed: dict[str, Any] = {
            "expiring": keys.expiring,
            "archiving": keys.archiving,
            "archive": int(settings.archive_url is not None),
            "batch": SWEEP_BATCH,
            "completed_retention_ms": round(settings.completed_retention_seconds * 1000),
            "failed_retention_ms": round(settings.failed_retention_seconds * 1000),
            "cancelled_retention_ms": round(settings.cancelled_retention_seconds * 1000),
            "shortest_retention_ms": round(settings.shortest_retention_seconds * 1000),
        }

    def run(self, run_id: str, flow: str) -> dict[str, Any]:
        keys = self.keys
        own = {
            "steps": keys.run_steps(run_id),
            "emits": keys.run_emits(run_id),
            "awaits": keys.run_awaits(run_id),
            "copy": keys.run_copy(run_id),
        }
        return self.commands.run_call(run_id, flow) | self.flow(flow) | own

    def flow(self, flow: str) -> dict[str, Any]:
        keys = self.keys
        return self._fixed | {
            "runs": keys.flow_runs(flow),
            "stats": keys.flow_stats(flow),
            "feed": keys.feed,
            "expiry": keys.flow_expiry(flow),
            "flow": flow,
        }

    def append_call(self, events: Sequence[NewEvent]) -> dict[str, Any]:
        """append.lua's names for a batch ({} for none). A step attempt's events (they carry
        its attempt) need their run: one that is gone takes none of them."""
        call = self.commands.append_call(events)
        if not call:
            return {}
        needs_run = any("attempt" in event.meta for event in events)
        return call | self.run(events[0].run_id, events[0].flow) | {"needs_run": int(needs_run)}

    def appended(self, events: Sequence[NewEvent], ids: Sequence[bytes] | None) -> list[Event]:
        if ids is None:
            raise gone(events[0].run_id, events[0].flow)
        return self.commands.appended(events, ids)

    @staticmethod
    def expired(flow: str, rows: Sequence[Sequence[bytes]]) -> list[ExpiredRun]:
        return [
            ExpiredRun(
                run_id=run.decode(),
                flow=flow,
                status=status.decode(),
                expired_at=ms_to_datetime(int(at)),
            )
            for run, status, at in rows
        ]


def client_name(settings: Settings) -> str:
    """Shown by CLIENT LIST, so operators can tell flowqueue's connections apart."""
    return f"flowqueue:{settings.key_prefix}"


def _settings(settings: Settings | None, url: str | None) -> Settings:
    settings = settings or Settings()
    return settings if url is None else settings.model_copy(update={"redis_url": url})


class RedisEventStore:
    """``archive``: where a run whose keys are gone is read from, and archived runs are
    listed from (``FLOWQUEUE_ARCHIVE_URL``); the store closes it."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.settings = _settings(settings, url)
        self.archive = archive
        self.commands = RedisCommands(self.settings)  # shared with the run coordinator
        self.names = ScriptNames(self.commands, self.settings)  # so are these
        self.client: redis.Redis = PinnedScriptsRedis.from_url(
            self.settings.redis_url, client_name=client_name(self.settings)
        )
        self._aio: AsyncRedisEventStore | None = None
        self._bridge: tuple[LoopThread, AsyncRedisEventStore] | None = None

    def append(self, event: NewEvent) -> Event:
        return self.append_many((event,))[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        call = self.names.append_call(events)
        return self.names.appended(events, APPEND.run(self.client, **call)) if call else []

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        plan = self.commands.range_plan(run_id, after, limit, reverse=False)
        events = self._run_plan(plan, run_id)
        if not events and (archive := self._fallback(run_id)):
            return archive.read(run_id, after, limit)
        return events

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        plan = self.commands.range_plan(run_id, before, limit, reverse=True)
        events = self._run_plan(plan, run_id)
        if not events and (archive := self._fallback(run_id)):
            return archive.read_reverse(run_id, before, limit)
        return events

    def _fallback(self, run_id: str) -> Archive | None:
        """The archive, when ``run_id``'s log is not in Redis (expired, or never there)."""
        if self.archive is None or self.client.exists(self.commands.keys.run_stream(run_id)):
            return None
        return self.archive

    def read_feed(self, after: str | None = None, limit: int | None = None) -> list[FeedEntry]:
        return self._run_plan(self.commands.feed_plan(after, limit))

    def export_position(self, exporter: str) -> str | None:
        raw = self.client.get(self.names.keys.export_position(exporter))
        return None if raw is None else raw.decode()  # type: ignore[union-attr]

    def save_export_position(self, exporter: str, position: str) -> None:
        self.client.set(self.names.keys.export_position(exporter), position)

    def flow_stats(self, flow: str) -> FlowStats:
        counters = FLOW_STATS.run(self.client, **self.names.flow(flow))
        return self.commands.flow_stats(dict(zip(counters[::2], counters[1::2], strict=True)))

    def sweep(self, *, dry_run: bool = False) -> list[ExpiredRun]:
        flows: set[bytes] = self.client.smembers(self.names.keys.expiring)  # type: ignore[assignment]
        out: list[ExpiredRun] = []
        for flow in sorted(name.decode() for name in flows):
            seen = 0  # a dry run pages on; a sweep takes the oldest left each time
            while True:
                call = self.names.flow(flow) | {"dry": int(dry_run), "offset": seen * dry_run}
                rows = SWEEP.run(self.client, **call)
                out += self.names.expired(flow, rows)
                seen += len(rows)
                if len(rows) < SWEEP_BATCH:
                    break
        return out

    def _run_plan(self, plan: Plan[T], run_id: str | None = None) -> list[T]:
        """Drive ``plan``; the pages of ``run_id``'s log get its run id and flow back."""
        flow: str | None = None
        try:
            request = next(plan)
            while True:
                reverse, key, near, far, count = request
                fetch = self.client.xrevrange if reverse else self.client.xrange
                entries: Entries = fetch(key, near, far, count)  # type: ignore[assignment]
                if run_id is not None and shortened(entries):
                    flow = flow or self._flow(run_id)
                    entries = restore(entries, run_id, flow) if flow else entries
                request = plan.send(entries)
        except StopIteration as done:
            items: list[T] = done.value
            return items

    def _flow(self, run_id: str) -> str | None:
        flow = self.client.hget(self.commands.keys.run_meta(run_id), "flow")
        return None if flow is None else flow.decode()  # type: ignore[union-attr]

    def count(self, run_id: str) -> int:
        found = int(self.client.xlen(self.commands.keys.run_stream(run_id)))
        return self.archive.count(run_id) if found == 0 and self.archive else found

    def list_runs(self, flow: str, limit: int = 50, before: str | None = None) -> list[RunSummary]:
        archive = self.archive
        cursor = None if archive is None else self._cursor(archive, before)
        call = self.commands.list_runs_call(flow, limit, before, cursor)
        rows = LIST_RUNS.run(self.client, **call | self.names.flow(flow))
        live = self.commands.list_runs_result(rows, before)
        if archive is None:
            return live
        return merge_runs(live, archive.list_runs(flow, limit, cursor), limit)

    def _cursor(self, archive: Archive, before: str | None) -> RunCursor | None:
        """Where a page after run ``before`` starts, in Redis or the archive."""
        if before is None:
            return None
        ms = self.client.hget(self.commands.keys.run_meta(before), "started_ms")
        started = archive.started_ms(before) if ms is None else int(ms)
        if started is None:
            raise unknown_cursor(before)
        return RunCursor(started_ms=started, run_id=before)

    def subscribe(self, run_id: str, after: str | None = None) -> Iterator[Event]:
        check_cursor("after", after)
        if self._bridge is None:
            store = AsyncRedisEventStore(self.settings, archive=self.archive)
            self._bridge = (LoopThread("flowqueue-subscribe"), store)
        loop, store = self._bridge
        return loop.iterate(store.subscribe(run_id, after))

    @property
    def aio(self) -> AsyncRedisEventStore:
        if self._aio is None:
            self._aio = AsyncRedisEventStore(self.settings, archive=self.archive)
        return self._aio

    def close(self) -> None:
        if self._bridge is not None:
            loop, store = self._bridge
            loop.run(store.aclose())
            loop.stop()
            self._bridge = None
        self.client.close()
        if self.archive is not None:
            self.archive.close()


class AsyncRedisEventStore:
    """``archive``: as ``RedisEventStore``'s, called in a thread."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.settings = _settings(settings, url)
        self.archive = archive
        self.commands = RedisCommands(self.settings)
        self.names = ScriptNames(self.commands, self.settings)
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
        call = self.names.append_call(events)
        return (
            self.names.appended(events, await APPEND.run_async(self.client, **call)) if call else []
        )

    async def read(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[Event]:
        plan = self.commands.range_plan(run_id, after, limit, reverse=False)
        events = await self._run_plan(plan, run_id)
        if not events and (archive := await self._fallback(run_id)):
            return await asyncio.to_thread(archive.read, run_id, after, limit)
        return events

    async def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        plan = self.commands.range_plan(run_id, before, limit, reverse=True)
        events = await self._run_plan(plan, run_id)
        if not events and (archive := await self._fallback(run_id)):
            return await asyncio.to_thread(archive.read_reverse, run_id, before, limit)
        return events

    async def _fallback(self, run_id: str) -> Archive | None:
        """The archive, when ``run_id``'s log is not in Redis (expired, or never there)."""
        key = self.commands.keys.run_stream(run_id)
        if self.archive is None or await self.client.exists(key):
            return None
        return self.archive

    async def read_feed(
        self, after: str | None = None, limit: int | None = None
    ) -> list[FeedEntry]:
        return await self._run_plan(self.commands.feed_plan(after, limit))

    async def flow_stats(self, flow: str) -> FlowStats:
        counters = await FLOW_STATS.run_async(self.client, **self.names.flow(flow))
        return self.commands.flow_stats(dict(zip(counters[::2], counters[1::2], strict=True)))

    async def _run_plan(self, plan: Plan[T], run_id: str | None = None) -> list[T]:
        """Drive ``plan``; the pages of ``run_id``'s log get its run id and flow back."""
        flow: str | None = None
        try:
            request = next(plan)
            while True:
                reverse, key, near, far, count = request
                fetch = self.client.xrevrange if reverse else self.client.xrange
                entries: Entries = await fetch(key, near, far, count)  # type: ignore[assignment]
                if run_id is not None and shortened(entries):
                    flow = flow or await self._flow(run_id)
                    entries = restore(entries, run_id, flow) if flow else entries
                request = plan.send(entries)
        except StopIteration as done:
            items: list[T] = done.value
            return items

    async def _flow(self, run_id: str) -> str | None:
        flow = await self.client.hget(self.commands.keys.run_meta(run_id), "flow")
        return None if flow is None else flow.decode()  # type: ignore[union-attr]

    async def count(self, run_id: str) -> int:
        found = int(await self.client.xlen(self.commands.keys.run_stream(run_id)))
        if found == 0 and self.archive:
            return await asyncio.to_thread(self.archive.count, run_id)
        return found

    async def list_runs(
        self, flow: str, limit: int = 50, before: str | None = None
    ) -> list[RunSummary]:
        archive = self.archive
        cursor = None if archive is None else await self._cursor(archive, before)
        call = self.commands.list_runs_call(flow, limit, before, cursor)
        rows = await LIST_RUNS.run_async(self.client, **call | self.names.flow(flow))
        live = self.commands.list_runs_result(rows, before)
        if archive is None:
            return live
        archived = await asyncio.to_thread(archive.list_runs, flow, limit, cursor)
        return merge_runs(live, archived, limit)

    async def _cursor(self, archive: Archive, before: str | None) -> RunCursor | None:
        """Where a page after run ``before`` starts, in Redis or the archive."""
        if before is None:
            return None
        ms = await self.client.hget(self.commands.keys.run_meta(before), "started_ms")
        if ms is None:
            started = await asyncio.to_thread(archive.started_ms, before)
        else:
            started = int(ms)
        if started is None:
            raise unknown_cursor(before)
        return RunCursor(started_ms=started, run_id=before)

    @property
    def hub(self) -> RedisLiveHub:
        """The store's one Pub/Sub connection, shared by all its subscribers."""
        if self._hub is None:
            self._hub = RedisLiveHub(self.client)
        return self._hub

    def subscribe_feed(self, after: str | None = None) -> AsyncGenerator[FeedEntry, None]:
        check_cursor("after", after)
        return self._follow(self.live_feed(), after)

    def subscribe(self, run_id: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        check_cursor("after", after)
        return self._follow(self.live_run(run_id), after)

    def live_feed(self) -> LiveSource[FeedEntry]:
        """The feed's live channel and log, for followers that take live messages
        themselves (the API's SSE fan-out); ``subscribe_feed`` wraps it."""
        return self._source(self.commands.keys.feed_live, decode_feed_line, self.read_feed)

    def live_run(self, run_id: str) -> LiveSource[Event]:
        """A run's live channel and log (see ``live_feed``)."""
        read = partial(self.read, run_id)
        return self._source(self.commands.keys.run_live(run_id), decode_run_line, read)

    def _source(
        self, channel: str, decode: Decoder, read: Callable[[str | None, int], Awaitable[list[T]]]
    ) -> LiveSource[T]:
        page_size = self.commands.page_size

        async def read_page(cursor: str | None) -> list[T]:
            # Retried while Redis is unreachable (restarting), up to reconnect_timeout.
            return await retry_while_unreachable(
                lambda: read(cursor, page_size), self.settings.reconnect_timeout
            )

        def attach(sink: LiveSink[T]) -> AbstractAsyncContextManager[None]:
            return self.hub.attach(channel, sink, decode)

        return LiveSource(attach, read_page, page_size)

    async def _follow(self, source: LiveSource[T], after: str | None) -> AsyncGenerator[T, None]:
        """Every item after ``after`` once, in order: backfill, then live."""
        buffer: LiveBuffer[T] = LiveBuffer(
            self.settings.subscriber_buffer, asyncio.get_running_loop()
        )
        async with source.attach(buffer):
            async for item in merge_backfill_and_live(
                buffer, source.read_page, source.page_size, after
            ):
                yield item

    async def aclose(self) -> None:
        if self._hub is not None:
            await self._hub.aclose()
            self._hub = None
        await self.client.aclose()
        if self.archive is not None:
            await asyncio.to_thread(self.archive.close)
