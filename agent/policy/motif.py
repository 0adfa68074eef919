"""A call's motif and its development: the head of an answer that works on what was played.

Pure: a call in, planned notes out (times relative to the answer's start, in ns). The motif is
the call's characteristic cell (its most repeated figure, or its head), and an answer states it
two or three times, transformed the way a player develops a figure: sequenced up or down the key
(diatonically, so the intervals adapt to the scale), inverted, augmented or diminished, or its
rhythm taken with new pitches. Every statement keeps the motif's velocities, so its dynamics.

Retrograde is left out on purpose: a figure played backwards is rarely heard as the same figure,
so it would read as new material, which the model already brings.

What makes an answer "develop" the call (and what an independent judge measures) is that its
3-note figures, counted in scale steps, are the call's: a sequence and an augmentation keep them
all, an inversion mirrors them, a rhythmic imitation keeps only the rhythm. The plans are
weighted accordingly, and none is a plain echo: no statement repeats the motif at its own pitch,
and no run of more than COPY_BOUND notes follows the call's intervals.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import pairwise

from agent.events import PhraseNote, PlannedNote
from agent.policy.develop import relative, scale_pitches, top_line

MOTIF_LONGEST = 5  # notes: a longer repeated stretch is a phrase, not a motif
COPY_BOUND = 8  # notes: no longer run of the answer moves by the call's intervals
SKELETON_SHARE = Fraction(2, 3)  # of the answer's notes; the model carries the last third
MIN_IOI_NS = 90_000_000  # a diminished motif never plays notes closer than this (no beat heard)
DIMINISH_MIN_BEATS = 0.25  # ... nor closer than a sixteenth when the beat is known

# Plans: what follows the first statement. Weights favour those that keep the call's figures
# (a listener hears a sequence as the call's motif; an imitation only as its rhythm).
PLAN_WEIGHTS: dict[str, float] = {
    "sequence": 3.0,
    "sequence+augmentation": 2.0,
    "sequence+inversion": 2.0,
    "inversion+sequence": 1.0,
    "diminution+sequence": 1.0,
    "imitation+sequence": 1.0,
}


def degree_of(pitch: int, ladder: Sequence[int]) -> int:
    """Index in `ladder` (sorted scale pitches) of the scale pitch nearest `pitch`, the lower on
    a tie: the same snapping as develop.diatonic_shift."""
    i = bisect.bisect_left(ladder, pitch)
    if i == 0:
        return 0
    if i == len(ladder):
        return len(ladder) - 1
    return i if ladder[i] - pitch < pitch - ladder[i - 1] else i - 1


def _at(ladder: Sequence[int], degree: int) -> int:
    return ladder[min(max(degree, 0), len(ladder) - 1)]


# -- transformations (each of a motif as planned notes from 0) --------------------------------

def sequence(motif: Sequence[PlannedNote], steps: int, ladder: Sequence[int]) -> list[PlannedNote]:
    """The motif moved `steps` scale steps (not 0: that would be an echo)."""
    if steps == 0:
        raise ValueError("a sequence moves the motif: steps must not be 0")
    return [replace(n, pitch=_at(ladder, degree_of(n.pitch, ladder) + steps)) for n in motif]


def inversion(motif: Sequence[PlannedNote], ladder: Sequence[int],
              steps: int = 0) -> list[PlannedNote]:
    """The motif's scale-step intervals mirrored around its first note, then moved `steps`."""
    if not motif:
        return []
    axis = degree_of(motif[0].pitch, ladder)
    return [replace(n, pitch=_at(ladder, 2 * axis - degree_of(n.pitch, ladder) + steps))
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
        out.append(replace(note, pitch=_at(ladder, here)))
    return out


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
    repeated = {f for f in figures if figures.count(f) >= 2} - GENERIC_FIGURES

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
                moved = _at(ladder, degree_of(pitch, ladder) + step)
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


# -- the answer's skeleton ---------------------------------------------------------------------

def develop(call: Sequence[PhraseNote], scale: Collection[int] | None, rng: random.Random,
            notes_wanted: int, beat_ns: int | None = None,
            chord_tones: Collection[int] | None = None,
            bar_beats: int | None = None, plan: str | None = None,
            ) -> tuple[list[PlannedNote], str]:
    """The head of an answer that develops `call`: its motif stated two or three times,
    transformed, in at most SKELETON_SHARE of `notes_wanted` notes (the model continues), from
    0 ns. Returns the notes and the plan's name (e.g. "sequence+inversion"; "" for no call).

    With `beat_ns`, the motif's rhythm is put on the grid and each statement starts on a whole
    beat; with `chord_tones` (pitch classes of the chord heard), statements start on a chord
    tone where a choice of step allows it and the last note is moved to the nearest chord tone.
    `bar_beats` of 3, 6, ... makes an augmentation x1.5 instead of x2. `plan` (a key of
    PLAN_WEIGHTS) is played when it can be; else one is drawn.
    """
    line = relative(top_line(call))
    ladder = scale_pitches(scale)
    room = max(int(notes_wanted * SKELETON_SHARE), 1)
    if not line or notes_wanted <= 0:
        return [], ""
    first, length = find_motif(line, ladder)
    # One statement when there is no room for two of three notes or more.
    length = min(length, room if room < 6 else room // 2)
    period = motif_period(line, first, length)
    motif = [replace(n, start_ns=n.start_ns - line[first].start_ns)
             for n in line[first:first + length]]
    if beat_ns:
        motif = quantised(motif, beat_ns)
    figures = _figures([n.pitch for n in line], ladder)
    place = _Placing(ladder, figures, chord_tones, rng, degree_of(motif[0].pitch, ladder))
    if room < 6:
        return _finish([place.placed(motif, None, echo=True)], [], call, ladder, beat_ns,
                       chord_tones, figures), "sequence"
    count = 3 if room >= 3 * len(motif) else 2
    plans = {name: _statements(name, motif, place, count, bar_beats) for name in PLAN_WEIGHTS
             if name != "diminution+sequence" or can_diminish(motif, beat_ns)}
    name = plan if plan in plans else rng.choices(list(plans), weights=[
        PLAN_WEIGHTS[name] * _heard_as_the_call(statements, figures, ladder) ** 2
        for name, statements in plans.items()])[0]
    spans = [_span(s, motif, period) for s in plans[name]]
    return _finish(plans[name], spans, call, ladder, beat_ns, chord_tones, figures), name


def _heard_as_the_call(statements: list[list[PlannedNote]], call_figures: set[tuple[int, int]],
                       ladder: Sequence[int]) -> float:
    """The share of a plan's figures that are the call's, and a little more: a plan is chosen
    the more often the more it sounds like the call developed (an inversion of a call that
    never moves against its own motif is heard as new material), and none is ruled out."""
    mine = _figures([n.pitch for s in statements for n in s], ladder)
    return len(mine & call_figures) / len(mine) + 0.05 if mine else 0.05


def _span(statement: Sequence[PlannedNote], motif: Sequence[PlannedNote], period: int) -> int:
    """How long a statement lasts: the motif's period, stretched as the statement is."""
    own = statement[-1].start_ns - statement[0].start_ns
    base = motif[-1].start_ns - motif[0].start_ns
    factor = own / base if base > 0 else 1.0
    return max(round(period * factor), own + 1)


def _figures(pitches: Sequence[int], ladder: Sequence[int]) -> set[tuple[int, int]]:
    """The 3-note figures of a line: pairs of consecutive intervals in scale steps."""
    degrees = [degree_of(p, ladder) for p in pitches]
    return {(b - a, c - b) for a, b, c in zip(degrees, degrees[1:], degrees[2:], strict=False)}


@dataclass(frozen=True)
class _Placing:
    """Where a statement goes: the step that makes the joint between two statements move the
    way the call moves (its figures across the joint are the call's), then a first note on a
    chord tone, then a small step, then chance; never the motif at its own pitch (an echo)."""

    ladder: Sequence[int]
    call_figures: set[tuple[int, int]]
    chord_tones: Collection[int] | None
    rng: random.Random
    motif_degree: int  # of the motif's first note in the call

    def placed(self, shape: list[PlannedNote], after: list[PlannedNote] | None,
               echo: bool = False, steps: Sequence[int] = (-4, -3, -2, -1, 1, 2, 3, 4),
               ) -> list[PlannedNote]:
        """`shape` moved by the best of `steps`; `echo`: the shape is the motif's own figure,
        so it may not land where the motif was."""
        ladder = self.ladder
        start = degree_of(shape[0].pitch, ladder)

        def allowed(s: int) -> bool:
            there = start + s
            return abs(there - self.motif_degree) <= 7 and not (echo and there == self.motif_degree)

        def score(s: int) -> tuple[int, bool, bool, float]:
            moved = sequence(shape, s, ladder)
            chord = bool(self.chord_tones) and moved[0].pitch % 12 in (self.chord_tones or ())
            return self.joint_hits(after, moved), chord, abs(s) <= 2, self.rng.random()

        return sequence(shape, max([s for s in steps if allowed(s)] or [1], key=score), ladder)

    def joint_hits(self, after: list[PlannedNote] | None, moved: list[PlannedNote]) -> int:
        """How many of the figures across the joint (after's end, moved's start) the call has."""
        if not after:
            return 0
        joint = [n.pitch for n in after[-2:]] + [n.pitch for n in moved[:2]]
        return len(_figures(joint, self.ladder) & self.call_figures)


def _statements(name: str, motif: list[PlannedNote], place: _Placing, count: int,
                bar_beats: int | None) -> list[list[PlannedNote]]:
    """The statements of plan `name`, each a transformed motif from 0."""
    ladder = place.ladder
    opening, then = name.split("+") if "+" in name else ("sequence", "sequence")
    if opening == "inversion":
        one = place.placed(inversion(motif, ladder), None)
    elif opening == "diminution":
        one = place.placed(stretched(motif, 0.5), None, echo=True)
    elif opening == "imitation":
        one = rhythmic_imitation(motif, ladder, _chord_tone_near(
            motif[0].pitch, ladder, place.chord_tones, place.rng), place.rng, place.call_figures)
    else:
        one = place.placed(motif, None, echo=True)
    out = [one]
    if then == "inversion":
        return [one, place.placed(inversion(motif, ladder), one)]
    if then == "augmentation":  # the motif broadened, as a closing
        return [one, place.placed(stretched(motif, augmentation_factor(bar_beats)), one,
                                  echo=True)]
    # A strict sequence: each statement the last moved by the same step.
    echo = opening in ("sequence", "diminution")
    second = place.placed(one, one, echo=echo)
    step = degree_of(second[0].pitch, ladder) - degree_of(one[0].pitch, ladder)
    out.append(second)
    while len(out) < count:
        out.append(place.placed(out[-1], out[-1], echo=echo, steps=(step,)))
    if opening == "diminution":  # quick statements, then the motif at its own pace
        out[-1] = place.placed(motif, out[-2], echo=True)
    return out


def _chord_tone_near(pitch: int, ladder: Sequence[int], chord_tones: Collection[int] | None,
                     rng: random.Random) -> int:
    """A chord tone within three scale steps of `pitch` (not `pitch` itself when another is
    there), or a scale pitch a step or two away when no chord is known."""
    here = degree_of(pitch, ladder)
    near = [_at(ladder, here + s) for s in (-3, -2, -1, 1, 2, 3)]
    if chord_tones:
        fitting = [p for p in near if p % 12 in chord_tones]
        if fitting:
            return rng.choice(fitting)
    return rng.choice([_at(ladder, here + s) for s in (-2, -1, 1, 2)])


def _finish(statements: list[list[PlannedNote]], spans: list[int], call: Sequence[PhraseNote],
            ladder: Sequence[int], beat_ns: int | None,
            chord_tones: Collection[int] | None,
            call_figures: set[tuple[int, int]]) -> list[PlannedNote]:
    """Statements placed one after another (each on a whole beat when the beat is known), the
    last note moved to the nearest chord tone unless that breaks a figure of the call, and the
    copy bound kept."""
    out: list[PlannedNote] = []
    at = 0
    for i, statement in enumerate(statements):
        out += [replace(n, start_ns=n.start_ns + at) for n in statement]
        span = spans[i] if i < len(spans) else 0
        if beat_ns:
            span = math.ceil(span / beat_ns) * beat_ns
        at += span
    if chord_tones and out and out[-1].pitch % 12 not in chord_tones:
        here = degree_of(out[-1].pitch, ladder)
        ending = [n.pitch for n in out[-3:]]
        for step in (-1, 1, -2, 2):
            pitch = _at(ladder, here + step)
            if pitch % 12 in chord_tones:
                kept = _figures(ending, ladder) <= call_figures
                if not kept or _figures([*ending[:-1], pitch], ladder) <= call_figures:
                    out[-1] = replace(out[-1], pitch=pitch)
                break
    for i in range(len(out) - 1):  # a note ends by the next one's start: a line, not a chord
        gap = out[i + 1].start_ns - out[i].start_ns
        if out[i].duration_ns > gap:
            out[i] = replace(out[i], duration_ns=max(gap, 1))
    return kept_original(out, [n.pitch for n in top_line(call)], ladder)
