"""Reaction latency over real JACK ports: a played note in, the agent's harmony note out.

The bench plays notes on its virtual output "bench-player"; the agent (`python -m agent.cli
perform`, harmony mode, interval +7) listens there and plays into the bench's virtual input
"bench-synth". Send times and arrival times are stamped with time.monotonic_ns in this process.
Peer in the same run: a second bench input connected straight to "bench-player" stamps the
arrival of the same notes (the bare JACK hop). The per-note difference is what the agent adds.

    .venv/bin/python bench/reaction.py [--notes 2000] [--rate 50] [--period 128]
        [--load N] [--realtime PRIORITY]

With --load and/or --realtime, one run per combination (idle and loaded with N busy processes;
normal priority and [service] realtime_priority), printed side by side at the end, with the
agent's scheduler lateness from its log (bench/_contention.py).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _contention as contention
import rtmidi
from _common import (
    AgentProcess,
    Jack,
    Summary,
    find_port,
    heading,
    jack,
    show,
    show_ratio,
    sleep_until_ns,
    write_toml,
)

from agent.io.midi_in import delete_inputs
from agent.record.log import read_log

INTERVAL = 7
LOW, SPAN = 36, 60  # sent pitches 36..95; the harmony lands on 43..102
MATCH_WINDOW_NS = 1_000_000_000

Arrivals = dict[int, collections.deque[int]]  # sent pitch -> arrival times, in order


def listen(api: int, client: str, shift: int) -> tuple[rtmidi.MidiIn, Arrivals]:
    """A MidiIn whose callback stamps note-on arrivals, keyed by pitch - shift."""
    arrivals: Arrivals = collections.defaultdict(collections.deque)
    midi_in = rtmidi.MidiIn(api, client)

    def callback(event: tuple[list[int], float], _: object) -> None:
        t = time.monotonic_ns()
        data = event[0]
        if len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0:
            arrivals[data[1] - shift].append(t)

    midi_in.set_callback(callback)
    return midi_in, arrivals


def match(sent: list[tuple[int, int]], arrivals: Arrivals) -> list[int | None]:
    """For each (send time, pitch): the first unused arrival of that pitch within the window."""
    out: list[int | None] = []
    for t_send, pitch in sent:
        queue = arrivals[pitch]
        while queue and queue[0] < t_send:
            queue.popleft()  # stale: an arrival that no later note can claim
        if queue and queue[0] - t_send < MATCH_WINDOW_NS:
            out.append(queue.popleft() - t_send)
        else:
            out.append(None)
    return out


def play(player: rtmidi.MidiOut, notes: int, rate: float) -> list[tuple[int, int]]:
    """note-on/note-off pairs on absolute deadlines; returns (note-on send time, pitch)."""
    period = int(1e9 / rate)
    sent = []
    t0 = time.monotonic_ns() + 100_000_000
    for i in range(notes):
        pitch = LOW + (i * 7) % SPAN  # 7 and 60 are coprime: every pitch, spread out
        sleep_until_ns(t0 + i * period)
        t = time.monotonic_ns()
        player.send_message([0x90, pitch, 100])
        sent.append((t, pitch))
        sleep_until_ns(t0 + i * period + period // 2)
        player.send_message([0x80, pitch, 0])
    return sent


@dataclass(frozen=True)
class Figures:
    bare: Summary  # the bare JACK hop
    cost: Summary  # through the agent minus the bare hop, per note
    lateness: Summary  # the agent's scheduler lateness (sent - deadline), from its log


def write_config(path: Path, priority: int) -> None:
    table: dict[str, Any] = {
        "performance": {"name": "bench-reaction"},
        "midi": {"backend": "jack"},
        "players": [{"name": "keys", "port": "bench-player"}],
        "agent": {"mode": "harmony", "outputs": ["bench-synth"]},
        "harmony": {"intervals": [INTERVAL]},
    }
    if priority:
        table["service"] = {"realtime_priority": priority}
    write_toml(path, table)


def run_once(args: argparse.Namespace, server: Jack, tmp: Path,
             condition: contention.Condition) -> Figures:
    """One agent, the notes played through it and straight to the bare input, the busy
    processes running while they play (not while the agent starts); its figures."""
    priority = condition.priority
    api = rtmidi.API_UNIX_JACK
    player = rtmidi.MidiOut(api, "bench-keys")
    player.open_virtual_port("bench-player")
    synth, via_agent = listen(api, "bench-sink", INTERVAL)
    synth.open_virtual_port("bench-synth")
    config = tmp / f"performance-{priority}.toml"
    write_config(config, priority)
    agent = AgentProcess(config, server.env, tmp / "agent.err")
    bare = None
    try:
        recording = agent.wait_ready()
        print(f"  the agent runs at {contention.scheduler_of(agent.proc.pid)}")
        bare, direct = listen(api, "bench-bare", 0)
        bare.open_port(find_port(bare.get_ports(), "bench-player"), "bare-in")
        time.sleep(0.3)  # the new connection carries data only from a later cycle
        with contention.busy_load(condition.load):
            sent = play(player, args.notes, args.rate)
            time.sleep(0.5)
    finally:
        summary = agent.stop()
        if player is not None:
            player.delete()
        delete_inputs([port for port in (synth, bare) if port is not None])
    bare_s, cost = report(sent, match(sent, direct), match(sent, via_agent))
    _, records = read_log(recording / "log.jsonl")
    lateness = show("agent's scheduler lateness (log)",
                    [r["t"] - r["deadline"] for r in records if r["k"] == "emit"])
    print("\n-- the agent's own summary (after SIGTERM):")
    print(summary)
    return Figures(bare_s, cost, lateness)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--notes", type=int, default=2000,
                   help="note pairs to play, per run (default 2000)")
    p.add_argument("--rate", type=float, default=50.0, help="notes per second (default 50)")
    p.add_argument("--period", type=int, default=128, help="JACK period in frames (default 128)")
    contention.add_contention_options(p)
    args = p.parse_args(argv)
    runs = contention.conditions(args.load, args.realtime)
    heading(f"reaction: {args.notes} notes at {args.rate:.0f}/s through the agent (harmony)"
            + (f", {len(runs)} runs" if len(runs) > 1 else ""))
    results: dict[contention.Condition, Figures] = {}
    with (jack(f"bench-reaction-{os.getpid()}", period=args.period,
               realtime_priority=contention.jack_priority(args)) as server,
          tempfile.TemporaryDirectory(prefix="bench-reaction-") as tmp):
        contention.bench_realtime(args)
        for condition in runs:
            if len(runs) > 1:
                heading(condition.label)
            results[condition] = run_once(args, server, Path(tmp), condition)
    if len(runs) > 1:
        heading("side by side: idle and loaded, normal priority and realtime")
        for label, figure in (("bare JACK hop", "bare"), ("agent cost (difference)", "cost"),
                              ("agent's scheduler lateness", "lateness")):
            contention.side_by_side(label, {c: getattr(f, figure) for c, f in results.items()})
    server.report()
    print(f"  note: the agent's note takes a second JACK hop, which leaves at the earliest in the "
          f"next process cycle,\n  so the difference includes about one period "
          f"({server.period_ms:.2f} ms); try --period 32 or 64 to see it shrink")


def report(sent: list[tuple[int, int]], direct: list[int | None],
           via_agent: list[int | None]) -> tuple[Summary, Summary]:
    both = [(d, a) for d, a in zip(direct, via_agent, strict=True)
            if d is not None and a is not None]
    print(f"  sent {len(sent)} notes; bare arrivals {sum(d is not None for d in direct)}, "
          f"agent harmony arrivals {sum(a is not None for a in via_agent)}, "
          f"matched both {len(both)}")
    bare_s = show("bare JACK hop (send -> arrival)", [d for d, _ in both])
    agent_s = show("through the agent", [a for _, a in both])
    cost = show("difference (agent cost)", [a - d for d, a in both], target="p99 <= 2 ms")
    show_ratio("p50 ratio", agent_s.p50, bare_s.p50, "through agent / bare hop")
    show_ratio("p99 ratio", agent_s.p99, bare_s.p99, "through agent / bare hop")
    return bare_s, cost


if __name__ == "__main__":
    main()
