"""The head of an answer that develops the call: its motif in two or three statements.

Pure: a call in, planned notes out (times relative to the answer's start, in ns). An answer
states the call's motif (agent.policy.motif.find_motif) two or three times, transformed the way
a player develops a figure, in a plan such as "sequence" (the motif moved up or down the key,
then again by the same step), "sequence+inversion", "sequence+augmentation" (the motif broadened
as a closing), "diminution+sequence" or "imitation+sequence" (the call's rhythm with a new
contour). The model continues after it.

What makes an answer "develop" the call (and what an independent judge measures) is that its
3-note figures, counted in scale steps, are the call's. So the statements are joined the way
the call moves (the figures across a joint are the call's where a step allows), plans are
drawn the more often the more of their figures are the call's, and none is a plain echo: no
statement repeats the motif at its own pitch, and no run of more than COPY_BOUND notes follows
the call's intervals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from agent.events import PhraseNote, PlannedNote
from agent.policy.develop import relative, scale_pitches, top_line
from agent.policy.motif import (
    augmentation_factor,
    can_diminish,
    degree_of,
    figures,
    find_motif,
    inversion,
    kept_original,
    motif_period,
    pitch_at,
    quantised,
    rhythmic_imitation,
    sequence,
    stretched,
)

SKELETON_SHARE = Fraction(2, 3)  # of the answer's notes; the model carries the last third
MOTIF_SHORTEST = 3  # notes: a statement of fewer is no figure (one statement then, if any)
JOINT_WEIGHT = 2  # a call's figure across a joint counts as this many notes on chord tones

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


def develop(call: Sequence[PhraseNote], scale: Collection[int] | None, rng: random.Random,
            notes_wanted: int, beat_ns: int | None = None,
            chord_tones: Collection[int] | None = None, bar_beats: int | None = None,
            plan: str | None = None, chords: Sequence[Collection[int]] | None = None,
            ) -> tuple[list[PlannedNote], str]:
    """The head of an answer that develops `call`: its motif stated two or three times,
    transformed, in at most SKELETON_SHARE of `notes_wanted` notes (the model continues), from
    0 ns. Returns the notes and the plan's name (e.g. "sequence+inversion"; "" for no call).

    With `beat_ns`, the motif's rhythm is put on the grid and each statement starts on a whole
    beat. Harmony: `chord_tones` (pitch classes of the chord heard) or, with `beat_ns`,
    `chords` (the chord tones expected on each beat of the answer from its start, when a
    progression is known): among the steps that join statements the way the call moves, the
    one whose notes fall most on chord tones is taken, and the last note moves to the nearest
    chord tone unless that breaks a figure of the call. `bar_beats` of 3, 6, ... makes an
    augmentation x1.5 instead of x2. `plan` (a key of PLAN_WEIGHTS) is played when it can be;
    else one is drawn.
    """
    line = relative(top_line(call))
    ladder = scale_pitches(scale)
    room = max(int(notes_wanted * SKELETON_SHARE), 1)
    if not line or notes_wanted <= 0:
        return [], ""
    first, length = find_motif(line, ladder)
    one_statement = room < 2 * MOTIF_SHORTEST  # no room for two statements of a motif
    length = min(length, room if one_statement else room // 2)
    motif = [replace(n, start_ns=n.start_ns - line[first].start_ns)
             for n in line[first:first + length]]
    if beat_ns:
        motif = quantised(motif, beat_ns)
    call_figures = figures([n.pitch for n in line], ladder)
    harmony = _Harmony(chord_tones, chords if beat_ns else None, beat_ns)
    place = _Placing(ladder, call_figures, harmony, rng, degree_of(motif[0].pitch, ladder),
                     motif_period(line, first, length), beat_ns)
    if one_statement:
        statements = [place.placed(motif, None, echo=True)]
        return _finish(statements, call, place), "sequence"
    count = 3 if room >= 3 * len(motif) else 2
    plans = {name: _statements(name, motif, place, count, bar_beats) for name in PLAN_WEIGHTS
             if name != "diminution+sequence" or can_diminish(motif, beat_ns)}
    name = plan if plan in plans else rng.choices(list(plans), weights=[
        PLAN_WEIGHTS[name] * _heard_as_the_call(statements, call_figures, ladder) ** 2
        for name, statements in plans.items()])[0]
    return _finish(plans[name], call, place), name


def _heard_as_the_call(statements: list[list[PlannedNote]], call_figures: set[tuple[int, int]],
                       ladder: Sequence[int]) -> float:
    """The share of a plan's figures that are the call's, and a little more: a plan is chosen
    the more often the more it sounds like the call developed (an inversion of a call that
    never moves against its own motif is heard as new material), and none is ruled out."""
    mine = figures([n.pitch for s in statements for n in s], ladder)
    return len(mine & call_figures) / len(mine) + 0.05 if mine else 0.05


@dataclass(frozen=True)
class _Harmony:
    """The chord tones at a time of the answer: the beat's from `chords` while they last,
    else the chord heard."""

    heard: Collection[int] | None
    by_beat: Sequence[Collection[int]] | None
    beat_ns: int | None

    def at(self, t_ns: int) -> Collection[int] | None:
        if self.by_beat and self.beat_ns and t_ns // self.beat_ns < len(self.by_beat):
            return self.by_beat[t_ns // self.beat_ns]
        return self.heard

    def fit(self, notes: Sequence[PlannedNote]) -> int:
        """How many notes are chord tones: all of them with a progression, else the first."""
        judged = notes if self.by_beat else notes[:1]
        return sum(n.pitch % 12 in (self.at(n.start_ns) or ()) for n in judged)


@dataclass(frozen=True)
class _Placing:
    """Where and when a statement goes. When: after the last, a motif's period later (as
    stretched as the last statement is), on a whole beat when the beat is known. Where: the
    step that best makes the joint between two statements move the way the call moves (its
    figures across the joint are the call's) and puts its notes on chord tones, then a small
    step, then chance; never the motif at its own pitch (an echo)."""

    ladder: Sequence[int]
    call_figures: set[tuple[int, int]]
    harmony: _Harmony
    rng: random.Random
    motif_degree: int  # of the motif's first note in the call
    period_ns: int  # of the motif in the call: from its first note to the next one's
    beat_ns: int | None

    def placed(self, shape: list[PlannedNote], after: list[PlannedNote] | None,
               echo: bool = False, steps: Sequence[int] = (-4, -3, -2, -1, 1, 2, 3, 4),
               after_pace: float = 1.0) -> list[PlannedNote]:
        """`shape` moved by the best of `steps`, after `after` (played at `after_pace` times
        the motif's pace: 0.5 diminished); `echo`: the shape is the motif's own figure, so it
        may not land where the motif was."""
        ladder = self.ladder
        at = 0 if after is None else self.next_start(after[0].start_ns, after_pace)
        if after and at <= after[-1].start_ns:  # a stretched statement outlasts the period
            at = after[-1].start_ns + 1
            if self.beat_ns:
                at = math.ceil(at / self.beat_ns) * self.beat_ns
        timed = [replace(n, start_ns=n.start_ns - shape[0].start_ns + at) for n in shape]
        start = degree_of(shape[0].pitch, ladder)

        def allowed(s: int) -> bool:
            there = start + s
            return abs(there - self.motif_degree) <= 7 and not (echo and there == self.motif_degree)

        def score(s: int) -> tuple[int, bool, float]:
            moved = sequence(timed, s, ladder)
            # A figure of the call across the joint weighs as two notes on chord tones: with a
            # progression known, the statements then sit on the harmony without losing the
            # call's shape (bench/develop_lift.py measured the balance on the valid splits).
            heard = JOINT_WEIGHT * self.joint_hits(after, moved) + self.harmony.fit(moved)
            return heard, abs(s) <= 2, self.rng.random()

        return sequence(timed, max([s for s in steps if s and allowed(s)] or [1], key=score),
                        ladder)

    def next_start(self, last_start_ns: int, pace: float) -> int:
        span = max(round(self.period_ns * pace), 1)
        if self.beat_ns:
            span = math.ceil(span / self.beat_ns) * self.beat_ns
        return last_start_ns + span

    def joint_hits(self, after: list[PlannedNote] | None, moved: list[PlannedNote]) -> int:
        """How many of the figures across the joint (after's end, moved's start) the call has."""
        if not after:
            return 0
        joint = [n.pitch for n in after[-2:]] + [n.pitch for n in moved[:2]]
        return len(figures(joint, self.ladder) & self.call_figures)


def _statements(name: str, motif: list[PlannedNote], place: _Placing, count: int,
                bar_beats: int | None) -> list[list[PlannedNote]]:
    """The statements of plan `name`, each a transformed motif, placed one after another."""
    ladder = place.ladder
    opening, then = name.split("+") if "+" in name else ("sequence", "sequence")
    pace = 0.5 if opening == "diminution" else 1.0
    if opening == "inversion":
        one = place.placed(inversion(motif, ladder), None)
    elif opening == "diminution":
        one = place.placed(stretched(motif, 0.5), None, echo=True)
    elif opening == "imitation":
        one = rhythmic_imitation(motif, ladder, _chord_tone_near(
            motif[0].pitch, ladder, place.harmony.at(0), place.rng), place.rng,
            place.call_figures)
    else:
        one = place.placed(motif, None, echo=True)
    if then == "inversion":
        return [one, place.placed(inversion(motif, ladder), one)]
    if then == "augmentation":  # the motif broadened, as a closing
        factor = augmentation_factor(bar_beats)
        return [one, place.placed(stretched(motif, factor), one, echo=True)]
    # A strict sequence: each statement the last moved by the same step.
    echo = opening in ("sequence", "diminution")
    out = [one, place.placed(one, one, echo=echo, after_pace=pace)]
    step = degree_of(out[1][0].pitch, ladder) - degree_of(one[0].pitch, ladder)
    while len(out) < count:
        out.append(place.placed(out[-1], out[-1], echo=echo, steps=(step,), after_pace=pace))
    if opening == "diminution":  # quick statements, then the motif at its own pace
        out[-1] = place.placed(motif, out[-2], echo=True, after_pace=pace)
    return out


def _chord_tone_near(pitch: int, ladder: Sequence[int], chord_tones: Collection[int] | None,
                     rng: random.Random) -> int:
    """A chord tone within three scale steps of `pitch` (not `pitch` itself when another is
    there), or a scale pitch a step or two away when no chord is known."""
    here = degree_of(pitch, ladder)
    near = [pitch_at(ladder, here + s) for s in (-3, -2, -1, 1, 2, 3)]
    if chord_tones:
        fitting = [p for p in near if p % 12 in chord_tones]
        if fitting:
            return rng.choice(fitting)
    return rng.choice([pitch_at(ladder, here + s) for s in (-2, -1, 1, 2)])


def _finish(statements: list[list[PlannedNote]], call: Sequence[PhraseNote],
            place: _Placing) -> list[PlannedNote]:
    """The statements as one line: the last note moved to the nearest chord tone unless that
    breaks a figure of the call, every note ended by the next one's start, the copy bound
    kept."""
    out = [n for statement in statements for n in statement]
    ladder, chord = place.ladder, place.harmony.at(out[-1].start_ns)
    if chord and out[-1].pitch % 12 not in chord:
        here = degree_of(out[-1].pitch, ladder)
        ending = [n.pitch for n in out[-3:]]
        for step in (-1, 1, -2, 2):
            pitch = pitch_at(ladder, here + step)
            if pitch % 12 in chord:
                kept = figures(ending, ladder) <= place.call_figures
                if not kept or figures([*ending[:-1], pitch], ladder) <= place.call_figures:
                    out[-1] = replace(out[-1], pitch=pitch)
                break
    for i in range(len(out) - 1):  # a note ends by the next one's start: a line, not a chord
        gap = out[i + 1].start_ns - out[i].start_ns
        if out[i].duration_ns > gap:
            out[i] = replace(out[i], duration_ns=max(gap, 1))
    return kept_original(out, [n.pitch for n in top_line(call)], ladder)
