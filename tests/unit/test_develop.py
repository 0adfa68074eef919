"""Developing and mirroring a call: exact notes for scripted random draws, and properties.

A `Scripted` random source returns the draws a test names, so each expectation is worked out by
hand from the module's rules (the order of draws is part of what is tested: one direction, then
per note a "vary?" draw, then for a varied long note a "split?" draw, then a neighbour direction).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import PhraseNote, PlannedNote
from agent.policy.develop import (
    MIN_SPLIT_NS,
    MOTIF_NOTES,
    VARY_EVERY,
    develop_motif,
    diatonic_shift,
    mirror,
    relative,
    scale_pitches,
    top_line,
)

MS = 1_000_000
C_MAJOR = frozenset({0, 2, 4, 5, 7, 9, 11})
C_LADDER = scale_pitches(C_MAJOR)


class Scripted(random.Random):
    """Returns the named draws in order; fails if a draw is not one the caller offered."""

    def __init__(self, choices: Sequence[int] = (), randoms: Sequence[float] = ()) -> None:
        super().__init__(0)
        self.choices = list(choices)
        self.randoms = list(randoms)

    def choice(self, seq: Sequence[Any]) -> Any:
        value = self.choices.pop(0)
        assert value in seq, f"scripted {value} is not among {seq}"
        return value

    def random(self) -> float:
        return self.randoms.pop(0)

    def used_up(self) -> bool:
        return not self.choices and not self.randoms


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
