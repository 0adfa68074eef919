"""listen/texture.py: when the players strike a new chord together at nearly every beat."""

from __future__ import annotations

from agent.listen.texture import CLUSTERS, FORGET_NS, Strikes

BEAT_NS = 500_000_000
# A chorale's soprano and bass: a new pair of notes on every beat.
CHORALE = [(76, 48), (71, 43), (72, 45), (74, 41), (76, 43), (74, 43), (76, 48), (71, 50),
           (69, 53), (67, 52)]


def heard(pairs: list[tuple[int, ...]], spread_ns: int = 12_000_000) -> Strikes:
    strikes = Strikes()
    for i, notes in enumerate(pairs):
        for j, pitch in enumerate(notes):
            strikes.note_on(pitch, i * BEAT_NS + j * spread_ns)  # humanly, not quite together
    return strikes


def test_a_chorale_strikes_a_new_chord_together_on_every_beat() -> None:
    strikes = heard(CHORALE)  # type: ignore[arg-type]
    assert strikes.changing_together() == 1.0
    assert strikes.chordal()


def test_too_few_onsets_say_nothing_yet() -> None:
    assert heard(CHORALE[:CLUSTERS]).changing_together() == 0.0  # type: ignore[arg-type]
    assert heard(CHORALE[:CLUSTERS + 1]).chordal()  # type: ignore[arg-type]


def test_one_line_is_not_chordal() -> None:
    assert not heard([(p,) for p in (60, 62, 64, 65, 67, 69, 71, 72, 74, 76)]).chordal()


def test_one_chord_struck_again_and_again_is_not_a_change() -> None:
    # A band on C major under a melody: bass and guitar strike C and E again and again.
    assert heard([(48, 64)] * 12).changing_together() == 0.0


def test_notes_farther_apart_than_together_are_two_onsets() -> None:
    # The pairs a tenth of a beat apart: a melody and its echo, not a chord.
    assert not heard(CHORALE, spread_ns=50_000_000).chordal()  # type: ignore[arg-type]


def test_unison_and_octaves_are_one_line_not_chords() -> None:
    # Two fiddles in unison, or a tune doubled an octave down, a few ms apart.
    tune = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
    assert heard([(p, p) for p in tune]).changing_together() == 0.0  # type: ignore[misc]
    assert heard([(p, p - 12) for p in tune]).changing_together() == 0.0  # type: ignore[misc]


def test_a_long_silence_forgets_the_texture() -> None:
    strikes = heard(CHORALE)  # type: ignore[arg-type]
    assert strikes.chordal()
    strikes.note_on(60, len(CHORALE) * BEAT_NS + FORGET_NS + 1)  # a new tune, after a pause
    assert not strikes.chordal()


def test_the_last_chord_struck_within_a_while() -> None:
    strikes = heard(CHORALE)  # type: ignore[arg-type]
    last = (len(CHORALE) - 1) * BEAT_NS
    assert strikes.last_chord(last + BEAT_NS // 2, BEAT_NS) == frozenset({67 % 12, 52 % 12})
    assert strikes.last_chord(last + 2 * BEAT_NS, BEAT_NS) is None  # too old
    strikes.note_on(72, last + BEAT_NS)  # a single note since: the chord before it still counts
    assert strikes.last_chord(last + BEAT_NS + 1, 2 * BEAT_NS) == frozenset({7, 4})
