"""Where runs are kept: the interfaces, and their Redis implementation in ``redis/``.

``store`` is the event store (append, read, subscribe, run lists, counters);
``coordinator`` the run coordinator (the atomic step transitions: start a run, claim a
delivery, emit, suspend, resume, cancel, finish). ``live`` merges backfill with live
messages without a gap; ``checks`` validates cursors and batches before any call;
``bridge`` runs the asyncio store from blocking code.

May import: ``model``, ``settings``, ``errors``. Never the runtime, the API or the CLI.
"""
