"""A recording made live on real JACK ports: the strict replay reproduces it, and a window of it
loops at real speed to a real port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.scrub import WINDOW, seconds
from agent.record.session import LOG_NAME

from .jackpeer import FIFTH_UP, Peer, on_stage, running_agent, short_name

pytestmark = pytest.mark.jack


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[tuple[Peer, Path]]:
    with on_stage(short_name(request.node.name), jack_server.xruns, tmp_path, FIFTH_UP) as stage:
        yield stage


def test_a_live_recording_replays_strictly_and_loops_at_real_speed(
        stage: tuple[Peer, Path], jack: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        for pitch in (60, 62, 64):  # each note answered a fifth up, at once
            peer.send(0x90, pitch, 90)
            peer.wait_for([0x91, pitch + 7, 90])
            peer.send(0x80, pitch, 0)
            peer.wait_for([0x81, pitch + 7, 0])
        peer.send(0x90, 65, 80)  # held at the stop: the stop's panic releases its fifth
        peer.wait_for([0x91, 72, 80])
        assert agent.wait() == 0, agent.err
    peer.drain(settle=0.2)
    recording = config.parent / agent.recording
    header, rs = read_log(recording / LOG_NAME)
    assert header["clock"] == "monotonic"
    count = sum(r["k"] == "emit" for r in rs)
    assert {r["why"] for r in rs if r["k"] == "emit"} == {"reset", "planned", "stop"}

    # Strict: the live run, replayed on the manual clock, sends the same messages.
    assert main(["replay", str(recording), "--strict", "--out", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        f"{recording}: identical: {count} emitted messages matched"

    # A window holding the 2nd and 3rd notes, twice, at real speed to the real port.
    ins = [r for r in rs if r["k"] == "in"]
    origin = rs[0]["t"]
    start, end = ins[2]["t"] - origin, ins[6]["t"] - origin  # from D's note-on to F's
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "replay", str(recording), "--realtime",
         "--from", seconds(start), "--to", seconds(end), "--loop", "2",
         "--out", str(tmp_path / "loop")], env={**os.environ, **jack}, capture_output=True,
        text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    fifths = [[0x91, 69, 90], [0x81, 69, 0], [0x91, 71, 90], [0x81, 71, 0]]
    got = [m for _, m in peer.expect(8 + 3)]
    assert got == fifths + fifths + [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]
    _header, looped = read_log(tmp_path / "loop" / LOG_NAME)
    assert [r["pass"] for r in looped if r["k"] == "ctl" and r["what"] == WINDOW] == [1, 2]


def emit_lines(log: Path) -> int:
    """Emit records in the log as it is on disk now (a running agent's: whole lines only)."""
    return sum(b'"k":"emit"' in line for line in log.read_bytes().split(b"\n")[:-1])


def test_a_killed_run_replays_strictly_up_to_its_end(
        stage: tuple[Peer, Path], jack: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a watchdog abort): the log ends where the last flush left it,
    with no stop record, maybe a torn line. Its recorded emits are what the run sent up to
    there; what the replay sends beyond them (here the release of the fifth still sounding, and
    its stop's panic) is past the recording's end, not a difference: it was reported as one."""
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        log = config.parent / agent.recording / LOG_NAME
        peer.send(0x90, 60, 90)
        peer.wait_for([0x91, 67, 90])
        peer.send(0x80, 60, 0)
        peer.wait_for([0x81, 67, 0])
        peer.send(0x90, 62, 90)  # held at the kill: its fifth still sounds
        peer.wait_for([0x91, 69, 90])
        deadline = time.monotonic() + 30
        # The start's reset (three emits) and the three notes, flushed (every record.flush_ms).
        while emit_lines(log) < 6:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        agent.signal(signal.SIGKILL)
        assert agent.wait() == -signal.SIGKILL
    _header, rs = read_log(log)
    assert not [r for r in rs if r["k"] == "ctl" and r["what"] == "stop"]
    count = sum(r["k"] == "emit" for r in rs)
    assert count == 6
    says = (f"{log.parent}: identical: {count} emitted messages matched (the log ends "
            "without its stop: its run was killed; what the replay sent past the log's end was "
            "not compared)")
    done = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(log.parent),
                           "--strict", "--out", str(tmp_path / "s")], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, says), done.stdout + done.stderr
    # Killed in the middle of writing a line: the same.
    with log.open("a") as f:
        f.write('{"t": 1, "k": "emit", "deadline": 1, "po')
    done = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(log.parent),
                           "--strict", "--out", str(tmp_path / "s2")], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, says), done.stdout + done.stderr
