"""Every Redis key and channel name flowqueue uses, in one place.

Per-run keys put the run id in a hash tag (``{<run>}``) so all keys of one run share a
Redis Cluster slot. The cross-run keys (flow index, lifecycle feed) live in other slots.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str = "fq") -> None:
        self.prefix = prefix
        # Capped stream of every run's lifecycle events (dashboards, run lists).
        self.feed = f"{prefix}:events"
        # Pub/Sub channel mirroring ``feed``: one message per append call, a ``<feed id> <event id>
        # <body-json>`` line per lifecycle event.
        self.feed_live = f"{prefix}:events:live"
        # Sorted set: durable timers (``TimerSpec`` JSON) by due time in ms.
        self.timers = f"{prefix}:timers"
        # Sorted set: timers handed to Celery, by the time to hand them over again if they have not
        # fired (their worker died holding the countdown message).
        self.timers_handed = f"{prefix}:timers:handed"
        # Hash: event-wake timer -> the payload of the event that woke the wait.
        self.timer_payloads = f"{prefix}:timers:payloads"
        # Key prefix of the login rate limit's moving windows (one per client, kept by the
        # ``limits`` library).
        self.login_limit = f"{prefix}:login-limit"
        # Stream: worker.registered / worker.heartbeat / worker.deregistered.
        self.registry = f"{prefix}:registry"
        # Set: flows with runs in their expiry set (the ones a sweep visits).
        self.expiring = f"{prefix}:expiring"
        # Sorted set, with an archive (FLOWQUEUE_ARCHIVE_URL): ended runs by their end in ms,
        # until the archiver has copied them (run_lib.lua end_run, archived.lua).
        self.archiving = f"{prefix}:archiving"
        # String: the token of the one worker archiving now, expiring unless it renews it.
        self.archiver = f"{prefix}:archiver"
        # Hash: schedule -> the ms its next firing must be later than (its last fired tick,
        # or when it was resumed); moved only forward, by claim_ticks.lua / pause_schedule.lua.
        self.schedules = f"{prefix}:schedules"
        # Hash: paused schedule -> the ms it was paused.
        self.schedules_paused = f"{prefix}:schedules:paused"
        # Sorted set: '<tick> <run id> <schedule>' of each won tick whose run is not yet
        # confirmed started, scored by when another pump may start it (claim_ticks.lua).
        self.schedules_starting = f"{prefix}:schedules:starting"
        # Capped stream, the trigger registry: trigger.declared / trigger.undeclared (what
        # workers' code declares), trigger.fired (a start trigger's firing: its kind, name,
        # flow, run id; a schedule's tick), trigger.paused, trigger.resumed (TriggerEvent
        # JSON). Start triggers, not trigger ids (``trigger``).
        self.trigger_registry = f"{prefix}:triggers"
        # Hash: ``<kind>|<name>|<flow>`` -> ``<stream id> <TriggerEvent JSON>`` of its last
        # firing.
        self.trigger_last = f"{prefix}:triggers:last"
        # Hash: ``<kind>|<name>|<flow>`` -> ``<declaration JSON>\n<stream id> <TriggerEvent
        # JSON>`` of every start trigger a worker declared (declare_triggers.lua).
        self.trigger_declared = f"{prefix}:triggers:declared"

    def run_stream(self, run_id: str) -> str:
        """Stream: the run's log, the source of truth."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def run_live(self, run_id: str) -> str:
        """Pub/Sub channel: one message per append call, a ``<id> <body-json>`` line per event."""
        return f"{self.prefix}:run:{{{run_id}}}:live"

    def run_copy(self, run_id: str) -> str:
        """Stream, for a moment: the script that ends a run copies its log here and renames it
        back, so the log takes only the memory it fills (Redis 7 gives a stream's newest node
        4 KB ahead); holds nothing between script calls."""
        return f"{self.prefix}:run:{{{run_id}}}:copy"

    def run_meta(self, run_id: str) -> str:
        """Hash: flow, status, started_ms, ended_ms, awaiting, and expires_ms once an ended run
        is due to expire (bookkeeping kept by the append script)."""
        return f"{self.prefix}:run:{{{run_id}}}:meta"

    def run_steps(self, run_id: str) -> str:
        """Hash: ``<step>`` -> status (``STEP_STATUSES``: queued, running, retrying, awaiting,
        completed, failed, cancelled), and per step ``<step>|attempts``, ``<step>|lease`` (ms
        until which a running attempt is live), ``<step>|arg`` (input kept while it waits),
        ``<step>|timer`` (its pending timer) and ``<step>|since`` (where its next event
        wait starts looking in the signal streams)."""
        return f"{self.prefix}:run:{{{run_id}}}:steps"

    def run_emits(self, run_id: str) -> str:
        """Hash: event name -> JSON payload of its first emission in the run (joins)."""
        return f"{self.prefix}:run:{{{run_id}}}:emits"

    def run_awaits(self, run_id: str) -> str:
        """Hash: ``<step>|<await key>`` -> ``AwaitRecord`` JSON (awaits and ``once`` blocks
        a step has reached, replayed when it runs again)."""
        return f"{self.prefix}:run:{{{run_id}}}:awaits"

    def flow_runs(self, flow: str) -> str:
        """Sorted set (lexicographic): ``<start-ms, 13 digits>:<run id>``, one per run."""
        return f"{self.prefix}:runs:{flow}"

    def flow_stats(self, flow: str) -> str:
        """Hash: the flow's counters, kept by every append: ``events`` appended, runs by
        status (``running``, ``completed``, ``failed``, ``cancelled``; an expired run is
        taken off when it is dropped), ``awaiting`` (steps awaiting in runs not yet ended)
        and finished step attempts by duration (``step_ms_le_<bound>``, ``step_ms_sum``).
        ``events`` and the durations are totals ever appended: expiry leaves them."""
        return f"{self.prefix}:stats:{flow}"

    def flow_expiry(self, flow: str) -> str:
        """Sorted set: the flow's ended runs by the ms their keys expire, one member each:
        ``<status>|<its flow_runs member>|`` (what dropping it from the index and the
        counters needs once its own keys are gone)."""
        return f"{self.prefix}:expiry:{flow}"

    def signals(self, name: str) -> str:
        """Capped stream of recent emissions of event ``name`` (from any run or outside),
        so a wait registered just after an emission still sees it."""
        return f"{self.prefix}:signals:{name}"

    def waiters(self, name: str) -> str:
        """Hash: ``<run>|<step>|<key>`` -> waiter JSON (match, wake timer) of event ``name``."""
        return f"{self.prefix}:waiters:{name}"

    def idempotency(self, what: str, name: str, key: str) -> str:
        """Hash: what the first signal (``what`` ``signal``, ``name`` its name), start
        (``start``, the flow's name) or webhook delivery (``webhook``, the flow's name) with
        idempotency key ``key`` did: ``runs`` (JSON, flow ->
        run id), ``signal`` (its signal id), ``woken``, and ``done`` once its runs have
        started; expires after FLOWQUEUE_IDEMPOTENCY_SECONDS. (``|`` is in no name or key.)"""
        return f"{self.prefix}:idempotency:{what}:{name}|{key}"

    def trigger(self, trigger_id: str) -> str:
        """String: trigger JSON (run, step, await key, state); expires once used."""
        return f"{self.prefix}:trigger:{trigger_id}"

    def export_position(self, exporter: str) -> str:
        """String: the feed position up to which exporter ``exporter`` has handed every
        lifecycle event on (``flowqueue export``; runtime/exporter.py)."""
        return f"{self.prefix}:export:{exporter}"

    def webhook_seen(self, webhook: str, digest: str) -> str:
        """String: the run id the first delivery with this replay key started (``digest``,
        the key's SHA-256 hex); expires after the verifier's replay window."""
        return f"{self.prefix}:webhook-seen:{webhook}:{digest}"
