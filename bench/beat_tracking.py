"""Tempo and beat phase from onsets (agent/listen/beat.py) on real music played "humanly".

Every work of the chosen split of the built corpora is played at a tempo drawn from 70-160 BPM
(quarter notes), each note with Gaussian timing jitter (sigma 10 ms), all voices merged into one
onset stream (a chord's notes arrive separately; the trackers merge them). Velocities are not
used: the corpora have one velocity, and durations are unknown when a note starts.

Figures: the share of works whose tempo is within 2% after 4 and 8 beats and at the end, at the
quarter-note level exactly, at the quarter, half or double level, and at any metrical level
(also the dotted quarter and dotted half, the felt beats of compound metres, in works whose bar
is a multiple of a dotted quarter); the beat-phase error (nearest predicted beat minus the true
time, predicted before that onset is heard) at on-beat notes after beat 8 while the tempo is at
the quarter level; the cost per onset. Peer in the same run: the median of the last 8
inter-onset intervals, folded into 80-160 BPM, its beats anchored on the last onset.

Command: python bench/beat_tracking.py [--split test] [--seed 1] [--limit N] [--corpora DIR]
(about a minute)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from _common import REPO, heading, show_ratio

from agent.listen.beat import MERGE_NS, BeatTracker
from agent.model.corpus import Work, load_corpus

CORPORA = ("oneill-1850", "bach-chorales")
CHECKPOINTS = (4, 8)


class Tracker(Protocol):
    def on_onset(self, t_ns: int, weight: float = 1.0) -> None: ...
    def bpm(self, now_ns: int) -> float | None: ...
    def nearest_beat(self, t_ns: int) -> int: ...


class Ours(BeatTracker):
    def bpm(self, now_ns: int) -> float | None:
        est = self.estimate(now_ns)
        return None if est is None else est.bpm


class MedianIoi:
    """The peer: median of the last 8 intervals between merged onsets, folded into 80-160 BPM."""

    def __init__(self) -> None:
        self._t: deque[int] = deque(maxlen=9)
        self._start = -MERGE_NS - 1

    def on_onset(self, t_ns: int, weight: float = 1.0) -> None:
        if t_ns - self._start > MERGE_NS:
            self._start = t_ns
            self._t.append(t_ns)

    def period(self) -> float | None:
        if len(self._t) < 3:
            return None
        p = float(statistics.median(np.diff(np.array(self._t, dtype=np.float64)).tolist()))
        while p > 0.75e9:
            p /= 2
        while p < 0.375e9:
            p *= 2
        return p

    def bpm(self, now_ns: int) -> float | None:
        p = self.period()
        return None if p is None else 60e9 / p

    def nearest_beat(self, t_ns: int) -> int:
        p = self.period()
        if p is None:
            return t_ns
        return round(self._t[-1] + round((t_ns - self._t[-1]) / p) * p)


@dataclass
class Result:
    level: dict[str, list[str]] = field(default_factory=dict)  # checkpoint -> level per work
    phase_ms: list[float] = field(default_factory=list)
    beat_moments: int = 0
    cost_ns: list[int] = field(default_factory=list)


def classify(bpm: float | None, true_bpm: float, compound: bool) -> str:
    """exact | octave (half or double) | metrical (dotted levels) | wrong."""
    if bpm is None:
        return "wrong"
    beat = true_bpm / bpm  # the estimated beat in quarter notes
    if abs(beat - 1) <= 0.02:
        return "exact"
    if any(abs(beat / level - 1) <= 0.02 for level in (0.5, 2.0)):
        return "octave"
    if compound and any(abs(beat / level - 1) <= 0.02 for level in (1.5, 3.0)):
        return "metrical"
    return "wrong"


def play(work: Work, seed: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, zlib.crc32(work.id.encode())])
    bpm = float(rng.uniform(70, 160))
    ideal = work.onset * 60e9 / bpm
    times = ideal + rng.normal(0, 10e6, ideal.size)
    order = np.argsort(times, kind="stable")
    return bpm, times[order].round().astype(np.int64), ideal[order], work.onset[order]


def run(work: Work, seed: int, make: Callable[[], Tracker], result: Result) -> None:
    bpm, times, ideal, beats = play(work, seed)
    tracker = make()
    compound = (work.bar_beats / 1.5) % 1 == 0
    start = float(beats.min())
    ns_per_beat = 60e9 / bpm
    pending = list(CHECKPOINTS)
    heard_beats: set[float] = set()
    for t, t_ideal, b in zip(times.tolist(), ideal.tolist(), beats.tolist(), strict=True):
        while pending and b >= start + pending[0]:
            now = round(start * ns_per_beat + pending[0] * ns_per_beat)
            got = tracker.bpm(now)
            result.level.setdefault(str(pending.pop(0)), []).append(
                classify(got, bpm, compound))
        if b % 1 == 0 and b >= start + 8 and b not in heard_beats:
            heard_beats.add(b)
            result.beat_moments += 1
            got = tracker.bpm(round(t_ideal))
            if classify(got, bpm, compound) == "exact":
                result.phase_ms.append((tracker.nearest_beat(round(t_ideal)) - t_ideal) / 1e6)
        t0 = time.perf_counter_ns()
        tracker.on_onset(int(t))
        tracker.bpm(int(t))
        result.cost_ns.append(time.perf_counter_ns() - t0)
    for name in pending:
        result.level.setdefault(str(name), []).append("wrong")  # the work was too short
    result.level.setdefault("end", []).append(
        classify(tracker.bpm(int(times[-1])), bpm, compound))


def report(name: str, r: Result) -> dict[str, float]:
    figures: dict[str, float] = {}
    print(f"  {name}")
    for checkpoint, levels in r.level.items():
        n = len(levels)
        exact = levels.count("exact") / n
        octave = exact + levels.count("octave") / n
        metrical = octave + levels.count("metrical") / n
        figures[f"exact@{checkpoint}"] = exact
        label = f"after {checkpoint} beats" if checkpoint != "end" else "at the end"
        print(f"    {label:<16} within 2%: quarter {exact:6.1%}   quarter/half/double "
              f"{octave:6.1%}   any metrical level {metrical:6.1%}   (n={n})")
    phase = np.abs(np.array(r.phase_ms))
    if phase.size:
        p50, p90 = np.percentile(phase, [50, 90])
        figures["phase_p50"] = float(p50)
        print(f"    beat phase |error| p50 {p50:6.1f} ms  p90 {p90:6.1f} ms  (over "
              f"{phase.size} of {r.beat_moments} on-beat moments: those at the quarter level)")
    c50, c99 = np.percentile(r.cost_ns, [50, 99]) / 1e3
    figures["cost_p99"] = float(c99)
    print(f"    cost per onset (on_onset + estimate) p50 {c50:7.1f} µs  p99 {c99:7.1f} µs")
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="test", choices=("train", "valid", "test"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="works per corpus (0: all)")
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora", help="built corpora")
    args = ap.parse_args()
    for corpus_name in CORPORA:
        corpus = load_corpus(args.corpora / corpus_name)
        works = corpus.split(args.split)[: args.limit or None]
        heading(f"{corpus_name}: {len(works)} {args.split} works, 70-160 BPM, sigma 10 ms jitter")
        ours, peer = Result(), Result()
        for work in works:
            run(work, args.seed, Ours, ours)
            run(work, args.seed, MedianIoi, peer)
        a = report("BeatTracker", ours)
        b = report("peer: median of the last 8 IOIs", peer)
        for key in ("exact@4", "exact@8", "exact@end"):
            show_ratio(f"quarter-level share {key[6:]}", a[key], b[key], "tracker / peer")
        if "phase_p50" in a and "phase_p50" in b:
            show_ratio("phase |error| p50", a["phase_p50"], b["phase_p50"], "tracker / peer")
        show_ratio("cost p99", a["cost_p99"], b["cost_p99"], "tracker / peer")
        if math.isnan(a["exact@end"]):
            raise SystemExit("no works")


if __name__ == "__main__":
    main()
