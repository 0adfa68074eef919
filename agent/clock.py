"""Injected clocks: monotonic on stage, manual in tests and replay.

All times in the agent are integer nanoseconds on one clock, so arithmetic is exact and a replay
on a manual clock reproduces the same decisions as the live run.
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def ms_to_ns(ms: float) -> int:
    """Config durations are milliseconds (people read them); the agent counts nanoseconds."""
    return round(ms * NS_PER_MS)


class Clock(Protocol):
    def now_ns(self) -> int: ...


class MonotonicClock:
    """The stage clock. Same source as the rtmidi callback timestamps (time.monotonic_ns)."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that only moves when told to; never goes backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, t_ns: int) -> None:
        if t_ns > self._now:
            self._now = t_ns
