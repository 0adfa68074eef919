"""MIDI inputs closed while a flood comes in: the process lives on (agent/io/midi_in.py's
delete_inputs, and what python-rtmidi 1.5.8 does at a close)."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import rtmidi

from agent.io.jack_server import JackServer
from agent.io.midi_in import delete_inputs

from .jackpeer import Peer
from .test_input_flood import FLOOD_RATE, Flood

pytestmark = pytest.mark.jack
ROOT = Path(__file__).resolve().parents[2]
CLOSINGS = 50  # the old code's process died within 10-25 closes


@pytest.fixture
def peer(jack_server: JackServer) -> Iterator[Peer]:
    p = Peer("iclose", "iclose-keys", "iclose-synth", jack_server.xruns)
    yield p
    p.close()


def test_inputs_closed_again_and_again_under_a_flood_never_crash(
        peer: Peer, jack: dict[str, str]) -> None:
    """A stop (or a vanished port) during a flood closes inputs while rtmidi's thread delivers.
    `closing_inputs.py` opens and closes MidiInputs on the flooded port CLOSINGS times, in a
    process of its own, with CPython's debug allocator (a use of freed memory shows at once).
    Before delete_inputs kept python-rtmidi's callback pair alive past its cancel, that process
    died of SIGSEGV within a few seconds (2 runs of 2 here, 3 of 3 for a reviewer)."""
    with Flood(peer, FLOOD_RATE, lambda: False):
        child = subprocess.run(
            [sys.executable, "-m", "tests.integration.closing_inputs", peer.player_port,
             str(CLOSINGS)], env={**os.environ, **jack, "PYTHONMALLOC": "debug"},
            capture_output=True, timeout=120, cwd=ROOT)
    out = child.stdout.decode(errors="replace")
    assert child.returncode == 0, (child.returncode,
                                   child.stderr.decode(errors="replace")[-2000:])
    said = re.fullmatch(r"closed (\d+) times; heard (\d+)\n", out)
    assert said is not None and int(said[1]) == CLOSINGS and int(said[2]) > 0, out


def test_the_callback_pair_rtmidi_holds_is_among_what_its_input_refers_to(
        jack: dict[str, str]) -> None:
    """delete_inputs keeps python-rtmidi's (function, data) pair alive through what gc finds
    the input refers to: a python-rtmidi release that held it otherwise fails here."""
    rt = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "pair-probe")
    try:
        def callback(event: object, data: object) -> None:
            pass
        data = object()
        rt.set_callback(callback, data)
        assert (callback, data) in [o for o in gc.get_referents(rt) if isinstance(o, tuple)]
    finally:
        delete_inputs([rt])
    assert rt.is_deleted
