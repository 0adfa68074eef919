"""Scheduler lateness over a long run with the agent playing (respond mode, the demo piece).

The agent (`python -m agent.cli perform`, the demo's settings with real named ports) hears the demo
rehearsal played at real speed over JACK from the bench's two virtual outputs, looped until the
time is up, and plays into the bench's virtual input. Then SIGTERM; lateness (sent - deadline) of
every message it emitted is read from its log. Peer in the same run, in its own process: a plain
asyncio scheduler (loop.call_at at each deadline, no early wake, no spin) fed the deadlines a fast
replay of the same input plans, on the same time base (at the agent's priority).

    .venv/bin/python bench/scheduler.py [--seconds 120] [--load N] [--realtime PRIORITY]

With --load and/or --realtime, one run per combination (idle and loaded with N busy processes;
normal priority and [service] realtime_priority), printed side by side at the end
(bench/_contention.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import tempfile
import time
import tomllib
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import _contention as contention
import rtmidi
from _common import (
    REPO,
    AgentProcess,
    Jack,
    Summary,
    heading,
    jack,
    show,
    show_ratio,
    sleep_until_ns,
    write_toml,
)

from agent import config as config_mod
from agent.events import Heard
from agent.io.midi_in import delete_inputs
from agent.record.log import read_log
from agent.record.replay import Recording, replay_fast
from agent.record.smf import read_players

DEMO = REPO / "performances" / "demo"
LOOP_GAP_NS = 2_000_000_000  # silence between two passes of the rehearsal
LEAD_IN_NS = 1_000_000_000
PATHS = (("model", "checkpoint"), ("spatial", "layout"), ("mqtt", "ca_file"))  # relative to DEMO


def looped_rehearsal(seconds: float) -> list[Heard]:
    """The demo rehearsal from time 0, repeated until `seconds` (times relative to the start)."""
    heard = read_players(DEMO / "rehearsal.mid")
    first, last = heard[0].time_ns, heard[-1].time_ns
    out: list[Heard] = []
    offset = 0
    while True:
        for h in heard:
            t = h.time_ns - first + offset
            if t >= seconds * 1e9:
                return out
            out.append(Heard(t, h.player, h.data))
        offset += last - first + LOOP_GAP_NS


def planned_deadlines(inputs: list[Heard], config: Path, out_dir: Path) -> list[int]:
    """Deadlines (relative to the first input) of what the agent emits for this input."""
    cfg = config_mod.load(config)
    players = list(dict.fromkeys(h.player for h in inputs))
    replay_fast(Recording(None, list(inputs), players, None), cfg, out_dir, "bench")
    _, records = read_log(out_dir / "log.jsonl")
    end = inputs[-1].time_ns + 1_000_000_000  # the live run stops a second after the last input
    return sorted(d for r in records if r["k"] == "emit"
                  if (d := r["deadline"] - inputs[0].time_ns) <= end)


def peer(deadlines: list[int], start: Any, out: Any, ready: Event, priority: int) -> None:
    """Child process: loop.call_at at every deadline; lateness = woke - deadline. At the agent's
    priority (SCHED_FIFO when it has one), so the two are compared alike."""
    if priority:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    ready.set()
    t0: int = start.get(timeout=60)

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        late: list[int] = []

        def fire(deadline: int) -> None:
            late.append(time.monotonic_ns() - deadline)

        for d in deadlines:
            loop.call_at((t0 + d) / 1e9, fire, t0 + d)
        while len(late) < len(deadlines):
            await asyncio.sleep(0.2)
        return late

    out.put(asyncio.run(asyncio.wait_for(run(), (deadlines[-1] if deadlines else 0) / 1e9 + 60)))


def collect(proc: Any, out: Any, wait_s: float) -> list[int]:
    try:
        late: list[int] = out.get(timeout=wait_s)
    except queue.Empty:
        late = []
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join()
    return late


def write_config(path: Path, priority: int) -> list[str]:
    """The demo's settings on the bench's ports, at `priority`; the players' names."""
    table = tomllib.loads((DEMO / "performance.toml").read_text(encoding="utf-8"))
    table["performance"]["name"] = "bench-scheduler"
    table["midi"]["backend"] = "jack"
    for player in table["players"]:
        player["port"] = f"bench-{player['name']}"
    table["agent"]["outputs"] = ["bench-synth"]
    for section, key in PATHS:  # the config moves: the files it names must not
        if table.get(section, {}).get(key):
            table[section][key] = str((DEMO / table[section][key]).resolve())
    if priority:
        table.setdefault("service", {})["realtime_priority"] = priority
    write_toml(path, table)
    return [player["name"] for player in table["players"]]


