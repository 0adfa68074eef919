"""The whole spatial tick on a big rig: 64 moving voices, 256 speakers, 50 Hz, ADM-OSC out.

What `agent.spatial.runtime.SpatialRuntime.tick` does on stage, at the issue's scale: the engine
evaluates every voice's gesture (64 orbits, each its own speed, height and direction, clamped to
the dome), VBAP computes their gains on a 256-speaker dome (bench/panning.py's Fibonacci dome,
with the imaginary nadir), and the sender encodes ADM-OSC (xyz for every voice that moved: all of
them, every tick; names, gains and mutes on the 1 Hz refresh) into bundles of at most 1400 bytes
and sends them over UDP to a receiver in another process (liblo's `oscdump`, when installed;
else a socket that only drains). Ticks run at 50 Hz on absolute deadlines, sleeping between, as
the runtime does. Prints the per-tick cost p50/p99/max, its parts, and the CPU share of one core
(sum of tick costs / wall time, and the process CPU time / wall time).

Peer in the same run, on the same frames, paced the same way after ours (interleaving the two
would leave each tick with the other's cold caches): the plain python-osc way, a SimpleUDPClient
sending one unbundled /adm/obj/n/xyz message per voice per tick (no change tracking, no bundles).
Target (issue 5): <= 5% of one core.

    .venv/bin/python bench/spatial_tick.py [--seconds 10] [--voices 64] [--speakers 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time

import numpy as np
from _common import heading, show, show_ratio, sleep_until_ns
from panning import fibonacci_dome
from pythonosc.udp_client import SimpleUDPClient

from agent.io.osc_spatial import Destination, SpatialSender
from agent.service import freeze_heap
from agent.spatial.choreography import direction
from agent.spatial.engine import SpatialEngine
from agent.spatial.panning import Vbap
from agent.spatial.trajectory import Gesture


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def receiver(port: int) -> subprocess.Popen[bytes] | socket.socket:
    """oscdump if installed (a real OSC peer decoding everything), else a draining socket."""
    if shutil.which("oscdump"):
        return subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.DEVNULL)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    return s


def engine(voices: int) -> SpatialEngine:
    names = [f"v{i + 1}" for i in range(voices)]
    e = SpatialEngine(floor_z=0.0, players={}, style="orbit", section_styles={}, seed=1,
                      output="out", voices=names)
    rng = np.random.default_rng(1)
    for name in names:
        start = direction(float(rng.uniform(-180, 180)), float(rng.uniform(0, 70)), 0.95)
        e.gestures[name] = Gesture("orbit", 0, start,
                                   speed=float(rng.uniform(0.03, 0.3) * rng.choice([-1, 1])))
    return e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--voices", type=int, default=64)
    ap.add_argument("--speakers", type=int, default=256)
    ap.add_argument("--hz", type=float, default=50.0)
    args = ap.parse_args()
    ours_port, peer_port = free_port(), free_port()
    sinks = [receiver(ours_port), receiver(peer_port)]
    time.sleep(0.3)  # let the receivers bind (no assertion depends on it: they only drain)
    vbap = Vbap(fibonacci_dome(args.speakers))
    e = engine(args.voices)
    sender = SpatialSender([Destination("127.0.0.1", ours_port, "adm", max_rate_hz=args.hz,
                                        refresh_hz=1.0)])
    naive = SimpleUDPClient("127.0.0.1", peer_port)
    period = round(1e9 / args.hz)
    ticks = round(args.seconds * args.hz)
    tick_ns, frame_ns, gains_ns, send_ns, naive_ns = [], [], [], [], []
    heading(f"{args.voices} voices, {args.speakers}-speaker dome, {args.hz:g} Hz, "
            f"{args.seconds:g} s, ADM-OSC to "
            + ("oscdump" if isinstance(sinks[0], subprocess.Popen) else "a draining socket"))
    freeze_heap()  # as `perform` does after start-up
    wall0, cpu0 = time.perf_counter_ns(), time.process_time_ns()
    next_ns = time.monotonic_ns()
    ours_cost = 0
    frames = []
    for _ in range(ticks):  # ours alone: nothing else runs between ticks, as on stage
        sleep_until_ns(next_ns)
        t0 = time.perf_counter_ns()
        frame = e.frame(next_ns)
        t1 = time.perf_counter_ns()
        gains = vbap.gains(np.array([(v.x, v.y, v.z) for v in frame.voices]))
        t2 = time.perf_counter_ns()
        sender.send(frame)
        t3 = time.perf_counter_ns()
        frame_ns.append(t1 - t0)
        gains_ns.append(t2 - t1)
        send_ns.append(t3 - t2)
        tick_ns.append(t3 - t0)
        ours_cost += t3 - t0
        frames.append(frame)
        next_ns += period
    wall = time.perf_counter_ns() - wall0
    cpu = time.process_time_ns() - cpu0
    next_ns = time.monotonic_ns()
    for frame in frames:  # then the peer, paced the same, on the same frames
        sleep_until_ns(next_ns)
        t3 = time.perf_counter_ns()
        for v in frame.voices:
            naive.send_message(f"/adm/obj/{v.number}/xyz", [v.x, v.y, v.z])
        naive_ns.append(time.perf_counter_ns() - t3)
        next_ns += period
    assert gains.shape == (args.voices, args.speakers)
    ours = show("tick: frame + VBAP + ADM-OSC send", tick_ns, target="<= 5% of a core")
    show("  frame (64 gestures evaluated)", frame_ns)
    show("  VBAP gains", gains_ns)
    show("  ADM-OSC encode + bundles + send", send_ns)
    peer = show("peer: python-osc, one message/voice", naive_ns)
    share = ours_cost / wall
    print(f"  CPU share of one core: ticks {100 * share:.1f}% (target <= 5%); the process over "
          f"the same time {100 * cpu / wall:.1f}% (with the sleeps' and timers' own cost)")
    show_ratio("send p50 (ours / python-osc peer)", float(np.median(send_ns)), peer.p50)
    show_ratio("tick p99 (ours / peer's send p99)", ours.p99, peer.p99)
    stats = sender.stats
    print(f"  sender stats {stats}")
    sender.close()
    for sink in sinks:
        if isinstance(sink, subprocess.Popen):
            sink.kill()
            sink.wait()
        else:
            sink.close()
    print(f"  ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
