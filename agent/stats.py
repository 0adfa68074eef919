"""Latency figures: a bounded sample store with p50/p99/max, for summaries and telemetry; and
a throttle for log lines that bad input could otherwise flood."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Samples:
    """Keeps the most recent `capacity` samples (ns); cheap to add to on a hot path."""

    capacity: int = 200_000
    count: int = 0
    _values: list[int] = field(default_factory=list)

    def add(self, value_ns: int) -> None:
        if len(self._values) < self.capacity:
            self._values.append(value_ns)
        else:
            self._values[self.count % self.capacity] = value_ns
        self.count += 1

    def summary_ms(self) -> dict[str, float]:
        """p50/p99/max in milliseconds (NaN when empty)."""
        if not self._values:
            return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        arr = np.asarray(self._values, dtype=np.float64) / 1e6
        return {
            "n": self.count,
            "p50": float(np.percentile(arr, 50)),
            "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max()),
        }


class LogThrottle:
    """At most one log line a second per key (a flood of bad input must not become a flood of
    log lines on the music's loop); counts the lines held back."""

    def __init__(self, now_s: Callable[[], float] = time.monotonic) -> None:
        self._now_s = now_s
        self._said: dict[str, tuple[float, int]] = {}  # key -> (last said, held back since)

    def due(self, key: str = "") -> int | None:
        """None: hold this line back; else say it now, with how many were held back since."""
        last, held = self._said.get(key, (-math.inf, 0))
        now = self._now_s()
        if now - last < 1.0:
            self._said[key] = (last, held + 1)
            return None
        self._said[key] = (now, 0)
        return held
