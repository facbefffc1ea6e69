"""Prometheus text exposition: the flows' counters (kept in Redis by every append, so
every API process reports the same numbers) and this process's SSE figures."""

from __future__ import annotations

from flowqueue.api.context import ApiContext
from flowqueue.backend.store import DURATION_BUCKETS_MS, FlowStats

RUN_STATUSES = ("running", "completed", "failed", "cancelled")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def render_metrics(ctx: ApiContext) -> str:
    lines = [
        "# HELP flowqueue_events_appended_total Events appended to the runs of a flow.",
        "# TYPE flowqueue_events_appended_total counter",
    ]
    runs = ["# HELP flowqueue_runs Runs of a flow by status.", "# TYPE flowqueue_runs gauge"]
    awaiting = [
        "# HELP flowqueue_steps_awaiting Steps awaiting a time, an event or a trigger.",
        "# TYPE flowqueue_steps_awaiting gauge",
    ]
    durations = [
        "# HELP flowqueue_step_duration_seconds How long finished step attempts took.",
        "# TYPE flowqueue_step_duration_seconds histogram",
    ]
    for flow in sorted(ctx.fq.flows.flows):
        stats = await ctx.store.flow_stats(flow)
        name = _label(flow)
        lines.append(f'flowqueue_events_appended_total{{flow="{name}"}} {stats.events}')
        for status in RUN_STATUSES:
            count = getattr(stats, status)
            runs.append(f'flowqueue_runs{{flow="{name}",status="{status}"}} {count}')
        awaiting.append(f'flowqueue_steps_awaiting{{flow="{name}"}} {stats.awaiting}')
        durations += _histogram(name, stats)
    m = ctx.metrics
    process = [
        "# HELP flowqueue_sse_clients SSE clients connected to this process.",
        "# TYPE flowqueue_sse_clients gauge",
        f"flowqueue_sse_clients {m.sse_clients}",
        "# HELP flowqueue_sse_events_sent_total Events sent to SSE clients by this process.",
        "# TYPE flowqueue_sse_events_sent_total counter",
        f"flowqueue_sse_events_sent_total {m.sse_events_sent}",
        "# HELP flowqueue_sse_slow_disconnects_total SSE clients disconnected for falling behind.",
        "# TYPE flowqueue_sse_slow_disconnects_total counter",
        f"flowqueue_sse_slow_disconnects_total {m.sse_disconnected_slow}",
    ]
    return "\n".join([*lines, *runs, *awaiting, *durations, *process]) + "\n"


def _histogram(flow: str, stats: FlowStats) -> list[str]:
    """The stored buckets are per range; Prometheus buckets are cumulative."""
    metric, out, total = "flowqueue_step_duration_seconds", [], 0
    for bound in DURATION_BUCKETS_MS:
        total += stats.step_ms_buckets.get(str(bound), 0)
        out.append(f'{metric}_bucket{{flow="{flow}",le="{bound / 1000:g}"}} {total}')
    total += stats.step_ms_buckets.get("inf", 0)
    out.append(f'{metric}_bucket{{flow="{flow}",le="+Inf"}} {total}')
    out.append(f'{metric}_sum{{flow="{flow}"}} {stats.step_ms_sum / 1000:g}')
    out.append(f'{metric}_count{{flow="{flow}"}} {total}')
    return out
