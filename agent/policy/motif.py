"""A call's motif and the transformations that develop it, in the key.

Pure: planned notes in (a motif from 0 ns), planned notes out. The motif is the call's
characteristic cell (find_motif). Transformations work the way a player develops a figure:
sequenced up or down the key (diatonically, so the intervals adapt to the scale), inverted,
augmented or diminished, or its rhythm taken with new pitches. Each keeps the motif's
velocities, so its dynamics. agent.policy.skeleton strings them into an answer's head.

Retrograde is left out on purpose: a figure played backwards is rarely heard as the same figure,
so it would read as new material, which the model already brings.

A "figure" is three consecutive notes as two intervals counted in scale steps: "the motif a
third up" has the motif's figures, which is how a listener (and an independent judge) hears an
answer as related to its call.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from itertools import pairwise

from agent.events import PlannedNote

MOTIF_LONGEST = 5  # notes: a longer stretch is a phrase, not a motif
COPY_BOUND = 8  # notes: no longer run of the answer moves by the call's intervals
MIN_IOI_NS = 90_000_000  # a diminished motif never plays notes closer than this (no beat heard)
DIMINISH_MIN_BEATS = 0.25  # ... nor closer than a sixteenth when the beat is known


def degree_of(pitch: int, ladder: Sequence[int]) -> int:
    """Index in `ladder` (sorted scale pitches) of the scale pitch nearest `pitch`, the lower on
    a tie: the same snapping as develop.diatonic_shift."""
    i = bisect.bisect_left(ladder, pitch)
    if i == 0:
        return 0
    if i == len(ladder):
        return len(ladder) - 1
    return i if ladder[i] - pitch < pitch - ladder[i - 1] else i - 1


def pitch_at(ladder: Sequence[int], degree: int) -> int:
    """The ladder's pitch at `degree`, clamped to the ladder."""
    return ladder[min(max(degree, 0), len(ladder) - 1)]


# -- transformations (each of a motif as planned notes from 0) --------------------------------

def sequence(motif: Sequence[PlannedNote], steps: int, ladder: Sequence[int]) -> list[PlannedNote]:
    """The motif moved `steps` scale steps (not 0: that would be an echo)."""
    if steps == 0:
        raise ValueError("a sequence moves the motif: steps must not be 0")
    return [replace(n, pitch=pitch_at(ladder, degree_of(n.pitch, ladder) + steps)) for n in motif]


def inversion(motif: Sequence[PlannedNote], ladder: Sequence[int],
              steps: int = 0) -> list[PlannedNote]:
    """The motif's scale-step intervals mirrored around its first note, then moved `steps`."""
    if not motif:
        return []
    axis = degree_of(motif[0].pitch, ladder)
    return [replace(n, pitch=pitch_at(ladder, 2 * axis - degree_of(n.pitch, ladder) + steps))
            for n in motif]


def stretched(motif: Sequence[PlannedNote], factor: float) -> list[PlannedNote]:
    """Onsets (from the first note) and durations times `factor`: augmentation above 1,
    diminution below."""
    if not motif:
        return []
    t0 = motif[0].start_ns
    return [replace(n, start_ns=round((n.start_ns - t0) * factor),
                    duration_ns=max(round(n.duration_ns * factor), 1)) for n in motif]


def augmentation_factor(bar_beats: int | None) -> float:
    """x2, or x1.5 in a triple metre (a figure of two beats then fills a bar of three)."""
    return 1.5 if bar_beats is not None and bar_beats % 3 == 0 else 2.0


def can_diminish(motif: Sequence[PlannedNote], beat_ns: int | None) -> bool:
    """Halving keeps every inter-onset time playable (a sixteenth, or MIN_IOI_NS)."""
    shortest = MIN_IOI_NS if beat_ns is None else round(beat_ns * DIMINISH_MIN_BEATS)
    gaps = [b.start_ns - a.start_ns for a, b in pairwise(motif)]
    return len(motif) >= 2 and min(gaps) // 2 >= shortest


def rhythmic_imitation(motif: Sequence[PlannedNote], ladder: Sequence[int], start_pitch: int,
                       rng: random.Random,
                       vocabulary: Collection[tuple[int, int]] = ()) -> list[PlannedNote]:
    """The motif's rhythm and dynamics with a new contour in the key from `start_pitch`.

    Each interval is one to three scale steps, never the motif's own interval at that place;
    where it can, it makes a figure of `vocabulary` (the call's figures: the new line speaks the
    call's language without retracing the motif); it turns back before wandering more than a
    fifth from the start.
    """
    degrees = [degree_of(n.pitch, ladder) for n in motif]
    here = start = degree_of(start_pitch, ladder)
    before: int | None = None  # the last interval
    out: list[PlannedNote] = []
    for i, note in enumerate(motif):
        if i > 0:
            own = degrees[i] - degrees[i - 1]
            steps = [s for s in (-3, -2, -1, 1, 2, 3) if s != own and abs(here + s - start) <= 4]
            spoken = [s for s in steps if any(f == (before, s) if before is not None
                                              else f[0] == s for f in vocabulary)]
            before = rng.choice(spoken or [s for s in steps if abs(s) <= 2] or [-own or 1])
            here += before
        out.append(replace(note, pitch=pitch_at(ladder, here)))
    return out


