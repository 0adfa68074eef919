"""Comping on exact numbers: where in the beat, which range, which voicing, which notes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import PlannedNote
from agent.policy.comping import (
    attacks_in_beat,
    comp_beat,
    comp_range,
    plays_on_beat,
    voicing,
)

MS = 1_000_000
C, F, G7 = frozenset({0, 4, 7}), frozenset({5, 9, 0}), frozenset({7, 11, 2, 5})


@pytest.mark.parametrize(("density", "attacks"), [
    (0.25, (0.0,)), (1.0, (0.0,)), (1.49, (0.0,)),
    (1.5, (0.0, 0.5)), (2.99, (0.0, 0.5)),
    (3.0, (0.0, 0.25, 0.5, 0.75)), (4.0, (0.0, 0.25, 0.5, 0.75)),
])
def test_attacks_in_beat(density: float, attacks: tuple[float, ...]) -> None:
    assert attacks_in_beat(density) == attacks


def test_a_sparse_comp_plays_every_other_beat() -> None:
    assert [plays_on_beat(b, 0.5) for b in range(4)] == [True, False, True, False]
    assert [plays_on_beat(b, 0.74) for b in range(3)] == [True, False, True]
    assert all(plays_on_beat(b, 0.75) for b in range(4))
    assert all(plays_on_beat(b, 2.0) for b in range(4))


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


# -- comp_beat --------------------------------------------------------------------------------

def test_one_attack_per_beat() -> None:
    out, used = comp_beat(C, 48, 64, [], 1000 * MS, 500 * MS, density=1.0, velocity=90)
    assert out == [PlannedNote(1000 * MS, p, 90, 450 * MS) for p in (48, 52, 55)]
    assert used == [48, 52, 55]


def test_beat_and_off_beat() -> None:
    out, used = comp_beat(F, 48, 64, [52, 55, 60], 1000 * MS, 500 * MS, density=2.0,
                          velocity=90)
    assert used == [53, 57, 60]
    assert out == ([PlannedNote(1000 * MS, p, 90, 225 * MS) for p in used]
                   + [PlannedNote(1250 * MS, p, 82, 225 * MS) for p in used])


def test_sixteenths() -> None:
    out, _used = comp_beat(C, 48, 64, [], 0, 600 * MS, density=3.5, velocity=60)
    assert [(n.start_ns // MS, n.velocity, n.duration_ns // MS) for n in out] == [
        (0, 60, 135)] * 3 + [(150, 52, 135)] * 3 + [(300, 52, 135)] * 3 + [(450, 52, 135)] * 3
    assert [n.pitch for n in out] == [48, 52, 55] * 4


def test_velocities_stay_in_midi_range() -> None:
    out, _ = comp_beat(C, 48, 64, [], 0, 500 * MS, density=2.0, velocity=5)
    assert [n.velocity for n in out] == [5, 5, 5, 1, 1, 1]
    out, _ = comp_beat(C, 48, 64, [], 0, 500 * MS, density=2.0, velocity=200)
    assert [n.velocity for n in out] == [127, 127, 127, 127, 127, 127]  # 200 and 192, capped
    out, _ = comp_beat(C, 48, 64, [], 0, 500 * MS, density=1.0, velocity=0)
    assert [n.velocity for n in out] == [1, 1, 1]


def test_odd_periods_round_to_whole_nanoseconds() -> None:
    out, _ = comp_beat(frozenset({0}), 48, 59, [], 10, 333, density=2.0, velocity=80)
    # Attacks at 10 + round(0.5 * 333) = 10 + 166 (half to even), lengths round(166.5 * 0.9).
    assert [(n.start_ns, n.duration_ns) for n in out] == [(10, 150), (176, 150)]


def test_no_chord_tones_in_range_plays_nothing_and_keeps_the_previous_voicing() -> None:
    previous = [52, 55, 60]
    out, used = comp_beat(C, 61, 63, previous, 0, 500 * MS, 1.0, 80)
    assert out == []
    assert used == previous and used is not previous
