"""``flowqueue gc``: drop expired runs from the flow index, the lifecycle feed and the
counters now; ``--dry-run`` lists what would go.

Redis deletes an ended run's own keys when its retention passes (the script that ends the
run sets their expiry); every worker drops such runs from what lists and counts them every
``FLOWQUEUE_RETENTION_SWEEP_SECONDS``, so this is for when no worker runs, or to look.
"""

from __future__ import annotations

import click

from flowqueue.backend.store import ExpiredRun
from flowqueue.cli._app import app_of
from flowqueue.runtime.engine import flowqueue_of


def render(run: ExpiredRun) -> str:
    expired = run.expired_at.isoformat(timespec="seconds")
    return f"{run.run_id}  {run.flow:<16} {run.status:<10} expired {expired}"


@click.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Only list the runs that would go.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON lines.")
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Drop expired runs from the flow index, the feed and the counters now.

    An ended run is kept FLOWQUEUE_COMPLETED_RETENTION_SECONDS,
    FLOWQUEUE_FAILED_RETENTION_SECONDS or FLOWQUEUE_CANCELLED_RETENTION_SECONDS (0:
    forever); then Redis deletes its keys, and every worker drops it from what lists and
    counts runs. A line is: run id, flow, status, when it expired."""
    expired = flowqueue_of(app_of(ctx)).store.sweep(dry_run=dry_run)
    for run in expired:
        click.echo(run.model_dump_json() if as_json else render(run))
    if not as_json:
        runs = f"{len(expired)} expired run{'' if len(expired) == 1 else 's'}"
        click.echo(f"would drop {runs}" if dry_run else f"dropped {runs}")
