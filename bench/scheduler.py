"""Scheduler lateness over a long run with the agent playing (respond mode, the demo piece).

The agent (`python -m agent.cli perform`, the demo's settings with real named ports) hears the demo
rehearsal played at real speed over JACK from the bench's two virtual outputs, looped until the
time is up, and plays into the bench's virtual input. Then SIGTERM; lateness (sent - deadline) of
every message it emitted is read from its log. Peer in the same run, in its own process: a plain
asyncio scheduler (loop.call_at at each deadline, no early wake, no spin) fed the deadlines a fast
replay of the same input plans, on the same time base.

    .venv/bin/python bench/scheduler.py [--seconds 120]
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
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import rtmidi
from _common import REPO, AgentProcess, heading, jack, show, show_ratio, sleep_until_ns, write_toml

from agent import config as config_mod
from agent.events import Heard
from agent.record.log import read_log
from agent.record.replay import Recording, replay_fast
from agent.record.smf import read_players

DEMO = REPO / "performances" / "demo"
LOOP_GAP_NS = 2_000_000_000  # silence between two passes of the rehearsal
LEAD_IN_NS = 1_000_000_000


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


def peer(deadlines: list[int], start: Any, out: Any, ready: Event) -> None:
    """Child process: loop.call_at at every deadline; lateness = woke - deadline."""
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


def write_config(path: Path) -> None:
    table = tomllib.loads((DEMO / "performance.toml").read_text(encoding="utf-8"))
    table["performance"]["name"] = "bench-scheduler"
    table["midi"]["backend"] = "jack"
    for player in table["players"]:
        player["port"] = f"bench-{player['name']}"
    table["agent"]["outputs"] = ["bench-synth"]
    if table.get("model", {}).get("checkpoint"):  # the config moves: its model path must not
        table["model"]["checkpoint"] = str((DEMO / table["model"]["checkpoint"]).resolve())
    write_toml(path, table)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=120.0, help="input to play (default 120)")
    args = p.parse_args()
    heading(f"scheduler: the demo rehearsal, looped for {args.seconds:.0f} s, through the agent")
    inputs = looped_rehearsal(args.seconds)
    ctx = mp.get_context("spawn")
    with (jack(f"bench-scheduler-{os.getpid()}") as server,
          tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp):
        config = Path(tmp) / "performance.toml"
        write_config(config)
        deadlines = planned_deadlines(inputs, config, Path(tmp) / "fast")
        start, out, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
        peer_proc = ctx.Process(target=peer, args=(deadlines, start, out, ready))
        peer_proc.start()
        api = rtmidi.API_UNIX_JACK
        band = {}
        for name in dict.fromkeys(h.player for h in inputs):
            band[name] = rtmidi.MidiOut(api, f"bench-band-{name[:1]}")
            band[name].open_virtual_port(f"bench-{name}")
        received = [0]
        synth = rtmidi.MidiIn(api, "bench-sink")
        synth.set_callback(lambda event, _: received.__setitem__(0, received[0] + 1))
        synth.open_virtual_port("bench-synth")
        agent = AgentProcess(config, server.env, Path(tmp) / "agent.err")
        started = False
        try:
            recording = agent.wait_ready()
            ready.wait(30)
            t0 = time.monotonic_ns() + LEAD_IN_NS
            start.put(t0)
            started = True
            for h in inputs:
                sleep_until_ns(t0 + h.time_ns)
                band[h.player].send_message(h.data)
            time.sleep(1.0)
        finally:
            summary = agent.stop()
            peer_late = collect(peer_proc, out, 90.0 if started else 0.1)
        for port in [*band.values(), synth]:
            port.delete()
        _, records = read_log(recording / "log.jsonl")
    emits = [r for r in records if r["k"] == "emit"]
    print(f"  played {len(inputs)} input messages; the agent emitted {len(emits)} messages "
          f"({sum(not r['ok'] for r in emits)} undelivered), the synth port got {received[0]}; "
          f"the fast replay planned {len(deadlines)}")
    ours = show("agent lateness (sent - deadline)", [r["t"] - r["deadline"] for r in emits],
                target="p99 <= 1 ms, max <= 5 ms")
    plain = show("plain loop.call_at lateness", peer_late)
    for what in ("p50", "p99", "max"):
        show_ratio(f"{what} ratio", getattr(ours, what), getattr(plain, what), "agent / call_at")
    server.report()
    print("\n-- the agent's own summary (after SIGTERM):")
    print(summary)


if __name__ == "__main__":
    main()
