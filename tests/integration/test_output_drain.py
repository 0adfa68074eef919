"""Closing a JACK output confirms its drain, or says it could not: a JACK server of its own,
stopped (SIGSTOP) as a starved server runs no cycle."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import rtmidi

from agent.io.jack_server import JackServer, dummy_jack
from agent.io.midi_in import delete_inputs
from agent.io.midi_out import MidiOutputs
from agent.io.ports import choose_backend
from agent.record.summary import format_summary

pytestmark = pytest.mark.jack
SINK = "drain-sink"
NOTE = [0x90, 60, 64]
STOPPED_S = 1.5  # the server stopped this long


@pytest.fixture
def server() -> Iterator[JackServer]:
    """Not the session's server: this one is stopped for a while."""
    with dummy_jack(f"stage-agent-drain-{os.getpid()}", period=512) as server:
        yield server


def opened(received: queue.Queue[list[int]]) -> MidiOutputs:
    """The agent's outputs to the sink, connected: a probe has come through."""
    outputs = MidiOutputs((SINK,), choose_backend("jack"), "drain-agent", lambda *event: None)
    outputs.open()
    deadline = time.monotonic() + 10
    while True:  # a new connection carries data from a later cycle
        assert time.monotonic() < deadline, "the sink never connected"
        outputs.send(SINK, bytes([0xF6]))
        try:
            if received.get(timeout=0.1) == [0xF6]:
                return outputs
        except queue.Empty:
            pass


def next_besides_probes(received: queue.Queue[list[int]]) -> list[int]:
    """The next message at the sink that is not a late probe (a missed cycle delays one)."""
    while (message := received.get(timeout=5)) == [0xF6]:
        pass
    return message


def test_a_close_with_jack_running_confirms_the_drain_and_one_with_jack_stopped_says_not(
        server: JackServer, caplog: pytest.LogCaptureFixture) -> None:
    received: queue.Queue[list[int]] = queue.Queue()
    sink = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, SINK)
    sink.open_virtual_port(SINK)
    sink.set_callback(lambda event, _: received.put(event[0]))
    try:
        outputs = opened(received)
        outputs.send(SINK, bytes(NOTE))
        outputs.close()
        assert outputs.unconfirmed == []
        assert next_besides_probes(received) == NOTE  # moved into the port before it went

        outputs = opened(received)
        # The condition under test: no JACK cycle for longer than rtmidi's 1 s. The server is
        # resumed by a process of its own: close_port holds the GIL while it waits.
        try:
            os.kill(server.pid, signal.SIGSTOP)
            resume = subprocess.Popen(["sh", "-c", f"sleep {STOPPED_S}; kill -CONT {server.pid}"])
            outputs.send(SINK, bytes(NOTE))
            outputs.close()
            resume.wait()
        finally:
            os.kill(server.pid, signal.SIGCONT)
    finally:
        delete_inputs([sink])
    assert outputs.unconfirmed == [SINK]
    assert (f"MIDI output {SINK!r} ({SINK}:{SINK}): JACK ran no cycle for" in caplog.text
            and "what was still queued for it may be lost" in caplog.text)
    text = format_summary({**SUMMARY, "outputs_unconfirmed": outputs.unconfirmed})
    assert ("MIDI output drain NOT confirmed at the stop (JACK ran no cycle within 1 s): "
            f"{SINK}; a synth may hold notes until the next start's reset") in text


SUMMARY = {"performance": "drain", "seconds": 1.0, "mode": "harmony", "notes_heard": 0,
           "notes_played": 0, "answers": 0, "undelivered": 0, "clock": "realtime",
           "reaction_ms": {"p50": 0.0, "p99": 0.0, "n": 0},
           "lateness_ms": {"p50": 0.0, "p99": 0.0, "max": 0.0}, "recording": "drain-rec"}
