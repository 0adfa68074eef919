"""Notes as listening pairs them (listen/keys.py): the pedals, grace notes written note-off first,
overlapping notes of one key; the same notes from a file, played live, and read as a corpus."""

from __future__ import annotations

from pathlib import Path

import mido
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import midi
from agent.events import Heard, PhraseNote
from agent.listen.keys import Keys
from agent.listen.players import Listening, notes_heard
from agent.model import corpus as corpus_mod
from agent.record import smf

MS = 1_000_000
ON, OFF, CC = 0x90, 0x80, 0xB0


def play(messages: list[tuple[float, int, int, int]], player: str = "p") -> list[Heard]:
    """(ms, status, data1, data2) -> messages from one player."""
    return [Heard(round(t * MS), player, bytes((s, a, b))) for t, s, a, b in messages]


def notes(messages: list[tuple[float, int, int, int]]) -> list[tuple[float, int, float]]:
    """(onset ms, pitch, duration ms) of every note, as listening hears the messages."""
    end = max((m[0] for m in messages), default=0.0)
    return [(n.onset_ns / MS, n.pitch, n.duration_ns / MS)
            for n in notes_heard(play(messages), ["p"], round(end * MS))]


# -- the pedals ---------------------------------------------------------------------------------

def test_sustain_holds_a_let_go_key_until_the_pedal_lifts() -> None:
    listening = Listening.for_players(["p"])
    first = play([(0, ON, 60, 80), (100, CC, 64, 127), (200, OFF, 60, 0)])
    assert [listening.sound(ev).ended for ev in first] == [(), (), ()]
    assert listening.anyone_holding()  # a pedal holds it: the phrase goes on
    lift = listening.sound(play([(900, CC, 64, 0)])[0])
    assert lift.ended == (PhraseNote(0, 60, 80, 900 * MS),)  # it ends at the lift
    assert not listening.anyone_holding()
    assert listening.take_phrase() == [PhraseNote(0, 60, 80, 900 * MS)]



def test_a_phrase_taken_as_it_ends_keeps_the_note_still_held_and_not_twice() -> None:
    # The call's last note still sounds when the phrase is taken (its end anticipated): it
    # belongs to that phrase, as it is then, and when its key is let go it is not counted
    # again in the next phrase.
    listening = Listening.for_players(["p"])
    for ev in play([(0, ON, 60, 80), (300, OFF, 60, 0), (400, ON, 62, 90)]):
        listening.sound(ev)
    assert listening.take_phrase(900 * MS, keys_down=True) == [
        PhraseNote(0, 60, 80, 300 * MS), PhraseNote(400 * MS, 62, 90, 500 * MS)]
    assert listening.sound(play([(1000, OFF, 62, 0)])[0]).ended == (
        PhraseNote(400 * MS, 62, 90, 600 * MS),)
    assert listening.take_phrase() == []
    # Without keys_down, a held key is not the phrase's (only a pedal's ringing notes are).
    other = Listening.for_players(["p"])
    for ev in play([(0, ON, 60, 80)]):
        other.sound(ev)
    assert other.take_phrase(900 * MS) == []

def test_the_sustain_pedal_holds_only_keys_let_go_while_it_is_down() -> None:
    assert notes([(0, ON, 60, 80), (200, OFF, 60, 0), (300, CC, 64, 127), (400, ON, 64, 80),
                  (500, OFF, 64, 0), (1000, CC, 64, 0)]) == [(0, 60, 200), (400, 64, 600)]


def test_a_key_struck_again_under_the_pedal_ends_its_old_note_there() -> None:
    assert notes([(0, CC, 64, 127), (0, ON, 60, 80), (100, OFF, 60, 0), (500, ON, 60, 80),
                  (600, OFF, 60, 0), (800, CC, 64, 0)]) == [(0, 60, 500), (500, 60, 300)]


def test_sostenuto_holds_only_the_keys_down_when_it_went_down() -> None:
    assert notes([(0, ON, 48, 80), (100, CC, 66, 127), (200, ON, 64, 80), (300, OFF, 48, 0),
                  (400, OFF, 64, 0), (500, ON, 67, 80), (600, OFF, 67, 0),
                  (1000, CC, 66, 0)]) == [(0, 48, 1000), (200, 64, 200), (500, 67, 100)]


def test_sostenuto_keeps_its_keys_when_the_sustain_pedal_lifts() -> None:
    assert notes([(0, ON, 48, 80), (100, CC, 66, 127), (150, CC, 64, 127), (200, ON, 64, 80),
                  (300, OFF, 48, 0), (400, OFF, 64, 0), (700, CC, 64, 0),
                  (1000, CC, 66, 0)]) == [(0, 48, 1000), (200, 64, 500)]


