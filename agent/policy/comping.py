"""Accompaniment: the expected chord, under the soloist, on the beat grid. Pure.

A comp is laid out a half bar at a time (the span a chord usually lasts: listen/progression.py)
as strokes of a pattern chosen by density, the way a guitarist or pianist comps a fiddle tune or
a song: a bass note on the beat and the chord on the off-beat ("boom-chuck"; in 3/4 the waltz's
"oom-pah-pah"), sparser or denser with the density control. The half bar's first stroke is struck
before anything of that half bar is heard, so it is short and light; the strokes after it come
once the players' notes have confirmed or corrected the chord, and sound longer. The voicing moves
to the nearest chord tones of the previous one (smooth voice leading), stays below the soloist's
line, and leaves out a chord tone that would rub (a minor second, tritone or major seventh) against
a note a player holds as it strikes.

Times here are beats from the half bar's start; the pipeline places them on the beat grid it
hears, so every stroke lands on a grid point however the tempo moves.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import combinations

COMP_VOICES = 3
GAP_BELOW_SOLOIST = 2  # semitones between the comp's top and the soloist's lowest note
COMP_SPAN = 16  # semitones the voicing may spread over
DEFAULT_TOP = 67  # the comp's top without a soloist to keep under (G4)
BASS_BELOW = 12  # the bass stroke sounds this far below the voicing's lowest note
BASS_FLOOR = 36  # and never below C2
ROUGH = frozenset({1, 6, 11})  # interval classes that rub: minor second, tritone, major seventh
FIRST_STROKE_ACCENT = -10  # the half bar's first stroke is lighter: it is struck on a guess
OFF_BEAT_ACCENT = -6


@dataclass(frozen=True)
class Stroke:
    """One attack of a comp pattern: when (beats from the half bar's start), how long it
    sounds (beats), and what: the bass note alone or the chord."""

    at: float
    length: float
    bass: bool


def pattern(beats: int, density: float, division: int = 2) -> tuple[Stroke, ...]:
    """The strokes of a half bar of `beats` beats (2 in 4/4, 3 in 3/4, 1 in 2/4 and 6/8), each
    beat of `division` eighths (3 in compound metres), by density:
    sparse (< 1.5): a short bass note on the half bar's first eighth, then the chord from the
    next beat (from the next eighth in a one-beat half bar), held to the half bar's end;
    medium (< 3): on each beat the bass, and the chord on its last eighth (boom-chuck; in 3/4
    the waltz: the bass, then the chord on the other two beats);
    dense: the chord on every eighth."""
    if beats < 1:
        return ()
    eighth = 1.0 / division
    end = beats - 0.1  # the last chord lets go just before the next half bar's first stroke
    if density < 1.5:
        chord_at = 1.0 if beats > 1 else eighth
        strokes = [Stroke(0.0, 0.9 * eighth, True), Stroke(chord_at, end - chord_at, False)]
    elif density < 3.0 and beats == 3 and division == 2:
        strokes = [Stroke(0.0, 0.9, True), Stroke(1.0, 0.8, False), Stroke(2.0, 0.8, False)]
    elif density < 3.0:
        strokes = []
        for b in range(beats):
            last = b + 1 - eighth
            strokes += [Stroke(float(b), 0.9 * (last - b), True),
                        Stroke(last, 0.9 * eighth, False)]
    else:
        strokes = [Stroke(i * eighth, 0.9 * eighth, False) for i in range(beats * division)]
    # Lengths in whole millionths of a beat, and none past the half bar's end.
    return tuple(Stroke(s.at, math.floor(min(s.length, end - s.at) * 1e6 + 1e-6) / 1e6, s.bass)
                 for s in strokes)


def after_the_beat(beats: int, density: float, division: int = 2) -> tuple[Stroke, ...]:
    """The strokes of a half bar where the players strike a new chord together on (nearly)
    every beat (listen/texture.py): the chord on the eighth after the beat, on what was just
    struck, let go before the next beat (where the players change it again). Sparse
    (density < 1.5): after the half bar's first beat only; otherwise after every beat."""
    if beats < 1:
        return ()
    eighth = 1.0 / division
    length = math.floor((1.0 - eighth - 0.1) * 1e6 + 1e-6) / 1e6
    return tuple(Stroke(b + eighth, length, False)
                 for b in range(1 if density < 1.5 else beats))


def comp_range(soloist_low: int | None, register: int) -> tuple[int, int]:
    """The comp's pitch range: below the soloist (or around DEFAULT_TOP), moved by register."""
    top = (soloist_low - GAP_BELOW_SOLOIST) if soloist_low is not None else DEFAULT_TOP
    top = min(max(top + register, 30), 120)
    return top - COMP_SPAN, top


def clear_of(chord: Collection[int], held: Collection[int]) -> frozenset[int]:
    """The chord's pitch classes that do not rub against any held pitch (all of them when every
    one would: a chord is better than silence)."""
    clear = frozenset(pc for pc in chord
                      if all((pc - h) % 12 not in ROUGH for h in held))
    return clear or frozenset(chord)


def voicing(chord: Collection[int], low: int, high: int, previous: Sequence[int] = (),
            voices: int = COMP_VOICES) -> list[int]:
    """Chord tones in [low, high], as many distinct pitch classes as the chord and `voices`
    allow, nearest (summed semitones) to the previous voicing, else the lowest such voicing."""
    candidates = [p for p in range(max(low, 0), min(high, 127) + 1) if p % 12 in chord]
    size = min(voices, len(set(chord)), len(candidates))
    if size == 0:
        return []
    best: tuple[float, list[int]] | None = None
    for combo in combinations(candidates, size):
        if len({p % 12 for p in combo}) < size or combo[-1] - combo[0] > 12:
            continue  # one chord tone each, within an octave: a close voicing
        cost = (sum(min(abs(p - q) for q in previous) for p in combo) if previous
                else float(combo[0]))
        if best is None or cost < best[0]:
            best = (cost, list(combo))
    return best[1] if best else sorted(candidates[:size])


def bass_note(root: int, voiced: Sequence[int]) -> int:
    """The chord's root an octave or so below the voicing (at least BASS_FLOOR)."""
    ceiling = (min(voiced) if voiced else DEFAULT_TOP) - BASS_BELOW
    pitch = ceiling - (ceiling - root) % 12
    while pitch < BASS_FLOOR:
        pitch += 12
    return min(pitch, 127)


def stroke_velocity(stroke: Stroke, first: bool, velocity: int) -> int:
    accent = FIRST_STROKE_ACCENT if first else OFF_BEAT_ACCENT if stroke.at % 1 else 0
    return max(1, min(127, velocity + accent))
