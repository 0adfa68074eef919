"""Telemetry figures from log records: reaction, model waits and fallbacks, JSON-safe."""

from __future__ import annotations

import json

from agent.record.telemetry import Telemetry
from agent.schedule.scheduler import SchedulerStats

MS = 1_000_000


def test_figures_from_the_records_a_run_writes() -> None:
    t = Telemetry()
    t.tap({"t": 10 * MS, "k": "emit", "cause": 9 * MS})
    t.tap({"t": 30 * MS, "k": "emit", "cause": 27 * MS})
    t.tap({"t": 12 * MS, "k": "emit"})  # a planned note with no cause: not a reaction
    t.tap({"t": 50 * MS, "k": "model", "what": "answer", "asked": 42 * MS, "why": "model"})
    t.tap({"t": 60 * MS, "k": "model", "what": "answer", "asked": 10 * MS, "why": "late"})
    stats = SchedulerStats(emitted=3, undelivered=1)
    snap = t.snapshot(stats, input_dropped=2, input_shed=5)
    assert snap["reaction_ms"] == {"n": 2, "p50": 2.0, "p99": 2.98, "max": 3.0}
    assert snap["model_wait_ms"]["max"] == 50.0 and snap["fallbacks"] == 1
    assert snap["dropped"] == {"input": 2, "output": 1, "shed": 5} and snap["emitted"] == 3
    assert snap["loop_lag_ms"] == {"n": 0, "p50": None, "p99": None, "max": None}
    json.dumps(snap, allow_nan=False)  # no NaN reaches the broker
