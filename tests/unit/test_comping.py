"""Comping on exact numbers: where in the half bar, which range, which voicing, which notes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.policy.comping import (
    Stroke,
    after_the_beat,
    bass_note,
    clear_of,
    comp_range,
    pattern,
    stroke_velocity,
    voicing,
)

C, F, G7 = frozenset({0, 4, 7}), frozenset({5, 9, 0}), frozenset({7, 11, 2, 5})


def test_sparse_a_short_bass_note_then_the_chord_once_the_half_bar_is_heard() -> None:
    assert pattern(2, 1.0) == (Stroke(0.0, 0.45, True), Stroke(1.0, 0.9, False))
    assert pattern(3, 1.0) == (Stroke(0.0, 0.45, True), Stroke(1.0, 1.9, False))
    # A one-beat half bar (2/4): the chord on the off-beat; in 6/8 on the second eighth.
    assert pattern(1, 1.0) == (Stroke(0.0, 0.45, True), Stroke(0.5, 0.4, False))
    six_eight = pattern(1, 1.0, division=3)
    assert [(s.at, s.bass) for s in six_eight] == [(0.0, True), (pytest.approx(1 / 3), False)]
    assert six_eight[1].length == pytest.approx(0.9 - 1 / 3, abs=1e-6)


def test_medium_boom_chuck_and_the_waltz() -> None:
    assert pattern(2, 2.0) == (Stroke(0.0, 0.45, True), Stroke(0.5, 0.45, False),
                               Stroke(1.0, 0.45, True), Stroke(1.5, 0.4, False))
    assert pattern(3, 2.0) == (Stroke(0.0, 0.9, True), Stroke(1.0, 0.8, False),
                               Stroke(2.0, 0.8, False))
    jig = pattern(1, 2.0, division=3)  # bass on the beat, the chord on its last eighth
    assert [(round(s.at, 3), round(s.length, 3), s.bass) for s in jig] == [
        (0.0, 0.6, True), (0.667, 0.233, False)]


def test_dense_every_eighth() -> None:
    assert [s.at for s in pattern(2, 3.5)] == [0.0, 0.5, 1.0, 1.5]
    assert not any(s.bass for s in pattern(2, 3.5))
    assert len(pattern(1, 3.5, division=3)) == 3
    assert pattern(0, 2.0) == ()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.floats(0.0, 4.0), st.sampled_from([2, 3]))
def test_strokes_stay_inside_the_half_bar_on_eighths(beats: int, density: float,
                                                     division: int) -> None:
    strokes = pattern(beats, density, division)
    assert strokes and [s.at for s in strokes] == sorted(s.at for s in strokes)
    for s in strokes:
        assert s.at * division == pytest.approx(round(s.at * division))  # on an eighth
        assert s.length > 0 and s.at + s.length <= beats - 0.1 + 1e-9


def test_the_first_stroke_is_lighter_and_off_beats_softer() -> None:
    assert stroke_velocity(Stroke(0.0, 0.4, True), True, 80) == 70
    assert stroke_velocity(Stroke(0.5, 0.4, False), False, 80) == 74
    assert stroke_velocity(Stroke(1.0, 0.4, False), False, 80) == 80
    assert stroke_velocity(Stroke(0.0, 0.4, True), True, 5) == 1
    assert stroke_velocity(Stroke(1.0, 0.4, True), False, 200) == 127


def test_tones_that_rub_against_a_held_note_are_left_out() -> None:
    assert clear_of(C, [65]) == frozenset({0, 7})  # F held: E is a semitone below it
    assert clear_of(C, [66]) == frozenset({4})  # F#: a tritone from C, a semitone below G
    assert clear_of(C, []) == C
    assert clear_of(C, [61, 65, 66]) == C  # every tone rubs: the chord as it is


def test_the_bass_is_the_root_an_octave_below_the_voicing() -> None:
    assert bass_note(0, [52, 55, 60]) == 36  # below 52 - 12 = 40: C2
    assert bass_note(7, [59, 62, 67]) == 43
    assert bass_note(0, [40, 43, 48]) == 36  # never below C2
    assert bass_note(9, []) == 45


@pytest.mark.parametrize(("soloist_low", "register", "expected"), [
    (None, 0, (51, 67)),  # around G4 without a soloist
    (72, 0, (54, 70)),  # two semitones under the soloist's lowest note
    (72, -5, (49, 65)),
    (None, 12, (63, 79)),
    (None, -60, (14, 30)),  # the top stays within 30..120
    (20, 0, (14, 30)),
    (None, 60, (104, 120)),
    (127, 0, (104, 120)),
])
def test_comp_range(soloist_low: int | None, register: int, expected: tuple[int, int]) -> None:
    assert comp_range(soloist_low, register) == expected


# -- voicing ----------------------------------------------------------------------------------

def test_without_a_previous_voicing_the_lowest_close_voicing() -> None:
    assert voicing(C, 48, 64) == [48, 52, 55]
    assert voicing(C, 49, 64) == [52, 55, 60]  # first inversion: C3 is out of range
    assert voicing(G7, 48, 64) == [50, 53, 55]  # three voices of four tones: D F G
    assert voicing(C, 51, 67) == [52, 55, 60]


def test_voice_leading_moves_to_the_nearest_chord_tones() -> None:
    # From C major E-G-C to F major: C stays, E -> F, G -> A (F-A-C).
    assert voicing(F, 48, 64, previous=[52, 55, 60]) == [53, 57, 60]
    # From F-A-C to G7: F stays, A -> G, C -> B (costs in the next test).
    assert voicing(G7, 48, 64, previous=[53, 57, 60]) == [53, 55, 59]
    # Back to C from F-G-B: E-G-C (52 55 60): 1+0+1 = 2, G-C-E (55 60 64): 0+1+5 = 6.
    assert voicing(C, 48, 64, previous=[53, 55, 59]) == [52, 55, 60]


def test_voice_leading_costs_for_g7_worked_out() -> None:
    # Candidates in [48, 64]: 50 D, 53 F, 55 G, 59 B, 62 D. Close (within an octave),
    # three distinct tones, cost to previous F-A-C (53 57 60):
    #   50 53 55: 3+0+2 = 5    50 53 59: 3+0+1 = 4    50 55 59: 3+2+1 = 6
    #   53 55 59: 0+2+1 = 3    53 55 62: 0+2+2 = 4    53 59 62: 0+1+2 = 3 (later: not chosen)
    #   55 59 62: 2+1+2 = 5
    assert voicing(G7, 48, 64, previous=[53, 57, 60]) == [53, 55, 59]


def test_equal_costs_go_to_the_lower_voicing() -> None:
    # From a single G (55): C-E-G 52 55 60 costs 3+0+5 = 8; E-G-C... every close C voicing
    # containing 55: (48 52 55) 7+3+0 = 10, (52 55 60) 3+0+5 = 8, (55 60 64) 0+5+9 = 14.
    assert voicing(C, 48, 64, previous=[55]) == [52, 55, 60]
    # Equidistant from 58: (52 55 60) 6+3+2 = 11 and (55 60 64) 3+2+6 = 11: the lower.
    assert voicing(C, 48, 64, previous=[58]) == [52, 55, 60]


def test_never_wider_than_an_octave_even_when_nearer() -> None:
    # From B2-C4 (47, 60) the same notes would cost nothing, but they span 13 semitones (a
    # minor ninth); the nearest close voicing is B2-C3 (47, 48: cost 1).
    assert voicing(frozenset({11, 0}), 47, 60, previous=[47, 60]) == [47, 48]


def test_a_narrow_range_gives_fewer_voices() -> None:
    assert voicing(C, 60, 62) == [60]
    assert voicing(C, 60, 64) == [60, 64]
    assert voicing(C, 61, 63) == []
    assert voicing(C, 48, 64, voices=2) == [48, 52]
    assert voicing(C, 48, 64, voices=5) == [48, 52, 55]  # a triad has three tones
    assert voicing(frozenset({0}), 48, 72) == [48]
    assert voicing(frozenset(), 48, 72) == []


def test_range_is_clipped_to_midi() -> None:
    assert voicing(C, -10, 5) == [0, 4]
    assert voicing(C, 120, 140) == [120, 124, 127]


@settings(max_examples=200, deadline=None)
@given(st.frozensets(st.integers(0, 11), min_size=1, max_size=5), st.integers(20, 100),
       st.integers(12, 24), st.lists(st.integers(0, 127), max_size=4))
def test_a_voicing_is_close_distinct_and_in_range(chord: frozenset[int], low: int, span: int,
                                                  previous: list[int]) -> None:
    out = voicing(chord, low, low + span, previous)
    assert len(out) == min(3, len(chord))  # wide enough for every tone
    assert out == sorted(out)
    assert all(low <= p <= low + span and p % 12 in chord for p in out)
    assert len({p % 12 for p in out}) == len(out)
    assert out[-1] - out[0] <= 12


def test_after_the_beat_the_chord_on_each_beats_eighth_let_go_before_the_next() -> None:
    assert after_the_beat(2, 2.0) == (Stroke(0.5, 0.4, False), Stroke(1.5, 0.4, False))
    assert after_the_beat(2, 1.0) == (Stroke(0.5, 0.4, False),)  # sparse: the first beat only
    assert after_the_beat(1, 2.0, division=3) == (Stroke(1 / 3, 0.566666, False),)
    assert after_the_beat(0, 2.0) == ()
