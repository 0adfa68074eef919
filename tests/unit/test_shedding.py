"""Shedding note-ons never leaves a note hanging (agent/listen/shedding.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import midi
from agent.listen.shedding import PortShedding

ON, OFF, OFF0 = 0x90, 0x80, "off0"  # OFF0: a note-off written as a note-on of velocity 0


def message(kind: int | str, pitch: int, channel: int = 0) -> list[int]:
    if kind == OFF0:
        return [0x90 | channel, pitch, 0]
    assert isinstance(kind, int)
    return [kind | channel, pitch, 64 if kind == ON else 0]


def kept(stream: list[tuple[list[int], bool]]) -> list[list[int]]:
    shedding = PortShedding()
    return [data for data, shed in stream if shedding.admit(data, shed)]


def test_a_shed_note_on_takes_its_note_off_with_it() -> None:
    assert kept([(message(ON, 60), True), (message(OFF, 60), False),
                 (message(ON, 60), False), (message(OFF0, 60), False)]) == [
        message(ON, 60), message(OFF0, 60)]


def test_a_shed_re_strike_of_a_held_key_lets_the_note_off_end_the_held_note() -> None:
    assert kept([(message(ON, 60), False), (message(ON, 60), True),
                 (message(OFF, 60), False)]) == [message(ON, 60), message(OFF, 60)]


def test_a_note_on_kept_after_a_shed_one_owns_the_next_note_off() -> None:
    assert kept([(message(ON, 60), True), (message(ON, 60), False),
                 (message(OFF, 60), False)]) == [message(ON, 60), message(OFF, 60)]


def test_keys_are_told_apart_by_channel_and_pitch() -> None:
    assert kept([(message(ON, 60), True), (message(OFF, 60, channel=1), False),
                 (message(OFF, 61), False), (message(OFF, 60), False)]) == [
        message(OFF, 60, channel=1), message(OFF, 61)]


def test_only_note_ons_are_ever_shed() -> None:
    others = [[0xB0, 64, 127], [0xB0, 64, 0], [0xB0, 123, 0], [0xB0, 120, 0], [0xE0, 0, 64],
              [0xD0, 90], [0xC0, 5], [0xF8], [0xF0, 0x7E, 0x7F, 0xF7], message(OFF, 62),
              message(OFF0, 63)]
    assert kept([(data, True) for data in others]) == others


keys = st.tuples(st.integers(0, 1), st.integers(60, 62))  # few keys: many collisions
events = st.lists(st.tuples(st.sampled_from([ON, OFF, OFF0]), keys, st.booleans(),
                            st.booleans()), max_size=80)


@settings(max_examples=500, deadline=None)
@given(events)
def test_a_note_sounds_as_kept_only_while_it_sounds_as_played(
        stream: list[tuple[int | str, tuple[int, int], bool, bool]]) -> None:
    """At every step, a key sounding in what is kept sounds in what was played: a note-off is
    never shed whose note-on was kept. Through both stages the input queue chains (a full
    queue's refusal on rtmidi's thread, then age on the loop), each with its own decisions."""
    played: set[tuple[int, int]] = set()
    heard: set[tuple[int, int]] = set()
    refusing, shedding = PortShedding(), PortShedding()
    for kind, (channel, pitch), refuse, old in stream:
        data = message(kind, pitch, channel)
        (played.add if midi.is_note_on(data) else played.discard)((channel, pitch))
        if refusing.admit(data, refuse) and shedding.admit(data, old):
            (heard.add if midi.is_note_on(data) else heard.discard)((channel, pitch))
        assert heard <= played
