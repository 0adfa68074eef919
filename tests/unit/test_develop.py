"""Developing and mirroring a call (agent.policy.develop, .motif and .skeleton): exact notes for
scripted random draws, and properties.

A `Scripted` random source returns the draws a test names, so each expectation is worked out by
hand from the module's rules (the order of draws is part of what is tested: one direction, then
per note a "vary?" draw, then for a varied long note a "split?" draw, then a neighbour direction).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import PhraseNote, PlannedNote
from agent.model.originality import join_lines, longest_shared_run
from agent.policy.develop import (
    MIN_SPLIT_NS,
    MOTIF_NOTES,
    VARY_EVERY,
    develop_motif,
    diatonic_shift,
    land_on_chords,
    mirror,
    relative,
    scale_pitches,
    top_line,
)
from agent.policy.motif import (
    COPY_BOUND,
    augmentation_factor,
    can_diminish,
    degree_of,
    figures,
    find_motif,
    inversion,
    kept_original,
    longest_exact_run,
    motif_period,
    quantised,
    rhythmic_imitation,
    sequence,
    stretched,
)
from agent.policy.skeleton import PLAN_WEIGHTS, develop

MS = 1_000_000
C_MAJOR = frozenset({0, 2, 4, 5, 7, 9, 11})
C_LADDER = scale_pitches(C_MAJOR)


class Scripted(random.Random):
    """Returns the named draws in order; fails if a draw is not one the caller offered."""

    def __init__(self, choices: Sequence[int] = (), randoms: Sequence[float] = ()) -> None:
        super().__init__(0)
        self.picks = list(choices)
        self.randoms = list(randoms)

    def choice(self, seq: Any) -> Any:
        value = self.picks.pop(0)
        assert value in seq, f"scripted {value} is not among {seq}"
        return value

    def random(self) -> float:
        return self.randoms.pop(0)

    def used_up(self) -> bool:
        return not self.picks and not self.randoms


def line(pitches: Sequence[int], t0_ms: int = 3000, step_ms: int = 250, dur_ms: int = 100,
         velocity: int = 70) -> list[PhraseNote]:
    """A monophonic call; velocities count up from `velocity` so notes are told apart."""
    return [PhraseNote((t0_ms + i * step_ms) * MS, p, velocity + i, dur_ms * MS)
            for i, p in enumerate(pitches)]


def notes(*rows: tuple[int, int, int, int]) -> list[PlannedNote]:
    """(start ms, pitch, velocity, duration ms) rows."""
    return [PlannedNote(s * MS, p, v, d * MS) for s, p, v, d in rows]


# -- scale_pitches, diatonic_shift, relative, top_line ----------------------------------------

def test_scale_pitches() -> None:
    assert scale_pitches(None) == list(range(128))
    assert scale_pitches(frozenset()) == list(range(128))
    assert C_LADDER[:8] == [0, 2, 4, 5, 7, 9, 11, 12]
    assert C_LADDER[-5:] == [120, 122, 124, 125, 127]
    assert len(C_LADDER) == 75  # 7 in each of ten octaves, and C D E F G above 120
    assert scale_pitches({1}) == [1, 13, 25, 37, 49, 61, 73, 85, 97, 109, 121]


@pytest.mark.parametrize(("pitch", "steps", "expected"), [
    (60, 1, 62), (60, 2, 64), (64, 1, 65), (65, -1, 64), (60, -1, 59), (60, -2, 57),
    (60, 0, 60), (71, 1, 72), (72, 7, 84),
    (61, 0, 60),  # off the scale: the lower of two nearest scale pitches
    (61, 1, 62), (61, -1, 59),
    (66, 1, 67),  # F# -> F, then up a step
    (63, 0, 62),  # D# between D and E: D
    (127, 1, 127), (126, 3, 127),  # clamped at the top (126 snaps to 125)
    (0, -1, 0), (1, -4, 0),  # and at the bottom
])
def test_diatonic_shift_in_c_major(pitch: int, steps: int, expected: int) -> None:
    assert diatonic_shift(pitch, steps, C_LADDER) == expected


def test_diatonic_shift_on_a_short_ladder_snaps_from_outside() -> None:
    ladder = [60, 64, 67]
    assert diatonic_shift(10, 0, ladder) == 60
    assert diatonic_shift(10, -1, ladder) == 60
    assert diatonic_shift(100, -1, ladder) == 64
    assert diatonic_shift(62, 1, ladder) == 64  # 62 is as near 60 as 64: 60, then up
    assert diatonic_shift(66, 1, ladder) == 67  # 66 is nearer 67: 67, then clamped


def test_relative_starts_at_zero_and_keeps_the_rest() -> None:
    call = [PhraseNote(5000 * MS, 60, 70, 100 * MS, channel=3),
            PhraseNote(5250 * MS, 62, 75, 300 * MS, channel=3)]
    assert relative(call) == notes((0, 60, 70, 100), (250, 62, 75, 300))
    assert relative([]) == []


def test_top_line_keeps_the_highest_note_of_each_attack() -> None:
    call = [PhraseNote(0, 48, 50, 500 * MS), PhraseNote(0, 64, 90, 500 * MS),
            PhraseNote(0, 55, 60, 500 * MS),
            PhraseNote(500 * MS, 62, 70, 100 * MS),
            PhraseNote(1000 * MS, 60, 71, 100 * MS), PhraseNote(1039 * MS, 67, 72, 100 * MS),
            PhraseNote(1500 * MS, 59, 73, 100 * MS), PhraseNote(1540 * MS, 55, 74, 100 * MS)]
    assert top_line(list(reversed(call))) == [
        call[1], call[3],
        call[5],  # 39 ms after 60: one attack, and 67 is its top
        call[6], call[7],  # 40 ms apart: two attacks
    ]
    assert top_line([]) == []


# -- develop_motif ----------------------------------------------------------------------------

CALL = line([60, 64, 62, 67, 65])  # 5 notes, 250 ms apart, velocities 70..74


@pytest.mark.parametrize(("scale", "steps", "pitches"), [
    (C_MAJOR, 1, [62, 65, 64, 69]),
    (C_MAJOR, 2, [64, 67, 65, 71]),
    (C_MAJOR, -1, [59, 62, 60, 65]),
    (C_MAJOR, -2, [57, 60, 59, 64]),
    (None, 2, [62, 66, 64, 69]),  # no key heard: chromatic steps
    (None, -1, [59, 63, 61, 66]),
])
def test_develop_motif_sequences_the_head_by_scale_steps(
        scale: frozenset[int] | None, steps: int, pitches: list[int]) -> None:
    rng = Scripted(choices=[steps])
    out = develop_motif(CALL, scale, rng)
    assert out == [PlannedNote(i * 250 * MS, p, 70 + i, 100 * MS) for i, p in enumerate(pitches)]
    assert len(out) == MOTIF_NOTES
    assert rng.used_up()


def test_develop_motif_takes_the_top_of_chords_and_snaps_off_scale_notes() -> None:
    call = [PhraseNote(1000 * MS, 48, 60, 400 * MS), PhraseNote(1000 * MS, 52, 61, 400 * MS),
            PhraseNote(1000 * MS, 61, 62, 400 * MS),  # C#: top of the chord, off the scale
            PhraseNote(1500 * MS, 66, 63, 200 * MS),  # F#
            PhraseNote(2000 * MS, 64, 64, 200 * MS)]
    out = develop_motif(call, C_MAJOR, Scripted(choices=[1]))
    assert out == notes((0, 62, 62, 400), (500, 67, 63, 200), (1000, 65, 64, 200))


def test_develop_motif_of_a_short_call_and_of_none() -> None:
    assert develop_motif(line([60]), C_MAJOR, Scripted(choices=[-2])) == notes((0, 57, 70, 100))
    assert develop_motif([], C_MAJOR, Scripted(choices=[1])) == []


def test_develop_motif_clamps_at_the_ends_of_the_keyboard() -> None:
    out = develop_motif(line([127, 1]), None, Scripted(choices=[2]))
    assert [n.pitch for n in out] == [127, 3]
    out = develop_motif(line([127, 1]), None, Scripted(choices=[-2]))
    assert [n.pitch for n in out] == [125, 0]


@pytest.mark.parametrize("seed", [0, 1, 7, 2024])
def test_develop_motif_with_a_seeded_rng_takes_its_one_draw(seed: int) -> None:
    by_steps = {-2: [57, 60, 59, 64], -1: [59, 62, 60, 65], 1: [62, 65, 64, 69],
                2: [64, 67, 65, 71]}
    steps = random.Random(seed).choice((-2, -1, 1, 2))  # the same first draw
    out = develop_motif(CALL, C_MAJOR, random.Random(seed))
    assert [n.pitch for n in out] == by_steps[steps]


# -- mirror -----------------------------------------------------------------------------------

def test_mirror_moves_a_third_and_varies_the_notes_drawn() -> None:
    rng = Scripted(choices=[2, -1], randoms=[0.9, 0.1, 0.9, 0.3])
    out = mirror(line([60, 64, 67, 65]), C_MAJOR, rng, variation=0.3)
    assert out == notes(
        (0, 64, 70, 100),  # C up a third: E
        (250, 65, 71, 100),  # varied (0.1 < 0.3): E up a third is G, then a step down: F
        (500, 71, 72, 100),
        (750, 69, 73, 100),  # 0.3 is not below 0.3: kept
    )
    assert rng.used_up()


def test_mirror_down_a_third() -> None:
    out = mirror(line([60, 64, 67]), C_MAJOR, Scripted(choices=[-2], randoms=[0.5] * 3))
    assert [n.pitch for n in out] == [57, 60, 64]
    out = mirror(line([60, 64, 67]), None, Scripted(choices=[-2], randoms=[0.5] * 3))
    assert [n.pitch for n in out] == [58, 62, 65]  # chromatic: two semitones


def test_mirror_splits_a_long_varied_note_into_a_passing_note() -> None:
    call = [PhraseNote(2000 * MS, 60, 80, 300 * MS + 1), PhraseNote(2400 * MS, 64, 81, 100 * MS)]
    rng = Scripted(choices=[2, 1], randoms=[0.0, 0.2, 0.9])
    out = mirror(call, C_MAJOR, rng)
    assert out == [PlannedNote(0, 64, 80, 150 * MS),
                   PlannedNote(150 * MS, 65, 80, 150 * MS + 1),  # E on to F
                   PlannedNote(400 * MS, 67, 81, 100 * MS)]
    assert rng.used_up()


def test_mirror_changes_a_long_note_to_a_neighbour_when_not_split() -> None:
    call = [PhraseNote(0, 60, 80, 300 * MS)]
    rng = Scripted(choices=[-2, -1], randoms=[0.1, 0.5])
    assert mirror(call, C_MAJOR, rng) == [PlannedNote(0, 55, 80, 300 * MS)]  # A, then G
    assert rng.used_up()


def test_mirror_never_splits_a_short_note() -> None:
    call = [PhraseNote(0, 60, 80, MIN_SPLIT_NS - 1)]
    rng = Scripted(choices=[2, 1], randoms=[0.0])  # no split draw is made
    assert mirror(call, C_MAJOR, rng) == [PlannedNote(0, 65, 80, MIN_SPLIT_NS - 1)]
    assert rng.used_up()


def test_mirror_takes_a_nearby_alternative() -> None:
    rng = Scripted(choices=[2, 1, -1], randoms=[0.5, 0.5, 0.5])
    out = mirror(line([60, 62, 64]), C_MAJOR, rng, variation=1.0, alternatives=[68, 65])
    # 60 -> 64, alternative 68 is 4 away: taken. 62 -> 65, alternative 65 is no change: the
    # neighbour above (67). 64 -> 67, no alternative: the neighbour below (65).
    assert [n.pitch for n in out] == [68, 67, 65]
    assert rng.used_up()


def test_mirror_ignores_a_distant_alternative() -> None:
    rng = Scripted(choices=[2, -1], randoms=[0.0])
    assert [n.pitch for n in mirror(line([60]), C_MAJOR, rng, alternatives=[69])] == [62]


def test_mirror_with_no_variation_still_changes_every_sixth_note() -> None:
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81]
    rng = Scripted(choices=[2, 1, 1], randoms=[0.5] * len(scale))
    out = mirror(line(scale), C_MAJOR, rng, variation=0.0)
    assert [n.pitch for n in out] == [64, 65, 67, 69, 71,
                                      74,  # the sixth: C up a third (E), then up a step
                                      74, 76, 77, 79, 81,
                                      84,  # the twelfth: A -> C -> D
                                      84]
    assert rng.used_up()


def test_mirror_keeps_its_head_and_varies_after_it() -> None:
    """The first `head` notes are the call's a third up, unvaried, with no draw: the motif a
    listener recognises the call by. The variation starts after them."""
    rng = Scripted(choices=[2, -1], randoms=[0.1, 0.9])
    out = mirror(line([60, 62, 64, 65, 67, 69]), C_MAJOR, rng, variation=0.3, head=4)
    assert [n.pitch for n in out] == [64, 65, 67, 69,
                                      69,  # varied (0.1 < 0.3): G up a third is B, a step down
                                      72]  # 0.9: kept
    assert rng.used_up()
    # A head longer than VARY_EVERY still changes the sixth note.
    rng = Scripted(choices=[2, 1], randoms=[0.5])
    out = mirror(line([60, 62, 64, 65, 67, 69, 71]), C_MAJOR, rng, variation=0.0, head=7)
    assert [n.pitch for n in out] == [64, 65, 67, 69, 71, 74, 74]
    assert rng.used_up()


def test_mirror_of_nothing() -> None:
    assert mirror([], C_MAJOR, Scripted(choices=[2])) == []


def test_mirror_keeps_time_order_when_a_split_note_overlaps_the_next() -> None:
    # A long note held under a line: its split second half starts (500 ms) after the next
    # notes of the line (250 ms); the plan must stay in time order (beat lock relies on it).
    call = [PhraseNote(0, 60, 80, 1000 * MS), PhraseNote(250 * MS, 67, 81, 100 * MS),
            PhraseNote(350 * MS, 69, 82, 100 * MS)]
    rng = Scripted(choices=[2, 1], randoms=[0.0, 0.0, 0.9, 0.9])
    out = mirror(call, C_MAJOR, rng)
    assert out == [PlannedNote(0, 64, 80, 500 * MS), PlannedNote(250 * MS, 71, 81, 100 * MS),
                   PlannedNote(350 * MS, 72, 82, 100 * MS),
                   PlannedNote(500 * MS, 65, 80, 500 * MS)]


# -- properties -------------------------------------------------------------------------------

@st.composite
def calls(draw: st.DrawFn) -> list[PhraseNote]:
    """Calls in the middle of the keyboard (so three scale steps never reach an end), chords
    and overlaps allowed, every note a distinct velocity (to pair output with input)."""
    rows = draw(st.lists(st.tuples(st.integers(0, 600), st.integers(48, 84),
                                   st.integers(MS, 2000 * MS)), min_size=1, max_size=24))
    out, t = [], draw(st.integers(0, 10**12))
    for i, (gap_ms, pitch, duration) in enumerate(rows):
        t += gap_ms * MS
        out.append(PhraseNote(t, pitch, i + 1, duration))
    return out


scales = st.frozensets(st.integers(0, 11), min_size=1)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=150, deadline=None)
@given(calls(), scales, seeds)
def test_develop_motif_stays_in_the_scale_and_keeps_the_rhythm(
        call: list[PhraseNote], scale: frozenset[int], seed: int) -> None:
    out = develop_motif(call, scale, random.Random(seed))
    head = relative(top_line(call))[:MOTIF_NOTES]
    assert all(n.pitch % 12 in scale for n in out)
    assert [replace(n, pitch=0) for n in out] == [replace(n, pitch=0) for n in head]
    ladder = scale_pitches(scale)
    assert any(all(n.pitch == diatonic_shift(h.pitch, s, ladder) for n, h in zip(out, head,
                                                                                strict=True))
               for s in (-2, -1, 1, 2))  # one direction for the whole motif


@settings(max_examples=200, deadline=None)
@given(calls(), scales, seeds, st.floats(0.0, 1.0))
def test_mirror_properties(call: list[PhraseNote], scale: frozenset[int], seed: int,
                           variation: float) -> None:
    out = mirror(call, scale, random.Random(seed), variation=variation)
    line_notes = relative(top_line(call))
    ladder = scale_pitches(scale)

    # Every pitch in the scale.
    assert all(n.pitch % 12 in scale for n in out)
    # In time order.
    starts = [n.start_ns for n in out]
    assert starts == sorted(starts)

    # Each line note becomes one note at its own start and length (the rhythm kept), or, when
    # at least MIN_SPLIT_NS long, two halves: the line's note moved, then a passing note.
    for note in line_notes:
        made = sorted((n for n in out if n.velocity == note.velocity), key=lambda n: n.start_ns)
        if len(made) == 1:
            assert (made[0].start_ns, made[0].duration_ns) == (note.start_ns, note.duration_ns)
        else:
            half = note.duration_ns // 2
            assert len(made) == 2 and note.duration_ns >= MIN_SPLIT_NS
            assert [(n.start_ns, n.duration_ns) for n in made] == [
                (note.start_ns, half), (note.start_ns + half, note.duration_ns - half)]
            assert made[0].pitch in (diatonic_shift(note.pitch, s, ladder) for s in (-2, 2))
    assert len(out) == sum(1 for n in out for note in line_notes if n.velocity == note.velocity)

    # Never more than VARY_EVERY - 1 line notes in a row copied unvaried (moved a third, nothing
    # else changed). The direction is one draw: whichever it was, the other copies nothing.
    longest = 0
    for steps in (-2, 2):
        run = 0
        for note in line_notes:
            copy = replace(note, pitch=diatonic_shift(note.pitch, steps, ladder))
            made = [n for n in out if n.velocity == note.velocity]
            run = run + 1 if made == [copy] else 0
            longest = max(longest, run)
    assert longest <= VARY_EVERY - 1


@settings(max_examples=50, deadline=None)
@given(calls(), scales, seeds)
def test_mirror_without_variation_changes_exactly_every_sixth_line_note(
        call: list[PhraseNote], scale: frozenset[int], seed: int) -> None:
    out = mirror(call, scale, random.Random(seed), variation=0.0)
    line_notes = relative(top_line(call))
    ladder = scale_pitches(scale)
    steps = random.Random(seed).choice((-2, 2))  # the first draw: the direction
    kept = [[n for n in out if n.velocity == note.velocity]
            == [replace(note, pitch=diatonic_shift(note.pitch, steps, ladder))]
            for note in line_notes]
    assert kept == [i % VARY_EVERY != VARY_EVERY - 1 for i in range(len(line_notes))]


# -- motif: transformations -------------------------------------------------------------------

MOTIF = notes((0, 60, 70, 200), (250, 62, 71, 200), (500, 64, 72, 200), (1000, 60, 73, 400))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 127), st.integers(-8, 8), scales)
def test_degree_of_snaps_as_diatonic_shift_does(pitch: int, steps: int,
                                                scale: frozenset[int]) -> None:
    ladder = scale_pitches(scale)
    moved = ladder[min(max(degree_of(pitch, ladder) + steps, 0), len(ladder) - 1)]
    assert moved == diatonic_shift(pitch, steps, ladder)


def test_sequence_moves_by_scale_steps_so_the_intervals_adapt() -> None:
    assert sequence(MOTIF, 1, C_LADDER) == [replace(n, pitch=p) for n, p in
                                           zip(MOTIF, [62, 64, 65, 62], strict=True)]  # D E F D
    assert [n.pitch for n in sequence(MOTIF, -2, C_LADDER)] == [57, 59, 60, 57]  # A B C A
    with pytest.raises(ValueError):
        sequence(MOTIF, 0, C_LADDER)


def test_inversion_mirrors_the_scale_steps_around_the_first_note() -> None:
    assert inversion(MOTIF, C_LADDER) == [replace(n, pitch=p) for n, p in
                                         zip(MOTIF, [60, 59, 57, 60], strict=True)]  # C B A C
    assert [n.pitch for n in inversion(MOTIF, C_LADDER, steps=2)] == [64, 62, 60, 64]
    assert [n.pitch for n in inversion(relative(line([60, 67, 64])), C_LADDER)] == [60, 53, 57]
    assert inversion([], C_LADDER) == []


def test_stretched_scales_onsets_and_durations_and_keeps_the_rest() -> None:
    assert stretched(MOTIF, 2) == notes((0, 60, 70, 400), (500, 62, 71, 400),
                                        (1000, 64, 72, 400), (2000, 60, 73, 800))
    assert stretched(MOTIF, 0.5) == notes((0, 60, 70, 100), (125, 62, 71, 100),
                                          (250, 64, 72, 100), (500, 60, 73, 200))
    moved = [replace(n, start_ns=n.start_ns + 3000 * MS) for n in MOTIF]  # from the first note
    assert stretched(moved, 1.5)[1] == PlannedNote(375 * MS, 62, 71, 300 * MS)
    assert stretched([], 2) == []


def test_augmentation_is_one_and_a_half_in_a_triple_metre() -> None:
    assert augmentation_factor(None) == 2.0
    assert augmentation_factor(4) == 2.0
    assert augmentation_factor(3) == 1.5
    assert augmentation_factor(6) == 1.5


def test_diminution_only_where_the_halved_rhythm_stays_playable() -> None:
    assert can_diminish(MOTIF, None)  # 125 ms apart once halved
    assert not can_diminish(MOTIF, 600 * MS)  # a sixteenth is 150 ms at this beat
    assert can_diminish(MOTIF, 500 * MS)
    assert not can_diminish(MOTIF[:1], None)


def test_rhythmic_imitation_keeps_rhythm_and_dynamics_with_a_new_contour() -> None:
    # C D E C has intervals +1 +1 -2 (scale steps). From G: the first draw may not be +1.
    rng = Scripted(choices=[2, -1, 1])
    out = rhythmic_imitation(MOTIF, C_LADDER, 67, rng)
    assert out == [replace(n, pitch=p) for n, p in zip(MOTIF, [67, 71, 69, 71], strict=True)]
    assert rng.used_up()


def test_rhythmic_imitation_speaks_the_calls_figures_when_it_can() -> None:
    # The call's figures: (+2, -1) and (-1, +3). From G, the first step opens a figure of the
    # call (+2 or -1, not the motif's +1), the next completes one.
    vocabulary = {(2, -1), (-1, 3)}
    rng = Scripted(choices=[-1, 3, -1])
    out = rhythmic_imitation(MOTIF, C_LADDER, 67, rng, vocabulary)
    assert [n.pitch for n in out] == [67, 65, 71, 69]  # G F B A: -1 +3, then +3 -1 is none
    assert rng.used_up()


@settings(max_examples=150, deadline=None)
@given(calls(), scales, seeds)
def test_rhythmic_imitation_properties(call: list[PhraseNote], scale: frozenset[int],
                                       seed: int) -> None:
    motif = relative(top_line(call))
    ladder = scale_pitches(scale)
    out = rhythmic_imitation(motif, ladder, motif[0].pitch, random.Random(seed))
    assert [replace(n, pitch=0) for n in out] == [replace(n, pitch=0) for n in motif]
    degrees = [degree_of(n.pitch, ladder) for n in out]
    own = [degree_of(n.pitch, ladder) for n in motif]
    start = degree_of(motif[0].pitch, ladder)
    assert all(n.pitch in ladder and abs(d - start) <= 4 for n, d in zip(out, degrees,
                                                                         strict=True))
    if len(ladder) > 20:  # far from the ends: no clamping, so no interval repeats the motif's
        assert all(b - a != d - c for a, b, c, d in zip(degrees, degrees[1:], own, own[1:],
                                                        strict=False))


# -- motif: finding it, its period, its grid --------------------------------------------------

def test_find_motif_takes_the_stretch_with_leaps_and_turns_over_a_scale_run() -> None:
    run_then_leaps = line([60, 62, 64, 65, 67, 69, 64, 72, 67, 74, 65])
    assert find_motif(relative(run_then_leaps), C_LADDER) == (4, 5)  # G A E C' G: turns
    assert find_motif(relative(line([60, 62, 64, 65, 67, 69])), C_LADDER) == (0, 5)  # earliest
    assert find_motif(relative(line([60, 64])), C_LADDER) == (0, 2)


def test_find_motif_breaks_a_tie_by_what_the_call_repeats() -> None:
    # Windows from 0, 1, 2 and 3 each hold three distinct leaping figures; the one from 3
    # (A F C E D) also holds (+2 -1), which the call plays twice (C E D, C E D).
    call = line([60, 67, 64, 69, 65, 60, 64, 62, 60, 64, 62])
    assert find_motif(relative(call), C_LADDER) == (3, 5)


def test_motif_period_runs_to_the_next_onset_or_the_last_end() -> None:
    motif_line = relative(line([60, 62, 64, 65], step_ms=300, dur_ms=100))
    assert motif_period(motif_line, 0, 3) == 900 * MS
    assert motif_period(motif_line, 1, 3) == 700 * MS  # 300 to 900, then 100 long


def test_quantised_draws_onsets_to_sixteenths_or_triplets() -> None:
    beat = 400 * MS
    played = notes((5000, 60, 70, 90), (5110, 62, 71, 90), (5190, 64, 72, 90), (5390, 65, 73, 90))
    assert [n.start_ns // MS for n in quantised(played, beat)] == [0, 100, 200, 400]
    triplets = notes((0, 60, 70, 90), (140, 62, 71, 90), (260, 64, 72, 90), (400, 65, 73, 90))
    assert [round(n.start_ns / MS) for n in quantised(triplets, beat)] == [0, 133, 267, 400]
    crowded = notes((0, 60, 70, 10), (95, 62, 71, 10), (105, 64, 72, 10))
    assert [n.start_ns // MS for n in quantised(crowded, beat)] == [0, 100, 200]
    assert quantised([], beat) == []


# -- motif: originality -----------------------------------------------------------------------

def test_kept_original_breaks_a_long_transposed_copy_of_the_call() -> None:
    call = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72]
    copy = notes(*((i * 100, p + 7, 80, 90) for i, p in enumerate(call)))  # a fifth up
    assert longest_shared_run([n.pitch for n in copy], join_lines([np.array(call)])) == 12
    out = kept_original(copy, call, C_LADDER, bound=8)
    assert longest_shared_run([n.pitch for n in out], join_lines([np.array(call)])) <= 8
    assert [n.pitch for n in out][:8] == [p + 7 for p in call[:8]]  # up to the bound, kept
    assert sum(a.pitch != b.pitch for a, b in zip(out, copy, strict=True)) == 1
    assert [replace(n, pitch=0) for n in out] == [replace(n, pitch=0) for n in copy]


# -- motif: develop ---------------------------------------------------------------------------

TUNE = line([67, 64, 62, 60, 64, 67, 72, 71, 69, 67, 64, 62, 60, 62, 64, 60], step_ms=250)


@pytest.mark.parametrize("plan", sorted(PLAN_WEIGHTS))
def test_develop_plays_each_plan_as_two_or_three_statements(plan: str) -> None:
    out, name = develop(TUNE, C_MAJOR, random.Random(3), 16, plan=plan)
    assert name == plan
    first, length = find_motif(relative(TUNE), C_LADDER)
    assert length == 5 and 10 <= len(out) <= 15 and len(out) % 5 == 0
    motif = [degree_of(n.pitch, C_LADDER) for n in relative(TUNE)[first:first + length]]
    shapes = [[degree_of(n.pitch, C_LADDER) for n in out[i:i + length]]
              for i in range(0, len(out), length)]

    def steps(degrees: list[int]) -> list[int]:
        return [b - a for a, b in itertools.pairwise(degrees)]

    opening, then = plan.split("+") if "+" in plan else ("sequence", "sequence")
    expect = {"sequence": steps(motif), "diminution": steps(motif),
              "inversion": [-s for s in steps(motif)]}
    if opening in expect:
        assert steps(shapes[0]) == expect[opening]
    else:  # imitation: a new contour
        assert all(a != b for a, b in zip(steps(shapes[0]), steps(motif), strict=True))
    last = {"inversion": [-s for s in steps(motif)]}.get(then, steps(motif))
    if then == "sequence" and opening in ("inversion", "imitation"):
        last = steps(shapes[0])
    assert steps(shapes[-1])[:-1] == last[:-1]  # the last note may move to a chord tone
    assert shapes[0][0] != motif[0] or opening in ("inversion", "imitation")  # no echo


def test_develop_sequence_joins_statements_the_way_the_call_moves() -> None:
    # The call climbs by a third and falls by a step (C E D F E G F A G): figures (+2 -1) and
    # (-1 +2). The motif is its first five notes. A step of 1 and a step of 4 between the
    # statements each make one figure of the call across the joint (-1 +2); the smaller wins:
    # the classic rising sequence.
    call = line([60, 64, 62, 65, 64, 67, 65, 69, 67])
    out, name = develop(call, C_MAJOR, random.Random(0), 15, plan="sequence")
    assert name == "sequence" and len(out) == 10
    assert degree_of(out[5].pitch, C_LADDER) - degree_of(out[0].pitch, C_LADDER) == 1
    assert figures([n.pitch for n in out[3:7]], C_LADDER) == {(-1, -1), (-1, 2)}


def test_develop_with_a_beat_starts_statements_on_beats_and_ends_on_a_chord_tone() -> None:
    beat = 500 * MS
    out, name = develop(TUNE, C_MAJOR, random.Random(5), 16, beat_ns=beat,
                        chord_tones={7, 11, 2}, plan="sequence")
    assert name == "sequence"
    starts = [out[i].start_ns for i in range(0, len(out), 5)]
    assert all(s % beat == 0 for s in starts)
    assert all(n.start_ns % (beat // 4) == 0 for n in out)  # the call's 250 ms: eighths
    assert out[0].pitch % 12 in {7, 11, 2}


def test_develop_with_little_room_states_the_motif_once() -> None:
    out, name = develop(TUNE, C_MAJOR, random.Random(1), 6)
    assert name == "sequence" and len(out) == 4
    assert develop([], C_MAJOR, random.Random(1), 6) == ([], "")
    assert develop(TUNE, C_MAJOR, random.Random(1), 0) == ([], "")
    out, name = develop(line([60]), C_MAJOR, random.Random(1), 1)
    assert name == "sequence" and len(out) == 1 and out[0].pitch != 60


@settings(max_examples=300, deadline=None)
@given(calls(), scales, seeds, st.integers(1, 40), st.sampled_from([None, *PLAN_WEIGHTS]),
       st.sampled_from([None, 300 * MS, 500 * MS]), st.sampled_from([None, 3, 4]),
       st.one_of(st.none(), st.frozensets(st.integers(0, 11), min_size=1, max_size=4)))
def test_develop_properties(call: list[PhraseNote], scale: frozenset[int], seed: int,
                            wanted: int, plan: str | None, beat: int | None, bar: int | None,
                            chord: frozenset[int] | None) -> None:
    out, name = develop(call, scale, random.Random(seed), wanted, beat, chord, bar, plan)
    assert name in PLAN_WEIGHTS
    assert 1 <= len(out) <= max(wanted * 2 // 3, 1)
    assert out[0].start_ns == 0
    starts = [n.start_ns for n in out]
    assert starts == sorted(starts)
    ladder = scale_pitches(scale)
    assert all(n.pitch in ladder and 0 <= n.pitch <= 127 and n.duration_ns > 0 for n in out)
    assert {n.velocity for n in out} <= {n.velocity for n in call}  # the call's dynamics
    pitches, heard = [n.pitch for n in out], [n.pitch for n in top_line(call)]
    assert longest_shared_run(pitches, join_lines([np.array(heard)])) <= COPY_BOUND
    assert longest_exact_run(pitches, heard) <= COPY_BOUND



def test_develop_on_a_known_progression_puts_more_notes_on_its_chord_tones() -> None:
    beat = 500 * MS
    progression = [{0, 4, 7}] * 4 + [{7, 11, 2}] * 4 + [{5, 9, 0}] * 8  # C, G, F by the bar

    def on_chords(out: list[PlannedNote]) -> int:
        return sum(n.pitch % 12 in progression[n.start_ns // beat] for n in out)

    with_chords = sum(on_chords(develop(TUNE, C_MAJOR, random.Random(seed), 16, beat,
                                        chords=progression)[0]) for seed in range(20))
    without = sum(on_chords(develop(TUNE, C_MAJOR, random.Random(seed), 16, beat)[0])
                  for seed in range(20))
    assert with_chords > without * 1.2


def test_structural_notes_land_on_the_expected_chords_and_passing_notes_stay() -> None:
    beat = 500 * MS
    c_major, g_major = frozenset({0, 4, 7}), frozenset({7, 11, 2})
    line = [PlannedNote(0, 62, 80, beat // 2),            # D on beat 0 (C major): C or E,
            # two semitones each: the lower
            PlannedNote(beat // 2, 65, 80, beat // 2),    # F between beats: a passing note
            PlannedNote(beat, 64, 80, beat // 2),         # E on beat 1 (C): a chord tone
            PlannedNote(2 * beat, 69, 80, beat // 2),     # A on beat 2 (G major): to G
            PlannedNote(5 * beat // 2, 72, 80, 2 * beat),  # C held two beats, from 2.5: to B
            PlannedNote(5 * beat, 61, 80, beat // 2)]     # beyond the chords given: stays
    landed = land_on_chords(line, [c_major, c_major, g_major, g_major], 0, beat)
    assert [n.pitch for n in landed] == [60, 65, 64, 67, 71, 61]
    assert [(n.start_ns, n.duration_ns, n.velocity) for n in landed] == \
        [(n.start_ns, n.duration_ns, n.velocity) for n in line]  # only pitches move
    # The nearest tone, up or down: D# over C major to E (1), A# to C (2; G is 3 away).
    assert [n.pitch for n in land_on_chords(
        [PlannedNote(0, 63, 80, beat), PlannedNote(beat, 70, 80, beat)],
        [frozenset({0, 4, 7})] * 2, 0, beat)] == [64, 72]
