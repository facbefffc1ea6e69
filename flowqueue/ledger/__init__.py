"""Run ledgers: atomic step transitions (``base``), on Redis and in memory."""

from flowqueue.ledger.base import Candidate, Claim, RunLedger, StepFinish, StepStart
from flowqueue.ledger.redis import RedisRunLedger

__all__ = [
    "Candidate",
    "Claim",
    "RedisRunLedger",
    "RunLedger",
    "StepFinish",
    "StepStart",
]