def test_the_pedals_are_per_channel() -> None:
    assert notes([(0, CC | 1, 64, 127), (0, ON, 60, 80), (100, OFF, 60, 0), (0, ON | 1, 64, 80),
                  (100, OFF | 1, 64, 0), (500, CC | 1, 64, 0)]) == [(0, 60, 100), (0, 64, 500)]


def test_reset_controllers_lifts_the_pedals_and_all_sound_off_ends_every_note() -> None:
    assert notes([(0, CC, 64, 127), (0, ON, 60, 80), (100, OFF, 60, 0),
                  (300, CC, 121, 0)]) == [(0, 60, 300)]
    assert notes([(0, CC, 64, 127), (0, ON, 60, 80), (100, ON, 62, 80), (150, OFF, 60, 0),
                  (300, CC, 120, 0), (900, OFF, 62, 0)]) == [(0, 60, 300), (100, 62, 200)]


def test_all_notes_off_lets_go_of_the_keys_and_the_pedal_still_holds_them() -> None:
    assert notes([(0, CC, 64, 127), (0, ON, 60, 80), (300, CC, 123, 0),
                  (800, CC, 64, 0)]) == [(0, 60, 800)]


def test_a_lost_player_ends_the_notes_the_pedal_holds() -> None:
    listening = Listening.for_players(["p", "q"])
    for ev in play([(0, CC, 64, 127), (0, ON, 60, 80), (100, OFF, 60, 0)]):
        listening.sound(ev)
    assert listening.release_player("p", 400 * MS) == [PhraseNote(0, 60, 80, 400 * MS)]
    assert not listening.anyone_holding()
    listening.sound(play([(500, ON, 62, 80), (600, OFF, 62, 0)])[1])  # the pedal is gone too
    assert not listening.anyone_holding()


# -- odd but common MIDI --------------------------------------------------------------------------

def test_a_grace_note_written_note_off_first_is_a_zero_length_note() -> None:
    # music21 writes a grace note as a note of no length, its note-off sorted first; the main
    # note starts at the same tick. Paired naively, 62 sounds until its next note-off.
    listening = Listening.for_players(["p"])
    sounds = [listening.sound(ev) for ev in play(
        [(0, OFF, 62, 0), (0, ON, 62, 80), (0, ON, 64, 80), (400, OFF, 64, 0)])]
    assert sounds[1].grace == (PhraseNote(0, 62, 80, 0),) and sounds[1].ended == ()
    assert not listening.anyone_holding()  # nothing blocks the phrase end
    assert listening.take_phrase() == [PhraseNote(0, 62, 80, 0), PhraseNote(0, 64, 80, 400 * MS)]


def test_a_grace_note_is_recognised_live_within_a_millisecond_not_later() -> None:
    assert notes([(0, OFF, 62, 0), (0.4, ON, 62, 80), (400, OFF, 62, 0)]) == [(0.4, 62, 0)]
    # A note-off that released nothing, then the key struck later, is an ordinary note.
    assert notes([(0, OFF, 62, 0), (5, ON, 62, 80), (400, OFF, 62, 0)]) == [(5, 62, 395)]


def test_a_key_struck_again_while_down_ends_the_old_note_and_its_note_off_is_skipped() -> None:
    assert notes([(0, ON, 60, 80), (100, ON, 60, 80), (200, OFF, 60, 0),
                  (300, OFF, 60, 0)]) == [(0, 60, 100), (100, 60, 200)]
    # A DAW that writes the next note-on before the note-off at the same tick: legato notes.
    assert notes([(0, ON, 60, 80), (100, ON, 60, 80), (100, OFF, 60, 0),
                  (200, OFF, 60, 0)]) == [(0, 60, 100), (100, 60, 100)]


message = st.tuples(
    st.integers(0, 3_000),  # ms since the last message
    st.sampled_from([ON, OFF, ON | 1, CC, CC | 1]),
    st.sampled_from([60, 61, 62, 64, 66, 120, 121, 123]),  # pitches, and CC numbers
    st.sampled_from([0, 63, 64, 100]))


