"""Accompaniment: chords in the current harmony, under the soloist, on the beat. Pure.

A comp is planned one bar ahead and committed one beat at a time (see pipeline's plan-ahead), so
a chord change heard mid-bar reaches the next beat. The voicing moves to the nearest chord tones
of the previous one (smooth voice leading) and stays below the soloist's line.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import combinations

from agent.events import PlannedNote

COMP_VOICES = 3
GAP_BELOW_SOLOIST = 2  # semitones between the comp's top and the soloist's lowest note
COMP_SPAN = 16  # semitones the voicing may spread over
DEFAULT_TOP = 67  # the comp's top without a soloist to keep under (G4)
LEGATO = 0.9  # a comp note sounds this share of the time to the next attack


def attacks_in_beat(density: float) -> tuple[float, ...]:
    """Where in a beat the comp strikes (fractions of the beat), by density: a sparse comp plays
    every other beat (the caller asks only on even beats), then on the beat, then on the beat
    and the off-beat, then on every sixteenth."""
    if density < 1.5:
        return (0.0,)
    if density < 3.0:
        return (0.0, 0.5)
    return (0.0, 0.25, 0.5, 0.75)


def plays_on_beat(beat_in_bar: int, density: float) -> bool:
    return density >= 0.75 or beat_in_bar % 2 == 0


def comp_range(soloist_low: int | None, register: int) -> tuple[int, int]:
    """The comp's pitch range: below the soloist (or around DEFAULT_TOP), moved by register."""
    top = (soloist_low - GAP_BELOW_SOLOIST) if soloist_low is not None else DEFAULT_TOP
    top = min(max(top + register, 30), 120)
    return top - COMP_SPAN, top


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


def comp_beat(chord: Collection[int], low: int, high: int, previous: Sequence[int],
              beat_start_ns: int, period_ns: int, density: float, velocity: int
              ) -> tuple[list[PlannedNote], list[int]]:
    """The comp notes for one beat, and the voicing used (the next beat's `previous`)."""
    pitches = voicing(chord, low, high, previous)
    if not pitches:
        return [], list(previous)
    positions = attacks_in_beat(density)
    notes: list[PlannedNote] = []
    for i, frac in enumerate(positions):
        nxt = positions[i + 1] if i + 1 < len(positions) else 1.0
        start = beat_start_ns + round(frac * period_ns)
        duration = round((nxt - frac) * period_ns * LEGATO)
        accent = 0 if frac == 0.0 else -8  # off-beats a little softer
        notes.extend(PlannedNote(start, p, max(1, min(127, velocity + accent)), duration)
                     for p in pitches)
    return notes, pitches


def comp_bar(chord: Collection[int], low: int, high: int, previous: Sequence[int],
             first_beat_ns: int, period_ns: int, beat_index: int, beats_per_bar: int,
             density: float, velocity: int) -> tuple[list[PlannedNote], list[int]]:
    """The comp from the beat at first_beat_ns (number `beat_index` of the section) to the same
    beat of the next bar, and the last voicing used."""
    notes: list[PlannedNote] = []
    voicing_now = list(previous)
    for i in range(beats_per_bar + 1):
        if not plays_on_beat((beat_index + i) % beats_per_bar, density):
            continue
        beat_notes, voicing_now = comp_beat(chord, low, high, voicing_now,
                                            first_beat_ns + i * period_ns, period_ns, density,
                                            velocity)
        notes += beat_notes
    return notes, voicing_now
