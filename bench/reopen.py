"""A player's port vanishes and comes back: how soon does the agent answer on it again?

The agent (harmony mode, default port poll of 500 ms) listens to the bench's virtual output. Each
run the bench deletes that port (a USB keyboard pulled), waits, creates it again, and from that
moment plays a probe note every 5 ms until the agent's answer arrives at a real JACK port. The
time from the port's return to the answer is the reopen time. Peer in the same run: the bare JACK
hop (the same probe, from the bench straight to a second input), i.e. what the answer would cost
if the port had never gone. Target (stage-requirements 11): reopened within 2 s.

    .venv/bin/python bench/reopen.py [--runs 10] [--poll-ms 500]
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import time
from pathlib import Path

import rtmidi
from _common import AgentProcess, heading, jack, show, show_ratio, write_toml

PLAYER, SYNTH = "bench-reopen-keys", "bench-reopen-synth"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--poll-ms", type=int, default=500, help="the agent's midi.poll_ports_ms")
    args = ap.parse_args()
    with jack(f"bench-reopen-{os.getpid()}") as server, tempfile.TemporaryDirectory() as tmp:
        arrivals: queue.Queue[tuple[int, list[int]]] = queue.Queue()
        synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-synth")
        synth.open_virtual_port(SYNTH)
        synth.set_callback(lambda ev, _: arrivals.put((time.monotonic_ns(), ev[0])))
        player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-player")
        player.open_virtual_port(PLAYER)
        config = Path(tmp) / "performance.toml"
        write_toml(config, {
            "performance": {"name": "bench-reopen"},
            "midi": {"poll_ports_ms": args.poll_ms},
            "players": [{"name": "keys", "port": PLAYER}],
            "agent": {"mode": "harmony", "outputs": [SYNTH]},
            "harmony": {"intervals": [7]},
        })
        agent = AgentProcess(config, server.env, Path(tmp) / "agent.err")
        agent.wait_ready()
        reopen, bare = [], []
        try:
            for run in range(args.runs):
                player.delete()  # the port vanishes
                time.sleep(1.0 + 0.1 * run)  # the agent notices (and the phase of its poll varies)
                player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-player")
                player.open_virtual_port(PLAYER)
                back = time.monotonic_ns()
                reopen.append(probe_until_answered(player, arrivals, back))
                bare.append(bare_hop(arrivals))
        finally:
            print(agent.stop().splitlines()[0] if agent.output else "")
        heading(f"port vanishes and returns, {args.runs} runs, agent polls every {args.poll_ms} ms")
        ours = show("port back -> first answer", reopen, target="<= 2000 ms")
        peer = show("bare JACK hop (never gone)", bare)
        show_ratio("p99 ratio", ours.p99, peer.p99, "reopen / bare hop")
        server.report()


def probe_until_answered(player: rtmidi.MidiOut, arrivals: queue.Queue[tuple[int, list[int]]],
                         since: int, timeout_s: float = 10.0) -> int:
    drain(arrivals)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        player.send_message([0x90, 60, 90])
        player.send_message([0x80, 60, 0])
        try:
            t, message = arrivals.get(timeout=0.005)
        except queue.Empty:
            continue
        if message[:2] == [0x90, 67]:
            return t - since
    raise SystemExit("the agent never answered on the returned port")


def bare_hop(arrivals: queue.Queue[tuple[int, list[int]]], timeout_s: float = 5.0) -> int:
    """The same probe from a second client straight into the synth port (no agent). A new
    connection carries data only from a later cycle (later still on a busy machine), so the
    probe is sent again every 20 ms, each with its own velocity, until one arrives."""
    direct = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-direct")
    direct.open_port(next(i for i, n in enumerate(direct.get_ports()) if SYNTH in n))
    try:
        drain(arrivals)
        sent: dict[int, int] = {}
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            velocity = len(sent) % 127 + 1
            sent[velocity] = time.monotonic_ns()
            direct.send_message([0x90, 1, velocity])
            try:
                t, message = arrivals.get(timeout=0.02)
            except queue.Empty:
                continue
            if message[:2] == [0x90, 1] and message[2] in sent:
                return t - sent[message[2]]
        raise SystemExit("the bare probe never arrived at the synth port")
    finally:
        direct.delete()


def drain(arrivals: queue.Queue[tuple[int, list[int]]]) -> None:
    time.sleep(0.05)
    while not arrivals.empty():
        arrivals.get_nowait()


if __name__ == "__main__":
    main()
