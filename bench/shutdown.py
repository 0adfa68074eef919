"""A stop signal during playing: how soon does every sounding agent note get its note-off?

Starts a JACK dummy server and the agent (harmony mode) as a process; the bench holds N keys, so
the agent holds N harmony notes; then the signal (SIGTERM, or SIGHUP, SIGINT, SIGQUIT), and the
time from the signal to the arrival of the last note-off at a real JACK port is measured, with
the time to the agent's exit and the notes released out of those sounding. Repeated for several
runs. Peer in the same run: the bare JACK delivery of N note-offs sent directly from the bench
to the same port. Target (stage-requirements 7): every note off within 50 ms.

    .venv/bin/python bench/shutdown.py [--runs 10] [--notes 16] [--signal SIGHUP]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import rtmidi
from _common import AgentProcess, heading, show, show_ratio, write_toml

from agent.io.jack_server import dummy_jack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--notes", type=int, default=16)
    ap.add_argument("--signal", default="SIGTERM", choices=["SIGTERM", "SIGHUP", "SIGINT",
                                                            "SIGQUIT"])
    args = ap.parse_args()
    sig = signal.Signals[args.signal]
    with (dummy_jack(f"bench-shutdown-{os.getpid()}") as server,
          tempfile.TemporaryDirectory() as tmp):
        env = server.env
        player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench")
        player.open_virtual_port("bench-keys")
        synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-synth")
        synth.open_virtual_port("bench-synth")
        arrivals: list[tuple[int, list[int]]] = []
        got = threading.Event()

        def on_message(ev: tuple[list[int], float], _: object) -> None:
            arrivals.append((time.monotonic_ns(), ev[0]))
            got.set()

        synth.set_callback(on_message)
        config = Path(tmp) / "performance.toml"
        write_toml(config, {
            "performance": {"name": "bench-shutdown"},
            "players": [{"name": "keys", "port": "bench-keys"}],
            "agent": {"mode": "harmony", "outputs": ["bench-synth"]},
            "harmony": {"intervals": [7]},
        })
        through_agent, to_exit, bare = [], [], []
        released = sounding = 0
        loopback = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-direct")
        loopback.open_port(next(i for i, n in enumerate(loopback.get_ports())
                                if "bench-synth" in n))
        for _ in range(args.runs):
            agent = AgentProcess(config, env, Path(tmp) / "agent.err")
            agent.wait_ready()
            wait_for(arrivals, 3)  # the reset it sends at start (CC64, CC123, CC120)
            arrivals.clear()
            for k in range(args.notes):
                player.send_message([0x90, 40 + k, 90])
            wait_for(arrivals, args.notes)
            arrivals.clear()
            t_signal = time.monotonic_ns()
            agent.proc.send_signal(sig)
            agent.proc.wait(30)
            to_exit.append(time.monotonic_ns() - t_signal)
            agent.stop()  # collects what it printed
            offs = [t for t, m in arrivals if m[0] & 0xF0 == 0x80]
            sounding += args.notes
            released += len({m[1] for _, m in arrivals if m[0] & 0xF0 == 0x80})
            if len(offs) != args.notes:
                raise SystemExit(f"expected {args.notes} note-offs, got {arrivals}")
            through_agent.append(max(offs) - t_signal)
            arrivals.clear()
            t0 = time.monotonic_ns()
            for k in range(args.notes):
                loopback.send_message([0x80, 40 + k, 0])
            wait_for(arrivals, args.notes)
            bare.append(max(t for t, _ in arrivals) - t0)
            arrivals.clear()
        heading(f"{args.signal} with {args.notes} agent notes sounding, {args.runs} runs")
        print(f"  notes released / sounding          {released} / {sounding}")
        ours = show("signal -> last note-off arrives", through_agent, target="<= 50 ms")
        show("signal -> exit (recording written)", to_exit)
        peer = show("bare JACK: N note-offs delivered", bare)
        show_ratio("p99 ratio", ours.p99, peer.p99, "shutdown / bare JACK delivery")


def wait_for(arrivals: list[tuple[int, list[int]]], count: int, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while len(arrivals) < count and time.monotonic() < end:
        time.sleep(0.001)


if __name__ == "__main__":
    main()
