"""VBAP gains for many moving voices on a large rig, at the spatial tick rate.

64 voices orbit (each its own speed and direction, its elevation wobbling between about -30 and
+85 degrees) over a 256-speaker Fibonacci dome (the upper half of a 512-point Fibonacci sphere;
no speaker below the horizon, so VBAP adds its imaginary nadir). Every tick (50 Hz on absolute
deadlines, sleeping between ticks) computes the voices' new directions and their VBAP gains with
`agent.spatial.panning.Vbap`, as on stage: voices in a stable order, moving smoothly tick to
tick, so `gains` tries each voice's triangle of the last tick and the triangles around it, and
searches all triangles only for the voices still not placed (the default, cached=True). Prints
the tick cost and the gains' cost p50/p99/max, how many voices left their triangle and how many
needed the full search per tick, and the CPU share of one core at the tick rate: the sum of tick
costs / wall time, and the process's CPU time / wall time
(which also counts any BLAS threads and the sleeps' overhead).

Then, paced the same way on the very same directions: our full search (cached=False: every
triangle for every voice, each tick), and a plain per-voice loop over its own triangulation
(scipy ConvexHull + nadir, inverses precomputed): for each voice, g = inverse @ p over all
triangles in numpy, pick the triangle whose smallest gain is largest, normalise. Then all three
unpaced, back to back on each tick's directions (warm caches: this machine runs code just after a
sleep several times slower, so paced and unpaced figures differ a lot), and the cache's worst
cases unpaced: every voice jumping somewhere else each tick (the cache never holds), every voice
sitting on a speaker (a tie between triangles: always searched). Over a few ticks, a naive peer
too: solve a 3x3 per triangle per voice until one has no negative gain. Ratios are ours / peer
(the naive one: peer / ours); the largest gain differences between the cached path, the full
search and the per-voice peer are printed as a check (made after each timed call, outside its
figure). ADM-OSC encoding and sending are not part of these figures. About 3 x seconds + 3 s.
--voices 2 is the stage's count (the agent's lead and comping voices).

    .venv/bin/python bench/panning.py [--seconds 10] [--voices 64] [--speakers 256] [--hz 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from _common import Summary, heading, show, show_ratio, sleep_until_ns
from scipy.spatial import ConvexHull

from agent.spatial.frame import aed_to_xyz
from agent.spatial.panning import Vbap


def fibonacci_dome(n: int) -> np.ndarray:
    """The upper half (z > 0) of a 2n-point Fibonacci sphere: n speakers, (n, 3)."""
    i = np.arange(2 * n) + 0.5
    z = 1.0 - i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    points = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return points[:n]


class Orbits:
    """Each voice: its own azimuth speed (either way round) and a slow elevation wobble."""

    def __init__(self, voices: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.az0 = rng.uniform(-180.0, 180.0, voices)
        self.az_rate = rng.uniform(10.0, 120.0, voices) * rng.choice([-1.0, 1.0], voices)  # deg/s
        self.el_mid = rng.uniform(-10.0, 60.0, voices)
        self.el_amp = rng.uniform(5.0, 25.0, voices)
        self.el_hz = rng.uniform(0.05, 0.5, voices)
        self.el_phase = rng.uniform(0.0, 2.0 * np.pi, voices)

    def directions(self, t: float) -> np.ndarray:
        az = self.az0 + self.az_rate * t
        el = self.el_mid + self.el_amp * np.sin(2.0 * np.pi * self.el_hz * t + self.el_phase)
        return aed_to_xyz(az, np.clip(el, -85.0, 85.0))  # (V, 3)


class PerVoicePeer:
    """The textbook loop: its own hull (with the nadir), then one voice at a time."""

    def __init__(self, speakers: np.ndarray) -> None:
        self.n = len(speakers)
        points = np.vstack([speakers, [[0.0, 0.0, -1.0]]])
        hull = ConvexHull(points)
        tri = np.asarray(hull.simplices)
        m = np.transpose(points[tri], (0, 2, 1))
        keep = (np.abs(np.linalg.det(m)) > 1e-6) & (-hull.equations[:, 3] > 1e-3)
        self.triangles, self.matrices = tri[keep], m[keep]
        self.inverse = np.linalg.inv(self.matrices)

    def gains(self, directions: np.ndarray) -> np.ndarray:
        out = np.zeros((len(directions), self.n))
        for v, d in enumerate(directions):
            p = d / np.linalg.norm(d)
            g = self.inverse @ p  # (T, 3)
            t = int(np.argmax(g.min(axis=1)))
            self._put(out[v], t, g[t])
        return out

    def gains_naive(self, directions: np.ndarray) -> np.ndarray:
        out = np.zeros((len(directions), self.n))
        for v, d in enumerate(directions):
            p = d / np.linalg.norm(d)
            for t, m in enumerate(self.matrices):
                g = np.linalg.solve(m, p)
                if g.min() >= -1e-6:
                    self._put(out[v], t, g)
                    break
        return out

    def _put(self, row: np.ndarray, t: int, g: np.ndarray) -> None:
        for i, gi in zip(self.triangles[t], g, strict=True):
            if i < self.n:
                row[i] = max(gi, 0.0)
        row /= np.linalg.norm(row)


def paced(ticks: int, hz: float, work: Callable[[int], object]) -> tuple[list[int], int, int]:
    """Run work(k) for k < ticks on absolute deadlines; each call's cost, wall time, CPU time."""
    period_ns = round(1e9 / hz)
    cost: list[int] = []
    start = time.monotonic_ns()
    cpu0 = time.process_time_ns()
    for k in range(ticks):
        sleep_until_ns(start + k * period_ns)
        a = time.perf_counter_ns()
        work(k)
        cost.append(time.perf_counter_ns() - a)
    return cost, time.monotonic_ns() - start, time.process_time_ns() - cpu0