def figures(pitches: Sequence[int], ladder: Sequence[int]) -> set[tuple[int, int]]:
    """The 3-note figures of a line: pairs of consecutive intervals in scale steps."""
    degrees = [degree_of(p, ladder) for p in pitches]
    return {(b - a, c - b) for a, b, c in zip(degrees, degrees[1:], degrees[2:], strict=False)}


# -- the motif ---------------------------------------------------------------------------------

GENERIC_FIGURES = frozenset({(1, 1), (-1, -1), (0, 0)})  # scale runs, a repeated note


def find_motif(line: Sequence[PlannedNote], ladder: Sequence[int]) -> tuple[int, int]:
    """(first index, notes) of the call's motif: the stretch of MOTIF_LONGEST notes (or the
    whole call, if shorter) with the most distinct characteristic figures, then the most figures
    the call repeats, then the earliest.

    A figure is characteristic unless it is a scale run or a repeated note: every phrase has
    those, so a listener hears the leaps and turns as the call's own. A figure the call repeats
    is what a listener hears as its motif, but repeated figures are also the tune's commonplaces,
    so repetition only breaks ties.
    """
    notes = min(MOTIF_LONGEST, len(line))
    degrees = [degree_of(n.pitch, ladder) for n in line]
    figures = [(b - a, c - b) for a, b, c in zip(degrees, degrees[1:], degrees[2:],
                                                   strict=False)]
    repeated = {f for f, n in Counter(figures).items() if n >= 2} - GENERIC_FIGURES

    def character(first: int) -> tuple[int, int, int]:
        own = set(figures[first:first + notes - 2])
        return len(own - GENERIC_FIGURES), len(own & repeated), -first

    return max(range(len(line) - notes + 1), key=character), notes


def motif_period(line: Sequence[PlannedNote], first: int, notes: int) -> int:
    """How long the motif lasts in the call: to the next note's onset, or to its own end."""
    if first + notes < len(line):
        return line[first + notes].start_ns - line[first].start_ns
    last = line[first + notes - 1]
    return last.start_ns - line[first].start_ns + max(last.duration_ns, 1)


def quantised(motif: Sequence[PlannedNote], beat_ns: int) -> list[PlannedNote]:
    """Onsets from the first note drawn to the nearer-fitting grid of sixteenths or triplet
    eighths (the beat lock later places the phrase; this keeps its figures on the grid); two
    notes never share an onset."""
    if not motif:
        return []
    t0 = motif[0].start_ns

    def error(step: float) -> float:
        return sum(abs((n.start_ns - t0) / step - round((n.start_ns - t0) / step))
                   for n in motif)

    step = min((beat_ns / 4, beat_ns / 3), key=error)
    out: list[PlannedNote] = []
    for n in motif:
        slot = round((n.start_ns - t0) / step)
        if out:
            slot = max(slot, round(out[-1].start_ns / step) + 1)
        out.append(replace(n, start_ns=round(slot * step)))
    return out


# -- originality -------------------------------------------------------------------------------

def _copies(pitches: Sequence[int], call_intervals: Sequence[int], bound: int) -> bool:
    """Do the last `bound` intervals of `pitches` (bound + 1 notes) occur in the call's?"""
    if len(pitches) <= bound:
        return False
    tail = [b - a for a, b in pairwise(pitches[-bound - 1:])]
    return any(list(call_intervals[i:i + bound]) == tail
               for i in range(len(call_intervals) - bound + 1))


def kept_original(notes: Sequence[PlannedNote], call_pitches: Sequence[int],
                  ladder: Sequence[int], bound: int = COPY_BOUND) -> list[PlannedNote]:
    """The notes with any that would complete a run of more than `bound` notes moving by the
    call's intervals (transposed or not) moved one scale step, toward the middle of the line."""
    call_intervals = [b - a for a, b in pairwise(call_pitches)]
    middle = sorted(n.pitch for n in notes)[len(notes) // 2] if notes else 0
    pitches: list[int] = []
    out: list[PlannedNote] = []
    for note in notes:
        pitch = note.pitch
        if _copies([*pitches, pitch], call_intervals, bound):
            toward = 1 if pitch <= middle else -1
            for step in (toward, -toward, 2 * toward, -2 * toward, 3 * toward, -3 * toward):
                moved = pitch_at(ladder, degree_of(pitch, ladder) + step)
                if not _copies([*pitches, moved], call_intervals, bound):
                    pitch = moved
                    break
        pitches.append(pitch)
        out.append(replace(note, pitch=pitch))
    return out


def longest_exact_run(a: Sequence[int], b: Sequence[int]) -> int:
    """Longest run of the same pitches, in the same order, in both (no transposition)."""
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best
