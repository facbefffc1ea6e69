"""Step statuses and outcomes as the coordinator's Lua scripts write them."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["completed", "failed", "retry"]
STEP_STATUSES = ("queued", "running", "waiting", "awaiting", "completed", "failed", "cancelled")
