"""The recording's disk failing under a playing agent: full at the stop, and slow.

The agent runs as a process (`python -m agent.cli perform`, harmony mode) on real JACK ports,
its recordings on a disk made for the purpose (tests/disks.py):

1. full: a 512 KiB tmpfs. The bench holds 40 keys; the agent holds 120 harmony notes (intervals
   -40, +1, +42). The disk is filled, then SIGTERM: the note-offs and the CC tail (CC64=0,
   CC123, CC120) that reach the synth port are counted (target: all 120, and the tail), with
   the exit code and the time from the signal to the exit.
2. slow: every write to the recording folder held up SLOW_MS (an LD_PRELOAD library: a USB
   stick under write-back) against a normal disk, in the same run. A note every 40 ms for
   --seconds; counted: the agent's answers (harmony note-ons at the synth port) that arrived by
   the end of the playing, and reaction (send -> arrival of the answer) p50/p99/max.

Needs root (the mount) for 1 and a C compiler for 2; a phase that cannot run says so.

    .venv/bin/python bench/disk.py [--seconds 5] [--slow-ms 300] [--period 128]
"""

from __future__ import annotations

import argparse
import collections
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import rtmidi
from _common import AgentProcess, Jack, heading, jack, show, sleep_until_ns, write_toml

from agent import midi
from agent.io.midi_in import delete_inputs
from tests.disks import fill, slow_write_library, small_tmpfs

S = 1_000_000_000
EVERY_NS = 40_000_000  # a note every 40 ms
HELD_KEYS = range(42, 82)
INTERVALS = [-40, 1, 42]  # 40 keys x 3: 120 harmony pitches, no two alike
TAIL = [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]


class Stage:
    """The player's port and the synth's, the synth's arrivals stamped as they come."""

    def __init__(self, name: str) -> None:
        self.player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{name}-player")
        self.player.open_virtual_port(f"{name}-keys")
        self.synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{name}-synth")
        self.synth.open_virtual_port(f"{name}-synth")
        self.got: list[tuple[int, list[int]]] = []
        self.synth.set_callback(lambda ev, _: self.got.append((time.monotonic_ns(), ev[0])))

    def note_ons(self) -> set[int]:
        return {m[1] for _, m in list(self.got) if midi.is_note_on(bytes(m))}

    def wait_for_notes(self, count: int, timeout_s: float = 15.0) -> bool:
        """`count` distinct notes sounding at the synth (the start's reset CCs are not notes;
        a loaded machine can take seconds to answer 40 keys with 120 notes)."""
        end = time.monotonic() + timeout_s
        while len(self.note_ons()) < count and time.monotonic() < end:
            time.sleep(0.01)
        return len(self.note_ons()) >= count

    def close(self) -> None:
        self.player.delete()
        delete_inputs([self.synth])


def piece(folder: Path, name: str, intervals: list[int]) -> Path:
    config = folder / "performance.toml"
    write_toml(config, {
        "performance": {"name": name},
        "midi": {"backend": "jack"},
        "players": [{"name": "keys", "port": f"{name}-keys"}],
        "agent": {"mode": "harmony", "outputs": [f"{name}-synth"], "channel": 2,
                  "max_note_ms": 60000.0},
        "harmony": {"intervals": intervals},
    })
    return config


def full_disk(server: Jack, folder: Path) -> dict[str, Any]:
    name = "bench-disk-full"
    folder.mkdir()
    stage = Stage(name)
    config = piece(folder, name, INTERVALS)
    try:
        with small_tmpfs(folder / "recordings", 512) as disk:
            agent = AgentProcess(config, server.env, folder / "full.err")
            recording = agent.wait_ready()
            for key in HELD_KEYS:
                stage.player.send_message([0x90, key, 80])
            stage.wait_for_notes(120)
            sounding = stage.note_ons()
            end = time.monotonic() + 5  # the notes on disk (written every 100 ms)
            while (recording / "log.jsonl").read_text().count('"k":"emit"') < 120 and \
                    time.monotonic() < end:
                time.sleep(0.02)
            fill(disk)
            stage.got.clear()
            t_signal = time.monotonic_ns()
            agent.proc.send_signal(signal.SIGTERM)
            code = agent.proc.wait(30)
            t_exit = time.monotonic_ns()
            said = agent.stop()
            time.sleep(0.3)  # whatever is still on its way
    finally:
        stage.close()
    offs = {m[1] for _, m in stage.got if midi.is_note_off(bytes(m)) and m[1] in sounding}
    tail = [m for _, m in stage.got if m[0] == 0xB1][-3:] == TAIL
    print(f"  notes sounding at the panic        {len(sounding)}")
    print(f"  note-offs received for them        {len(offs)} of {len(sounding)}   (target all)")
    print(f"  CC64=0, CC123, CC120 after them    {'yes' if tail else 'NO'}")
    print(f"  exit code                          {code}   (target 0)")
    print(f"  SIGTERM -> exit                    {(t_exit - t_signal) / 1e6:.0f} ms")
    lost = [line.strip() for line in said.splitlines() if "RECORDING" in line or "NOT" in line]
    for line in lost:
        print(f"  summary: {line}")
    return {"sounding": len(sounding), "released": len(offs), "tail": tail, "exit": code,
            "exit_ms": (t_exit - t_signal) / 1e6}


