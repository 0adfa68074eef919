"""10^5 random and malformed MIDI byte sequences through the parser and the agent (manual clock):
nothing raises, every heard message is logged, and no agent note is left hanging — every note-on
at the output gets exactly one note-off on the same port, channel and pitch."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from agent import config as config_mod
from agent import midi
from agent.clock import ManualClock
from agent.events import Heard
from agent.midi import MidiByteParser
from agent.record.log import read_log
from agent.record.session import LOG_NAME, Session

SEQUENCES_PER_MODE = 35_000  # three modes: 105,000 sequences in all


def chunk(rng: random.Random) -> bytes:
    """1-8 bytes, mostly MIDI-shaped (status then data), some pure noise."""
    out = bytearray()
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.3:
            out.append(rng.choice((0x80, 0x90, 0x90, 0xB0, 0xE0, 0xC0)) | rng.randrange(16))
        elif roll < 0.85:
            out.append(rng.randrange(128))
        else:
            out.append(rng.randrange(256))  # anything: system, real-time, SysEx, stray
    return bytes(out)


@pytest.mark.parametrize("mode", ["harmony", "call-response", "auto"])
def test_random_bytes_never_leave_a_note_hanging(tmp_path: Path, mode: str) -> None:
    cfg = config_mod.from_dict({
        "performance": {"seed": 3},
        "players": [{"name": "a", "port": "virtual:a"}, {"name": "b", "port": "virtual:b"}],
        "agent": {"mode": mode, "outputs": ["out"], "max_note_ms": 2000.0},
        "respond": {"phrase_gap_ms": 200.0, "solo_after_ms": 500.0},
    })
    clock = ManualClock(0)
    sent: list[bytes] = []
    session = Session(cfg, clock, lambda port, data: sent.append(data) is None, tmp_path,
                      {"clock": "manual"})
    parsers = {"a": MidiByteParser(sysex_limit=64), "b": MidiByteParser(sysex_limit=64)}
    rng = random.Random(mode)
    heard = 0
    t = 0
    for i in range(SEQUENCES_PER_MODE):
        t += rng.randrange(0, 40_000_000)  # up to 40 ms between sequences
        if i % 300 == 299:
            # Random bytes leave keys held for ever: now and then the players' ports vanish
            # (their held notes released) and a second of silence ends the phrase.
            for player in "ab":
                session.control("port-lost", t, player=player)
            t += 1_000_000_000
        while (d := session.scheduler.next_deadline()) is not None and d <= t:
            clock.advance_to(d)
            session.run_due(d)
        clock.advance_to(t)
        player = rng.choice("ab")
        for message in parsers[player].feed(chunk(rng)):
            session.hear(Heard(t, player, message))
            heard += 1
    session.stop(t)  # the end of the performance: the ledger releases what still sounds
    session.finish()
    assert session.scheduler.ledger.sounding() == []
    sounding: Counter[tuple[int, int]] = Counter()
    for data in sent:
        key = (data[0] & 0x0F, data[1]) if len(data) == 3 else None
        if midi.is_note_on(data):
            assert sounding[key] == 0, f"a second note-on for {key} before its note-off"
            sounding[key] += 1
        elif midi.is_note_off(data) and sounding[key]:
            sounding[key] -= 1
    assert sum(sounding.values()) == 0  # every note-on got its note-off
    assert sum(1 for data in sent if midi.is_note_on(data)) > 100  # it did play
    _header, records = read_log(tmp_path / LOG_NAME)
    assert sum(1 for r in records if r["k"] == "in") == heard  # nothing heard went unlogged