@settings(max_examples=300, deadline=None)
@given(st.lists(message, max_size=60))
def test_every_note_that_starts_ends_once_and_never_before_it_starts(
        steps: list[tuple[int, int, int, int]]) -> None:
    t, timed = 0, []
    for dt, status, a, b in steps:
        t += dt
        timed.append((t, status, a, b))
    messages = play([(float(t), s, a, b) for t, s, a, b in timed])
    heard = notes_heard(messages, ["p"], t * MS)
    starts = sorted((m.time_ns, m.data[1]) for m in messages if midi.is_note_on(m.data))
    assert sorted((n.onset_ns, n.pitch) for n in heard) == starts
    assert all(n.duration_ns >= 0 for n in heard)
    assert all(n.onset_ns + n.duration_ns <= t * MS for n in heard)
    keys = Keys()
    for m in messages:
        keys.hear(m.time_ns, m.data)
    keys.release_all(t * MS)
    assert not keys.sounding()


# -- one rule for files, live input and the corpus -----------------------------------------------

def odd_file(path: Path) -> None:
    """A fiddle line at 120 BPM (480 ticks a beat) with a grace note written note-off first (as
    music21 writes it) and two overlapping notes of one key."""
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    line = mido.MidiTrack([mido.MetaMessage("track_name", name="fiddle", time=0)])
    events = [(0, "note_on", 67), (480, "note_off", 67),
              (480, "note_off", 69), (480, "note_on", 69), (480, "note_on", 71),  # grace 69
              (960, "note_off", 71),
              (960, "note_on", 72), (1200, "note_on", 72), (1440, "note_off", 72),  # overlap
              (1920, "note_off", 72), (2400, "note_on", 69), (2880, "note_off", 69)]
    tick = 0
    for at, kind, pitch in events:
        line.append(mido.Message(kind, note=pitch, velocity=80 if kind == "note_on" else 0,
                                 time=at - tick))
        tick = at
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks += [conductor, line]
    mid.save(path)


EXPECTED = [(0.0, 67, 500.0), (500.0, 69, 0.0), (500.0, 71, 500.0), (1000.0, 72, 250.0),
            (1250.0, 72, 750.0), (2500.0, 69, 500.0)]  # (onset ms, pitch, duration ms)


def test_a_file_live_input_and_the_corpus_give_the_same_notes(tmp_path: Path) -> None:
    path = tmp_path / "odd.mid"
    odd_file(path)
    from_file = smf.read_players(path)  # what `replay` feeds the agent
    assert [(n.onset_ns / MS, n.pitch, n.duration_ns / MS)
            for n in notes_heard(from_file, ["fiddle"], 3000 * MS)] == EXPECTED
    # Live, the messages of one tick arrive a little apart, each stamped on arrival.
    live = [Heard(h.time_ns + i % 4 * 100_000, h.player, h.data)
            for i, h in enumerate(from_file)]
    heard = notes_heard(live, ["fiddle"], 3000 * MS)
    assert sorted((round(n.onset_ns / MS), n.pitch, round(n.duration_ns / MS))
                  for n in heard) == [(round(a), p, round(d)) for a, p, d in EXPECTED]
    entry = {"id": "odd", "collection": "test", "split": "test", "bpm": 120.0,
             "bar_beats": 4.0, "key": None}
    work = corpus_mod._work(entry, path.read_bytes(), path)  # what training reads
    assert [(float(o) * 500, int(p), float(d) * 500) for o, p, d in
            zip(work.onset, work.pitch, work.duration, strict=True)] == EXPECTED


def test_a_lost_note_off_does_not_hold_the_key_all_night() -> None:
    """Live, a key struck again while down means its note-off was lost (a keyboard cannot strike
    a key that is down): the next note-off, coming long after the re-strike, is the new note's."""
    assert notes([(0, ON, 64, 80), (1000, ON, 64, 80), (1600, OFF, 64, 0),
                  (2000, ON, 64, 80), (2300, OFF, 64, 0)]) == [
        (0, 64, 1000), (1000, 64, 600), (2000, 64, 300)]
    listening = Listening.for_players(["p"])
    for heard in play([(0, ON, 64, 80), (1000, ON, 64, 80), (1600, OFF, 64, 0)]):
        listening.sound(heard)
    assert not listening.anyone_holding()  # a phrase can end


def test_a_phrase_that_never_ends_keeps_its_latest_notes() -> None:
    from agent.listen.players import MAX_PHRASE_NOTES
    listening = Listening.for_players(["p"])
    listening.sound(Heard(0, "p", bytes((CC, 64, 127))))  # a pedal down all night
    for i in range(MAX_PHRASE_NOTES + 100):
        listening.sound(Heard((2 * i + 1) * MS, "p", bytes((ON, 60 + i % 12, 80))))
        listening.sound(Heard((2 * i + 2) * MS, "p", bytes((OFF, 60 + i % 12, 0))))
    assert listening.anyone_holding()
    assert len(listening.players["p"].phrase) == MAX_PHRASE_NOTES
