"""Samples, the latency store behind the summaries and the telemetry: exact figures for a few
samples, figures within the stated precision for many, only the most recent `capacity` kept, and
a summary that costs what was added since the last one, not what is kept (telemetry asks for the
scheduler's 200,000 latencies once a second on the music's loop)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from agent import stats
from agent.stats import EXACT_UP_TO, Samples

MS = 1_000_000


def exact(values: np.ndarray) -> tuple[float, float, float]:
    p50, p99 = np.percentile(values.astype(np.float64) / 1e6, [50, 99])
    return float(p50), float(p99), float(values.max()) / 1e6


def filled(values: np.ndarray, capacity: int = 200_000) -> Samples:
    s = Samples(capacity)
    for v in values.tolist():
        s.add(v)
    return s


def test_empty_and_few_samples_are_exact() -> None:
    assert all(math.isnan(v) for k, v in Samples().summary_ms().items() if k != "n")
    s = filled(np.array([2 * MS, 3 * MS, -1 * MS]))
    assert s.summary_ms() == {"n": 3, "p50": 2.0, "p99": 2.98, "max": 3.0}
    values = np.random.default_rng(0).integers(-MS, 5 * MS, EXACT_UP_TO)
    p50, p99, top = exact(values)
    assert filled(values).summary_ms() == {"n": EXACT_UP_TO, "p50": p50, "p99": p99,
                                           "max": top}


@pytest.mark.parametrize("draw", [
    lambda rng: rng.lognormal(13, 1.5, 50_000),  # latencies: 0.4 ms typical, long tail
    lambda rng: rng.normal(0, MS, 50_000),  # lateness either side of the deadline
    lambda rng: rng.integers(0, 300, 50_000),  # a few hundred ns: exact buckets
    lambda rng: np.full(50_000, 7 * MS),
])
def test_many_samples_are_within_the_stated_precision(draw: Any) -> None:
    """Within 1/256 of the exact figure (np.percentile's), n and max exact."""
    values = draw(np.random.default_rng(1)).astype(np.int64)
    got = filled(values).summary_ms()
    p50, p99, top = exact(values)
    assert got["n"] == 50_000 and got["max"] == top
    for figure, want in (("p50", p50), ("p99", p99)):
        assert abs(got[figure] - want) <= abs(want) / 256 + 1e-6, figure


def test_only_the_most_recent_capacity_samples_count() -> None:
    s = filled(np.full(5000, 9 * MS), capacity=4000)
    assert s.summary_ms()["p99"] == pytest.approx(9.0, rel=1 / 256)
    for v in [1 * MS] * 3000 + [2 * MS] * 1000:  # the 9 ms ones are all replaced
        s.add(v)
    assert s.summary_ms()["max"] == 2.0 and s.summary_ms()["n"] == 9000
    assert s.summary_ms()["p50"] == pytest.approx(1.0, rel=1 / 256)
    assert s.summary_ms()["p99"] == pytest.approx(2.0, rel=1 / 256)


def test_asking_as_it_goes_gives_what_asking_once_gives() -> None:
    """The histogram is brought up to date with each ask, the ring wrapping in between."""
    values = np.random.default_rng(2).lognormal(12, 2, 30_000).astype(np.int64)
    along = Samples(10_000)
    for i, v in enumerate(values.tolist()):
        along.add(v)
        if i % 777 == 0:
            along.summary_ms()
    assert along.summary_ms() == filled(values, 10_000).summary_ms()


def test_a_summary_costs_what_was_added_since_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: telemetry sorted the scheduler's 200,000 latencies every second (~10 ms on the
    loop). Counted here, not timed: how many values each summary sorts or bins."""
    touched: list[int] = []
    percentile, buckets = np.percentile, stats.buckets

    def counting_percentile(a: Any, *args: Any, **kwargs: Any) -> Any:
        touched.append(np.size(a))
        return percentile(a, *args, **kwargs)

    def counting_buckets(values: np.ndarray) -> np.ndarray:
        touched.append(values.size)
        return buckets(values)

    monkeypatch.setattr(np, "percentile", counting_percentile)
    monkeypatch.setattr(stats, "buckets", counting_buckets)
    s = Samples()
    rng = np.random.default_rng(3)
    for second in range(250):  # 1,000 latencies a second, the telemetry asking each second
        for v in rng.integers(0, 3 * MS, 1000).tolist():
            s.add(v)
        touched.clear()
        s.summary_ms()
        assert sum(touched) <= EXACT_UP_TO + 1000, second  # not the 200,000 kept
    assert s.summary_ms()["n"] == 250_000
