"""The ways a live run ends, or nearly does, on real parts: `stage-agent perform` as a process on
real JACK ports, killed outright and started again."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

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