def play(server: Jack, folder: Path, name: str, seconds: float,
         env: dict[str, str]) -> tuple[int, int, list[int]]:
    """A note every 40 ms for `seconds`: (notes sent, answers by the end, reactions in ns)."""
    stage = Stage(name)
    config = piece(folder, name, [7])
    sent: dict[int, list[int]] = collections.defaultdict(list)
    try:
        agent = AgentProcess(config, {**server.env, **env}, folder / f"{name}.err")
        agent.wait_ready()
        t0 = time.monotonic_ns() + S // 2
        n = int(seconds * S // EVERY_NS)
        for k in range(n):
            pitch = 36 + k % 48
            sleep_until_ns(t0 + k * EVERY_NS)
            sent[pitch + 7].append(time.monotonic_ns())
            stage.player.send_message([0x90, pitch, 80])
            sleep_until_ns(t0 + k * EVERY_NS + EVERY_NS // 2)
            stage.player.send_message([0x80, pitch, 0])
        sleep_until_ns(t0 + n * EVERY_NS)
        answered = [(t, m[1]) for t, m in stage.got if midi.is_note_on(bytes(m))]
        agent.stop()
    finally:
        stage.close()
    # Each answer to the latest sending of its pitch before it (one pitch comes again every
    # 1.9 s; an answer lost in a JACK xrun must not shift the others).
    reactions = []
    for t, pitch in answered:
        before = [u for u in sent[pitch] if u <= t]
        if before:
            reactions.append(t - before[-1])
            sent[pitch].remove(before[-1])
    return n, len(answered), reactions


def slow_disk(server: Jack, folder: Path, seconds: float, slow_ms: int) -> dict[str, Any]:
    folder.mkdir()
    library = slow_write_library(folder)
    figures: dict[str, Any] = {}
    for label, env in (("normal disk", {}),
                       (f"{slow_ms} ms per write", {
                           "LD_PRELOAD": str(library), "SLOW_WRITE_MS": str(slow_ms),
                           "SLOW_WRITE_DIR": str(folder / "recordings"),
                           "PYTHONDONTWRITEBYTECODE": "1"})):
        n, answers, reactions = play(server, folder, f"bench-disk-{len(figures)}", seconds, env)
        print(f"  {label}: {answers} answers to {n} notes in {seconds:g} s")
        s = show(f"{label}: reaction", reactions)
        figures[label] = {"notes": n, "answers": answers, "reaction_ms": s.ms()}
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="playing per slow-disk run")
    p.add_argument("--slow-ms", type=int, default=300, help="delay of each slow write")
    p.add_argument("--period", type=int, default=128, help="JACK frames per period")
    args = p.parse_args(argv)
    figures: dict[str, Any] = {}
    with jack(f"bench-disk-{time.monotonic_ns()}", args.period) as server, \
            tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        for title, phase in (
                ("a full disk at SIGTERM, 120 notes sounding",
                 lambda: full_disk(server, Path(tmp) / "full")),
                (f"a slow disk ({args.slow_ms} ms a write) against a normal one",
                 lambda: slow_disk(server, Path(tmp) / "slow", args.seconds, args.slow_ms))):
            heading(title)
            try:
                figures[title] = phase()
            except pytest.skip.Exception as e:  # tests/disks.py: this machine cannot
                print(f"  not run: {e.msg}")
        server.report()
    return figures


if __name__ == "__main__":
    main()
