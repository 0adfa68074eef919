"""Input the agent cannot handle in time is shed, and shedding never leaves a note hanging: on
real JACK ports, the input queue alone (its loop kept busy while messages wait) and a harmony
agent under bursts it cannot keep up with (listen/shedding.py, io/midi_in.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .jackpeer import Peer, agent_piece, running_agent, write_piece
from .test_faults import missing, unpaired
from .test_input_flood import Burst, peer, sounding_at_the_end

pytestmark = pytest.mark.jack
Message = list[int]
__all__ = ["peer"]  # the fixture: a player's and a synth's port, named after the test


def on(pitch: int, velocity: int = 80) -> Message:
    return [0x90, pitch, velocity]


def off(pitch: int) -> Message:
    return [0x80, pitch, 0]


def send_all(burst: Burst, messages: list[Message], then_wait_s: float = 0.0) -> None:
    """Send `messages` (on the burst's loop: it is busy meanwhile), wait until they are in the
    queue (or a missed JACK cycle lost some), then keep the loop busy `then_wait_s` more."""
    before = burst.arrived()
    for m in messages:
        burst.peer.send(*m)
    deadline = time.monotonic() + 10
    while burst.arrived() - before < len(messages) and time.monotonic() < deadline:
        if burst.xruns() and time.monotonic() > deadline - 9.5:
            break
        time.sleep(0.01)
    time.sleep(then_wait_s)


def heard_after(burst: Burst, messages: list[Message], then_wait_s: float = 0.0) -> None:
    burst.loop.call_soon(send_all, burst, messages, then_wait_s)
    burst.loop.run_until_complete(burst.until(burst.all_handled))


def test_note_ons_too_old_when_their_turn_comes_are_shed_with_their_note_offs(
        peer: Peer, jack_server: JackServer) -> None:
    """Held before the loop falls behind: 60 and 62. Then, all waiting longer than the bound
    (400 ms), every note-on is shed, the note-off of each shed one too, unless its key is held
    (a re-strike: the note-off ends the held note); note-offs, pedals, all-notes-off and pitch
    bend are all heard. Then fresh notes are heard again, 64's mark spent by its note-off."""
    burst = Burst(peer, 4096, jack_server.xruns, shed_after_ms=400)
    late: list[tuple[Message, bool]] = [  # (message, shed)
        (on(64), True), (off(64), True),  # a note-on shed takes its note-off with it
        (on(60, 90), True), (off(60), False),  # a re-strike of a held key
        ([0xB0, 64, 127], False), (on(65), True), ([0xB0, 64, 0], False),
        ([0xB0, 123, 0], False), ([0x90, 62, 0], False),  # a note-off as velocity 0
        ([0x90, 65, 0], True),  # 65's note-off, shed with its note-on
        (off(67), False), ([0xE0, 0, 80], False)]  # a note-off of nothing; pitch bend
    try:
        heard_after(burst, [on(60), on(62)])
        heard_after(burst, [m for m, _ in late], then_wait_s=0.6)
        heard_after(burst, [on(64), off(64)])
    finally:
        burst.close()
    kept = [on(60), on(62), *(m for m, shed in late if not shed), on(64), off(64)]
    assert [list(h.data) for h in burst.heard] == kept or burst.xruns()
    assert burst.inputs.stats.shed == sum(shed for _, shed in late) or burst.xruns()
    assert burst.inputs.stats.overflow == 0


def test_a_full_queue_refuses_note_ons_before_the_note_offs_that_end_sounds(
        peer: Peer, jack_server: JackServer) -> None:
    """A queue of 16, the loop busy: 60 and 15 mod wheel moves fill it. Then 62 is refused, and
    its note-off dropped with it, while 60's note-off and the pedal's release are still taken
    (before: every message past the 16th was dropped, 60's note-off too, and 60 hung)."""
    burst = Burst(peer, 16, jack_server.xruns)
    wheel = [[0xB0, 1, v] for v in range(15)]
    try:
        heard_after(burst, [on(60), *wheel, on(62), off(60), off(62), [0xB0, 64, 0]])
    finally:
        burst.close()
    assert [list(h.data) for h in burst.heard] == [on(60), *wheel, off(60), [0xB0, 64, 0]] \
        or burst.xruns()
    assert burst.inputs.stats.overflow == 2 or burst.xruns()


# A harmony agent a fifth up whose input is shed past 5 ms: far less than a burst of 2,000
# messages takes to handle (tens of us each), so shedding is certain on any machine.
SHEDDING = agent_piece("harmony").replace("[midi]\n", "[midi]\nshed_after_ms = 5.0\n") + """\
max_note_ms = 60000.0
[harmony]
intervals = [7]
"""


def test_a_harmony_agent_behind_its_input_answers_every_note_it_hears_and_no_other(
        peer: Peer, tmp_path: Path, jack: dict[str, str], jack_server: JackServer) -> None:
    """Bursts of note pairs faster than the agent can handle: it sheds, says so, and what it
    plays stays paired. Every note-on it heard (its log's `in`) is answered; each harmony note
    is released by its own note's note-off before the stop (none left to the 60 s maximum
    length); the notes it heard are whole (no note-off of a note it did not hear)."""
    config = write_piece(tmp_path, SHEDDING, peer.name)
    xruns = jack_server.xruns()
    sent: list[Message] = []
    with running_agent(config, jack, peer) as agent:
        for burst in range(10):
            for k in range(100):  # pitches 60-95, none the same within a burst of 200
                pitch, velocity = 60 + (burst * 100 + k) % 36, 1 + burst * 10 + k % 10
                for m in (on(pitch, velocity), off(pitch)):
                    peer.send(*m)
                    sent.append(m)
                if k % 50 == 49:  # rtmidi's JACK ring buffer holds ~2,000 messages
                    time.sleep(0.005)
            time.sleep(0.05)
        got = [bytes(m) for _, m in peer.drain(0.5)]  # the agent's, while it still runs
        assert agent.wait() == 0, agent.err[-3000:]
    lost_in_jack = jack_server.xruns() > xruns
    records = read_log(config.parent / agent.recording / LOG_NAME)[1]
    stop = next(i for i, r in enumerate(records) if r["k"] == "ctl" and r["what"] == "stop")
    ins = [bytes.fromhex(r["data"]) for r in records if r["k"] == "in" and not r.get("shed")]
    shed_recorded = [bytes.fromhex(r["data"]) for r in records if r["k"] == "in" and r.get("shed")]
    emits = [r for r in records[:stop] if r["k"] == "emit" and r["why"] != "reset"]
    emitted = [bytes.fromhex(r["data"]) for r in emits]
    dropped = re.search(r"MIDI input dropped: (\d+) on a full queue, 0 malformed, (\d+) still "
                        r"queued at the stop, (\d+) shed \(note-ons older than 5 ms when their "
                        r"turn came", agent.out)
    assert dropped is not None, agent.out
    assert "MIDI input shed: " in agent.err
    overflow, unhandled, shed = (int(n) for n in dropped.groups())
    answers = [d for d in emitted if midi.is_note_on(d)]
    assert shed > 0 and len(answers) > 0
    assert len(shed_recorded) == shed  # not heard, but played: in the recording, marked
    assert len(answers) == sum(midi.is_note_on(bytes.fromhex(r["data"]))
                               for r in records[:stop] if r["k"] == "in" and not r.get("shed"))
    played = [bytes.fromhex(r["data"]) for r in records if r["k"] == "in"]  # heard or shed
    # Every message sent came, in order (in a missed JACK cycle one can be lost on its way, or
    # come twice): then the notes heard are whole, and so are the agent's.
    if len(ins) + overflow + unhandled + shed == len(sent) and \
            missing(ins, [bytes(m) for m in sent]) is not None:
        # Nothing the players sent is missing from the recording, shed or not, but what a full
        # queue refused and what was still queued at the stop.
        assert missing(played, [bytes(m) for m in sent]) == overflow + unhandled
        assert unpaired(ins) == []
        assert {r["why"] for r in emits} == {"planned"}  # none cut at the maximum length
        assert sounding_at_the_end(emitted) == set()
        assert got == emitted or lost_in_jack, "the synth did not get what the agent sent"
    else:
        assert lost_in_jack, "input lost with no missed JACK cycle"