def paced_gains(ticks: int, hz: float, gains: Callable[[int], np.ndarray],
                reference: list[np.ndarray], label: str) -> tuple[Summary, float]:
    """Paced gains(k) for each tick; prints its cost (the check against reference[k] comes
    after the clock stops) and share of a core. Returns the cost summary and the largest gain
    difference from the reference."""
    cost: list[int] = []
    worst = 0.0

    def work(k: int) -> None:
        nonlocal worst
        a = time.perf_counter_ns()
        g = gains(k)
        cost.append(time.perf_counter_ns() - a)
        worst = max(worst, float(np.abs(g - reference[k]).max()))

    work_ns, wall_ns, cpu_ns = paced(ticks, hz, work)
    summary = show(label, cost, "ms")
    share(label, cost, wall_ns, cpu_ns - (sum(work_ns) - sum(cost)), hz, "")
    return summary, worst


def share(label: str, cost: list[int], wall_ns: int, cpu_ns: int, hz: float, target: str) -> None:
    print(f"  {label}: {100 * sum(cost) / wall_ns:.2f}% of one core at {hz:g} Hz (sum of tick "
          f"costs / wall), {100 * cpu_ns / wall_ns:.2f}% (process CPU / wall){target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--voices", type=int, default=64)
    ap.add_argument("--speakers", type=int, default=256)
    ap.add_argument("--hz", type=float, default=50.0)
    ap.add_argument("--naive-ticks", type=int, default=10)
    args = ap.parse_args()

    speakers = fibonacci_dome(args.speakers)
    t0 = time.perf_counter_ns()
    vbap = Vbap(speakers)
    setup_ns = time.perf_counter_ns() - t0
    full = Vbap(speakers)  # its own instance: the full search never touches the cache anyway
    orbits = Orbits(args.voices)
    ticks = round(args.seconds * args.hz)
    heading(f"VBAP: {args.voices} voices, {args.speakers}-speaker Fibonacci dome, "
            f"{args.hz:g} Hz for {args.seconds:g} s, paced (sleeping between ticks), "
            "cached (as on stage)")
    print(f"  layout: mode {vbap.mode}, nadir {vbap.has_nadir}, {len(vbap.triangles)} triangles; "
          f"set-up {setup_ns / 1e6:.1f} ms")
    history = [orbits.directions(k / args.hz) for k in range(ticks)]
    ours: list[np.ndarray] = []
    gains_ns: list[int] = []
    searched: list[int] = []
    moved: list[int] = []
    for _ in range(5):  # warm-up, outside the figures (the cache then holds tick 0's triangles)
        vbap.gains(history[0])
        full.gains(history[0], cached=False)

    def tick(k: int) -> None:
        d = orbits.directions(k / args.hz)
        a = time.perf_counter_ns()
        ours.append(vbap.gains(d))
        gains_ns.append(time.perf_counter_ns() - a)
        searched.append(vbap.searched)
        moved.append(vbap.moved)

    tick_ns, wall_ns, cpu_ns = paced(ticks, args.hz, tick)
    active = np.array([np.count_nonzero(g, axis=1) for g in ours])
    print(f"  {ticks} ticks in {wall_ns / 1e9:.2f} s; active speakers per voice "
          f"{active.min()}..{active.max()} (mean {active.mean():.2f})")
    print(f"  per tick, of {args.voices} voices: left their triangle for one around it mean "
          f"{np.mean(moved):.2f}, max {max(moved)} ({100 * np.mean(moved) / args.voices:.1f}% of "
          f"voice-ticks); needed the full search mean {np.mean(searched):.2f}, "
          f"max {max(searched)}")
    show("tick (directions + gains)", tick_ns, "ms")
    g_ours = show("gains, cached", gains_ns, "ms")
    share("tick", tick_ns, wall_ns, cpu_ns, args.hz, "")
    share("gains alone, cached", gains_ns, wall_ns, cpu_ns - (sum(tick_ns) - sum(gains_ns)),
          args.hz, "   (whole spatial tick's budget 5%, ADM-OSC encoding not included)")

    heading("our full search (cached=False), paced the same way on the same directions")
    g_full, worst_full = paced_gains(ticks, args.hz, lambda k: full.gains(history[k], cached=False),
                                     ours, "full search")
    print(f"  largest gain difference, cached vs full search: {worst_full:.2e}")
    show_ratio("gains p50", g_ours.p50, g_full.p50, "cached / full search")
    show_ratio("gains p99", g_ours.p99, g_full.p99, "cached / full search")

    heading("peer: per-voice numpy loop, paced the same way on the same directions")
    peer = PerVoicePeer(speakers)
    g_peer, worst = paced_gains(ticks, args.hz, lambda k: peer.gains(history[k]), ours,
                                "per-voice loop")
    print(f"  largest gain difference from ours (cached): {worst:.2e}")
    show_ratio("gains p50", g_ours.p50, g_peer.p50, "cached / per-voice loop")
    show_ratio("gains p99", g_ours.p99, g_peer.p99, "cached / per-voice loop")

    heading("all unpaced (back to back, warm caches), same directions")
    hot_ours: list[int] = []
    hot_full: list[int] = []
    hot_peer: list[int] = []
    vbap.gains(history[-1])  # the cache as it would be: the tick before the first one
    for d in history:
        a = time.perf_counter_ns()
        vbap.gains(d)
        b = time.perf_counter_ns()
        full.gains(d, cached=False)
        c = time.perf_counter_ns()
        peer.gains(d)
        hot_peer.append(time.perf_counter_ns() - c)
        hot_full.append(c - b)
        hot_ours.append(b - a)
    h_ours = show("ours, cached", hot_ours, "ms")
    h_full = show("ours, full search", hot_full, "ms")
    h_peer = show("per-voice loop", hot_peer, "ms")
    show_ratio("gains p50, unpaced", h_ours.p50, h_full.p50, "cached / full search")
    show_ratio("gains p50, unpaced", h_ours.p50, h_peer.p50, "cached / per-voice loop")

    heading("the cache's worst cases, unpaced")
    rng = np.random.default_rng(2)
    jumps = [rng.normal(size=(args.voices, 3)) for _ in range(min(ticks, 200))]
    parked = speakers[rng.integers(0, len(speakers), args.voices)]
    for label, frames in (("every voice jumps each tick", jumps),
                          ("every voice on a speaker", [parked] * len(jumps))):
        cost: list[list[int]] = [[], []]
        for d in frames:
            a = time.perf_counter_ns()
            g = vbap.gains(d)
            b = time.perf_counter_ns()
            gf = full.gains(d, cached=False)
            cost[1].append(time.perf_counter_ns() - b)
            cost[0].append(b - a)
            assert np.abs(g - gf).max() <= 1e-12
        print(f"  {label}: {vbap.searched} of {args.voices} voices searched")
        w = show("  cached", cost[0], "ms")
        f = show("  full search", cost[1], "ms")
        show_ratio("  gains p50, unpaced", w.p50, f.p50, "cached / full search")

    n = min(args.naive_ticks, len(history))
    if n:
        heading(f"peer: naive 3x3 solve per triangle per voice, unpaced ({n} ticks)")
        naive_ns = []
        for d in history[:n]:
            a = time.perf_counter_ns()
            peer.gains_naive(d)
            naive_ns.append(time.perf_counter_ns() - a)
        q = show("naive loop", naive_ns, "ms")
        show_ratio("gains p50, unpaced", q.p50, h_ours.p50, "naive loop / ours, cached")


if __name__ == "__main__":
    main()
