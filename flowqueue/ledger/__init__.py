"""Run ledgers: atomic step transitions (``base``), on Redis and in memory."""

from flowqueue.ledger.base import Candidate, Claim, RunLedger, StepFinish, StepStart
from flowqueue.ledger.memory import MemoryRunLedger
from flowqueue.ledger.redis import RedisRunLedger

__all__ = [
    "Candidate",
    "Claim",
    "MemoryRunLedger",
    "RedisRunLedger",
    "RunLedger",
    "StepFinish",
    "StepStart",
]
