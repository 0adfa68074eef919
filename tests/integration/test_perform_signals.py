"""The ways a live run ends, or nearly does, on real parts: `stage-agent perform` as a process on
real JACK ports, killed outright and started again, its stdout taken away."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME, MIDI_NAME

from .jackpeer import (
    FIFTH_UP,
    RESET_CONTROLS,
    Peer,
    on_stage,
    running_agent,
    short_name,
)

pytestmark = pytest.mark.jack

HELD = [48, 50, 52, 53, 55, 57, 59, 60]  # keys held: the agent sounds their fifths (channel 2)
CC_TAIL = [[0xB1, *c] for c in RESET_CONTROLS]  # the panic's tail, after the note-offs
PERFORM = [sys.executable, "-m", "agent.cli", "perform"]


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[tuple[Peer, Path]]:
    with on_stage(short_name(request.node.name), jack_server.xruns, tmp_path, FIFTH_UP) as stage:
        yield stage


def hold_keys(peer: Peer) -> None:
    """Hold HELD until the agent's fifths all sound at the synth port. (A key JACK delivers to
    the agent twice, in a cycle missed on a loaded machine, is struck again: its fifth released
    first, then sounding again, as the ledger does it.)"""
    for pitch in HELD:
        peer.send(0x90, pitch, 90)
    sounding: set[int] = set()
    while sounding != {p + 7 for p in HELD}:
        ((_, message),) = peer.expect(1, timeout=10)
        assert message[0] & 0x0F == 1 and message[0] & 0xE0 == 0x80, message  # notes, ch. 2
        (sounding.add if midi.is_note_on(bytes(message)) else sounding.discard)(message[1])


def test_a_restart_after_a_crash_first_silences_what_the_dead_run_left_sounding(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """SIGKILL (as the OOM killer or systemd's watchdog abort) while eight notes sound: nothing
    releases them. The next run's first messages, before it answers anything, are sustain off,
    all notes off and all sound off on its channel."""
    peer, config = stage
    with running_agent(config, jack, peer) as dead:
        hold_keys(peer)
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait()
        assert peer.drain(settle=0.3) == []  # nothing released them: they hang
        for pitch in HELD:
            peer.send(0x80, pitch, 0)
    with running_agent(config, jack) as restarted:
        assert [m for _, m in peer.expect(3)] == CC_TAIL  # before anything else
        peer.ask([0x90, 62, 70], [0x91, 69, 70])
        assert restarted.wait() == 0, restarted.err
    records = read_log(config.parent / restarted.recording / LOG_NAME)[1]
    assert records[0]["k"] == "ctl" and records[0]["what"] == "reset"
    resets = [r for r in records if r["k"] == "emit" and r["why"] == "reset"]
    assert [bytes.fromhex(r["data"]) for r in resets] == [bytes(m) for m in CC_TAIL]
    assert records.index(resets[-1]) < min(i for i, r in enumerate(records) if r["k"] == "in")


# -- stdout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("gone", ["stdout", "stdout and stderr"])
def test_a_closed_stdout_never_stops_the_run(stage: tuple[Peer, Path], jack: dict[str, str],
                                            tmp_path: Path, gone: str) -> None:
    """`stage-agent perform piece.toml | true` (or `|& true`, or a restarted journald: stderr
    gone too): the reader is gone before the agent prints a line. It plays on (READY, from
    systemd's notify protocol, says when it has started), answers, stops on SIGTERM with exit 0
    and writes its recording; what it would have printed is on stderr while there is one."""
    peer, config = stage
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30.0)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| true`: the reader has gone
    stderr = write_end if gone == "stdout and stderr" else subprocess.PIPE
    proc = subprocess.Popen([*PERFORM, str(config)], stdout=write_end, stderr=stderr,
                            env={**os.environ, **jack, "NOTIFY_SOCKET": str(tmp_path /
                                                                            "notify.sock")},
                            text=True)
    os.close(write_end)
    try:
        assert notify.recv(512).startswith(b"READY=1")
        assert peer.take_reset() == 1
        for pitch in (60, 62, 64):
            peer.ask([0x90, pitch, 70], [0x91, pitch + 7, 70])
        assert proc.poll() is None, "the agent stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    if gone == "stdout":
        assert "stdout is gone" in err and "stage-agent: performing" in err, err
        assert "notes played 3" in err, err
        assert "Traceback" not in err, err
    (recording,) = [p for p in (config.parent / "recordings").iterdir() if p.is_dir()]
    records = read_log(recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]
    assert (recording / MIDI_NAME).is_file()