@dataclass
class Ports:
    """The band's outputs (one per player) and the synth input, counting what arrives."""

    band: dict[str, Any]
    synth: Any
    received: list[int]

    @classmethod
    def open(cls, players: list[str]) -> Ports:
        api = rtmidi.API_UNIX_JACK
        band = {}
        for name in players:
            band[name] = rtmidi.MidiOut(api, f"bench-band-{name[:1]}")
            band[name].open_virtual_port(f"bench-{name}")
        received = [0]
        synth = rtmidi.MidiIn(api, "bench-sink")
        synth.set_callback(lambda event, _: received.__setitem__(0, received[0] + 1))
        synth.open_virtual_port("bench-synth")
        return cls(band, synth, received)

    def close(self) -> None:
        for port in self.band.values():
            port.delete()
        delete_inputs([self.synth])


def run_once(config: Path, server: Jack, ports: Ports, inputs: list[Heard], deadlines: list[int],
             condition: contention.Condition, tmp: Path) -> tuple[Summary, Summary]:
    """One run of the agent and the peer over the looped rehearsal, the busy processes
    running while it plays (not while the agent starts); their lateness."""
    priority = condition.priority
    ctx = mp.get_context("spawn")
    start, out, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
    peer_proc = ctx.Process(target=peer, args=(deadlines, start, out, ready, priority))
    peer_proc.start()
    ports.received[0] = 0
    agent = AgentProcess(config, server.env, tmp / f"{config.stem}.err")
    started = False
    try:
        recording = agent.wait_ready()
        print(f"  the agent runs at {contention.scheduler_of(agent.proc.pid)}")
        ready.wait(30)
        with contention.busy_load(condition.load):
            t0 = time.monotonic_ns() + LEAD_IN_NS
            start.put(t0)
            started = True
            for h in inputs:
                sleep_until_ns(t0 + h.time_ns)
                ports.band[h.player].send_message(h.data)
            time.sleep(1.0)
    finally:
        summary = agent.stop()
        peer_late = collect(peer_proc, out, 90.0 if started else 0.1)
    _, records = read_log(recording / "log.jsonl")
    emits = [r for r in records if r["k"] == "emit"]
    print(f"  played {len(inputs)} input messages; the agent emitted {len(emits)} messages "
          f"({sum(not r['ok'] for r in emits)} undelivered), the synth port got "
          f"{ports.received[0]}; the fast replay planned {len(deadlines)}")
    ours = show("agent lateness (sent - deadline)", [r["t"] - r["deadline"] for r in emits],
                target="p99 <= 1 ms, max <= 5 ms (idle)")
    plain = show("plain loop.call_at lateness", peer_late)
    for what in ("p50", "p99", "max"):
        show_ratio(f"{what} ratio", getattr(ours, what), getattr(plain, what), "agent / call_at")
    print("\n-- the agent's own summary (after SIGTERM):")
    print(summary)
    return ours, plain


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=120.0,
                   help="input to play, per run (default 120)")
    contention.add_contention_options(p)
    args = p.parse_args(argv)
    runs = contention.conditions(args.load, args.realtime)
    heading(f"scheduler: the demo rehearsal, looped for {args.seconds:g} s, through the agent"
            + (f" ({len(runs)} runs)" if len(runs) > 1 else ""))
    inputs = looped_rehearsal(args.seconds)
    results: dict[contention.Condition, tuple[Summary, Summary]] = {}
    with (jack(f"bench-scheduler-{os.getpid()}",
               realtime_priority=contention.jack_priority(args)) as server,
          tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp_name):
        tmp = Path(tmp_name)
        contention.bench_realtime(args)
        players = write_config(tmp / "performance.toml", 0)
        deadlines = planned_deadlines(inputs, tmp / "performance.toml", tmp / "fast")
        ports = Ports.open(players)
        try:
            for i, condition in enumerate(runs):
                if len(runs) > 1:
                    heading(condition.label)
                config = tmp / f"run-{i}.toml"
                write_config(config, condition.priority)
                results[condition] = run_once(config, server, ports, inputs, deadlines,
                                              condition, tmp)
        finally:
            ports.close()
    if len(runs) > 1:
        heading("side by side: lateness, idle and loaded, normal priority and realtime")
        contention.side_by_side("agent (sent - deadline)", {c: r[0] for c, r in results.items()})
        contention.side_by_side("plain loop.call_at", {c: r[1] for c, r in results.items()})
    server.report()


if __name__ == "__main__":
    main()
