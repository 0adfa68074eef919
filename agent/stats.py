"""Latency figures: a bounded sample store with p50/p99/max, for summaries and telemetry; and
a throttle for log lines that bad input could otherwise flood."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

# Percentiles of more than EXACT_UP_TO samples come from a histogram of the samples kept, with
# SUB_BITS bits below each value's leading one: a bucket spans under 1/128 of its values, and a
# figure is its bucket's middle, so within 1/256 (0.4%) of the sample at that rank (exact below
# 256 ns). Telemetry asks for the scheduler's 200,000 latest latencies once a second on the
# music's loop: sorting them took ~10 ms there; the histogram is brought up to date with the
# samples added since the last ask and read in ~0.1 ms. Up to EXACT_UP_TO samples, the figures
# are np.percentile's (linear interpolation), as cheap at that size.
EXACT_UP_TO = 2048
SUB_BITS = 7
_TOP = 1 << 53  # magnitudes beyond 2^53 ns (104 days) count as 2^53 (float64 is exact below)
_MAGNITUDES = ((53 - SUB_BITS) << SUB_BITS) + (2 << SUB_BITS)  # buckets for 0..2^53: 6144
_BINS = 2 * _MAGNITUDES  # negative values below, in value order: lateness can be negative


def buckets(values: np.ndarray) -> np.ndarray:
    """The histogram bin of each value (int64 ns); bins are in value order."""
    magnitude = np.minimum(np.abs(values), _TOP)
    exponent = np.frexp(magnitude.astype(np.float64))[1] - 1  # the leading one's place
    shift = np.maximum(exponent - SUB_BITS, 0)
    bucket = (shift << SUB_BITS) + (magnitude >> shift)  # below 256: the value itself
    binned: np.ndarray = np.where(values >= 0, _MAGNITUDES + bucket, _MAGNITUDES - 1 - bucket)
    return binned


def _middles() -> np.ndarray:
    """Each bin's representative value: the middle of the values it holds."""
    bucket = np.arange(_MAGNITUDES, dtype=np.int64)
    shift = np.maximum((bucket >> SUB_BITS) - 1, 0)
    low = (bucket - (shift << SUB_BITS)) << shift
    middle = low + ((1 << shift) - 1) / 2
    return np.concatenate((-middle[::-1], middle))


_MIDDLE = _middles()


class Samples:
    """Keeps the most recent `capacity` samples (ns): cheap to add to on a hot path, and to
    summarise often (see EXACT_UP_TO for the precision of the percentiles; n and max are exact)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.count = 0  # every sample ever added
        self._ring = np.empty(capacity, dtype=np.int64)  # pages are touched only as it fills
        self._bins: np.ndarray | None = None  # the bin of each sample in the ring, and
        self._histogram: np.ndarray | None = None  # their counts, once they are needed,
        self._binned = 0  # up to this count
        self._summary: tuple[int, dict[str, float]] = (0, _EMPTY)

    def add(self, value_ns: int) -> None:
        try:
            self._ring[self.count % self.capacity] = value_ns
        except (OverflowError, ValueError):  # beyond int64, or not a number: kept as the limit
            self._ring[self.count % self.capacity] = _TOP if value_ns > 0 else -_TOP
        self.count += 1

    def summary_ms(self) -> dict[str, float]:
        """p50/p99/max in milliseconds (NaN when empty) of the samples kept."""
        if self._summary[0] != self.count:
            self._summary = (self.count, self._summarise())
        return dict(self._summary[1])

    def _summarise(self) -> dict[str, float]:
        kept = self._ring[:min(self.count, self.capacity)]
        if kept.size <= EXACT_UP_TO:
            p50, p99 = np.percentile(kept.astype(np.float64) / 1e6, [50, 99])
        else:
            p50, p99 = self._ranked((50, 99)) / 1e6
        return {"n": self.count, "p50": float(p50), "p99": float(p99),
                "max": float(kept.max()) / 1e6}

    def _ranked(self, percents: tuple[float, ...]) -> np.ndarray:
        """Percentiles from the histogram, interpolated between ranks as np.percentile does."""
        histogram = self._update_histogram()
        n = min(self.count, self.capacity)
        rank = np.array(percents) / 100 * (n - 1)
        low, high = np.floor(rank), np.ceil(rank)
        at = np.cumsum(histogram)
        below = _MIDDLE[np.searchsorted(at, low + 1)]
        above = _MIDDLE[np.searchsorted(at, high + 1)]
        result: np.ndarray = below + (rank - low) * (above - below)
        return result

    def _update_histogram(self) -> np.ndarray:
        """Bin the samples added since the last call, taking out those they replaced."""
        if self._bins is None or self._histogram is None:
            self._bins = np.empty(self.capacity, dtype=np.int16)
            self._histogram = np.zeros(_BINS, dtype=np.int64)
        new = self.count - self._binned
        if new >= self.capacity:  # every sample kept is new: start again
            self._bins[:] = buckets(self._ring)
            self._histogram = np.bincount(self._bins, minlength=_BINS)
        elif new:
            index = np.arange(self._binned, self.count)
            where = index % self.capacity
            replaced = self._bins[where[index >= self.capacity]]
            self._histogram -= np.bincount(replaced, minlength=_BINS)
            self._bins[where] = added = buckets(self._ring[where])
            self._histogram += np.bincount(added, minlength=_BINS)
        self._binned = self.count
        return self._histogram


_EMPTY = {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}


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
