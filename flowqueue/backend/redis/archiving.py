"""What the archiver reads and writes in Redis: the ended runs waiting for it
(``Keys.archiving``), their logs, the end of their wait (``archived.lua``) and the lease
that lets one worker archive at a time.

With an archive, the script that ends a run adds it to ``Keys.archiving`` instead of
setting its expiry (``run_lib.lua`` ``end_run``): nothing is deleted before it is copied,
however long the archive is away.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowqueue.backend.archive import ArchivedRun
from flowqueue.backend.redis.scripts import ARCHIVED
from flowqueue.backend.redis.store import RedisEventStore, restore, shortened
from flowqueue.backend.store import RunSummary

_META = ("flow", "status", "started_ms", "ended_ms")


class RedisArchiving:
    def __init__(self, store: RedisEventStore) -> None:
        self.store = store
        self.client = store.client
        self.keys = store.commands.keys

    def hold(self, token: str, lease_ms: int) -> bool:
        """Take or renew the archiver's lease for ``token``; False while another holds it."""
        key = self.keys.archiver
        if self.client.set(key, token, nx=True, px=lease_ms):
            return True
        if self.client.get(key) == token.encode():
            return bool(self.client.pexpire(key, lease_ms))
        return False

    def release(self, token: str) -> None:
        if self.client.get(self.keys.archiver) == token.encode():
            self.client.delete(self.keys.archiver)

    def waiting(self) -> int:
        """How many ended runs wait to be archived."""
        return int(self.client.zcard(self.keys.archiving))

    def take(self, limit: int) -> tuple[list[ArchivedRun], list[str]]:
        """The longest-waiting ended runs, up to ``limit``, with their whole logs (one
        round trip); and the ids of those that are no run to copy any more (gone, or
        started again), for ``archived`` to let go."""
        members: list[bytes] = self.client.zrange(self.keys.archiving, 0, limit - 1)  # type: ignore[assignment]
        run_ids = [member.decode() for member in members]
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(self.keys.run_meta(run_id), _META)
            pipe.xrange(self.keys.run_stream(run_id))
        replies = pipe.execute()
        runs, others = [], []
        for i, run_id in enumerate(run_ids):
            meta, entries = replies[2 * i], replies[2 * i + 1]
            flow, status, started, ended = (v.decode() if v else "" for v in meta)
            if not (flow and ended and entries):
                others.append(run_id)
                continue
            if shortened(entries):
                entries = restore(entries, run_id, flow)
            records = [(entry.decode(), fields.get(b"e")) for entry, fields in entries]
            summary = RunSummary.from_fields(run_id, flow, status, started, ended)
            runs.append(ArchivedRun(summary=summary, records=records))
        return runs, others

    def archived(self, runs: Sequence[ArchivedRun], others: Sequence[str]) -> int:
        """Runs the archive now holds start their retention (one round trip); ``others``
        leave the wait. Returns how many started their retention (a run appended to
        since it was read stays, for the next copy)."""
        names = self.store.names
        pipe = self.client.pipeline(transaction=False)
        for run in runs:
            call = names.run(run.summary.run_id, run.summary.flow)
            keys, argv = ARCHIVED.call(call | {"last_id": run.records[-1][0]})
            pipe.evalsha(ARCHIVED.sha, len(keys), *keys, *argv)
        for run_id in others:
            keys, argv = ARCHIVED.call(names.run(run_id, "") | {"last_id": ""})
            pipe.evalsha(ARCHIVED.sha, len(keys), *keys, *argv)
        if not runs and not others:
            return 0
        self.client.script_load(ARCHIVED.source)  # a restarted Redis has no scripts
        return sum(int(started) for started in pipe.execute())
