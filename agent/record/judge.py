"""An independent judge of the agent's musicianship: its notes against what the players played.

Never graded with the agent's own analysis: nothing here (nor in judge_answers, judge_grid,
judge_log) imports agent.listen, agent.policy, agent.model's analysis, agent.schedule or the
pipeline. It judges with hindsight (the whole recording) on a beat grid given from outside (the
true beats of a rehearsal, or judge_grid's offline estimate), and the same measures score trivial
baselines made here from the same grid, key and players, so every figure has a peer.

This module: the notes, the grid, the key (Krumhansl-Kessler, from the whole piece), the
players' triad in each half bar, the comp's figures, and the comp baselines (a static tonic triad
on every beat; random in-key notes on the 8th grid). Answers: agent.record.judge_answers.
Pure: the same notes give the same figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ON_GRID_S = 0.025  # an onset this close to a grid point is on it
SOUNDING_TOLERANCE_S = 0.010  # a note attacked this much after an onset counts as sounding at it
DISSONANT = (1, 6, 11)  # interval classes: minor second / ninth, tritone, major seventh
# Krumhansl-Kessler probe-tone profiles, from the tonic up.
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor
# Triad qualities, in the order a tie prefers them.
TRIADS = (("major", (0, 4, 7)), ("minor", (0, 3, 7)), ("diminished", (0, 3, 6)))
DRIFT_MIN_BEATS = 100  # the drift's slope needs onsets spread over this many beats
COMP_REGISTER = (48, 67)  # the random baseline's pitches
PART_COMP, PART_ANSWER = "comp", "answer"


@dataclass(frozen=True)
class Note:
    """A note heard or played: seconds from the recording's start; `who` is the player's name
    for a player's note, the part ("comp", "answer", ...) for the agent's."""

    onset: float
    end: float
    pitch: int
    who: str
    velocity: int = 80


@dataclass(frozen=True)
class Grid:
    """The beat grid, every point in seconds: `beats` the tempo's unit beat (quarter notes of a
    rehearsal), `felt` the beats a player counts (dotted quarters in compound metres), `strong`
    the downbeats and main pulses, `half_bars` the bounds of the half bars harmony is judged in."""

    beats: np.ndarray
    felt: np.ndarray
    strong: np.ndarray
    downbeats: np.ndarray
    half_bars: np.ndarray

    def eighths(self) -> np.ndarray:
        """The 8th-note grid: the beats and the midpoints between consecutive beats."""
        mids = (self.beats[1:] + self.beats[:-1]) / 2
        return np.sort(np.concatenate([self.beats, mids]))

    def beat_length_at(self, t: float) -> float:
        """Seconds per beat around `t`."""
        i = int(np.clip(np.searchsorted(self.beats, t), 1, len(self.beats) - 1))
        return float(self.beats[i] - self.beats[i - 1])

    def beat_index(self, t: np.ndarray) -> np.ndarray:
        """Fractional beat numbers of times (linear beyond the ends)."""
        return extrapolated(t, self.beats, np.arange(len(self.beats), dtype=np.float64))


def grid_of(beat_times: Sequence[float] | np.ndarray, bar_beats: float, first_bar: float,
            felt_beats: float = 1.0) -> Grid:
    """The grid from the unit beats' times: bars of `bar_beats` beats, one starting at beat
    number `first_bar` (fractional allowed: a 9/8 bar is 4.5 quarters), felt beats of
    `felt_beats` unit beats. Strong: the downbeat; in bars of four felt beats also the third; in
    compound bars of two or three felt beats (6/8, 9/8) every felt beat."""
    beats = np.asarray(beat_times, dtype=np.float64)
    if len(beats) < 2 or bar_beats <= 0 or felt_beats <= 0:
        raise ValueError("a grid needs two beats, bar_beats > 0 and felt_beats > 0")
    numbers = np.arange(len(beats), dtype=np.float64)
    felt_per_bar = max(1, round(bar_beats / felt_beats))
    if felt_beats > 1 and felt_per_bar in (2, 3):
        strong_in_bar = [i * felt_beats for i in range(felt_per_bar)]
    elif felt_per_bar == 4:
        strong_in_bar = [0.0, 2 * felt_beats]
    else:
        strong_in_bar = [0.0]
    first = first_bar - np.ceil(first_bar / bar_beats) * bar_beats  # the bar line at or before 0
    bars = np.arange(first, numbers[-1] + bar_beats, bar_beats)

    def at(positions: np.ndarray) -> np.ndarray:
        kept = positions[(positions >= 0) & (positions <= numbers[-1] + 1e-9)]
        return extrapolated(kept, numbers, beats)

    felt = np.arange(first, numbers[-1] + 1e-9, felt_beats)
    # Half bars reach a bar beyond both ends, so notes just outside the beats are judged too.
    halves = np.arange(first - bar_beats, numbers[-1] + 1.5 * bar_beats, bar_beats / 2)
    return Grid(beats=beats, felt=at(felt),
                strong=at(np.sort(np.concatenate([bars + s for s in strong_in_bar]))),
                downbeats=at(bars), half_bars=extrapolated(halves, numbers, beats))


def extrapolated(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """np.interp, but linear beyond the ends."""
    x = np.asarray(x, dtype=np.float64)
    out: np.ndarray = np.interp(x, xs, ys)
    lo, hi = x < xs[0], x > xs[-1]
    out[lo] = ys[0] + (x[lo] - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
    out[hi] = ys[-1] + (x[hi] - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return out


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0-11
    minor: bool

    @property
    def scale(self) -> tuple[int, ...]:
        """Semitones of the scale above the tonic."""
        return MINOR_SCALE if self.minor else MAJOR_SCALE

    def name(self) -> str:
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"


def estimate_key(notes: Sequence[Note]) -> Key:
    """The key whose Krumhansl-Kessler profile correlates best with the duration-weighted
    pitch-class histogram of all the notes (hindsight: the whole piece). C major when silent."""
    histogram = np.zeros(12)
    for n in notes:
        histogram[n.pitch % 12] += max(n.end - n.onset, 0.0)
    if not histogram.any():
        return Key(0, False)
    best = (-2.0, Key(0, False))
    for minor, profile in ((False, KK_MAJOR), (True, KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
            if r > best[0] + 1e-12:
                best = (r, Key(tonic, minor))
    return best[1]


def scale_step(pitch: int, key: Key) -> int:
    """The scale-step number of a pitch (7 per octave, from the tonic of octave 0); a pitch off
    the scale rounds to the nearest step, the lower on a tie."""
    octave, above = divmod(pitch - key.tonic, 12)
    degrees = (*key.scale, 12)
    step = min(range(8), key=lambda d: (abs(above - degrees[d]), d))
    return octave * 7 + step


def step_pitch(step: int, key: Key) -> int:
    """The pitch of a scale-step number (inverse of scale_step on the scale's own pitches)."""
    octave, degree = divmod(step, 7)
    return key.tonic + 12 * octave + key.scale[degree]


@dataclass(frozen=True)
class Window:
    """A half bar, and the triad the players' notes outline in it (None: nothing to judge)."""

    start: float
    end: float
    triad: frozenset[int] | None


def players_triads(reference: Sequence[Note], grid: Grid) -> list[Window]:
    """Each half bar's triad: the major, minor or diminished triad whose tones hold the most of
    the reference notes' time in it (clipped to the window). Ties: a root that is the window's
    lowest sounding note first, then major, minor, diminished, then the lower root."""
    if not reference:
        return []
    onset, end, pitch = _arrays(reference)
    out = []
    for start, stop in zip(grid.half_bars[:-1], grid.half_bars[1:], strict=True):
        held = np.clip(np.minimum(end, stop) - np.maximum(onset, start), 0.0, None)
        if not (held > 0).any():
            out.append(Window(float(start), float(stop), None))
            continue
        per_class = np.bincount(pitch % 12, weights=held, minlength=12)
        lowest = int(pitch[held > 0].min()) % 12
        best: tuple[float, int, int, int] | None = None
        chosen: frozenset[int] = frozenset()
        for quality, (name, shape) in enumerate(TRIADS):
            del name
            for root in range(12):
                tones = [(root + s) % 12 for s in shape]
                rank = (round(float(per_class[tones].sum()), 9), root == lowest, -quality, -root)
                if best is None or rank > best:
                    best, chosen = rank, frozenset(tones)
        out.append(Window(float(start), float(stop), chosen))
    return out


def _arrays(notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([n.onset for n in notes], dtype=np.float64),
            np.array([n.end for n in notes], dtype=np.float64),
            np.array([n.pitch for n in notes], dtype=np.int64))


def triad_share(notes: Sequence[Note], windows: Sequence[Window]) -> float | None:
    """Share of the notes' time (clipped to the half bars that have a players' triad) on the
    tones of that triad. None when no note time falls in a judged window."""
    if not notes:
        return None
    onset, end, pitch = _arrays(notes)
    on = total = 0.0
    for w in windows:
        if w.triad is None:
            continue
        held = np.clip(np.minimum(end, w.end) - np.maximum(onset, w.start), 0.0, None)
        total += float(held.sum())
        on += float(held[np.isin(pitch % 12, list(w.triad))].sum())
    return on / total if total > 0 else None


def dissonant_share(notes: Sequence[Note], against: Sequence[Note],
                    others_only: bool = False) -> float | None:
    """Share of the notes' onsets that form a minor second/ninth, tritone or major seventh with
    any note of `against` sounding then (onset - 10 ms <= t < end, so attacks together count).
    others_only: only against notes of another `who` (the players against each other)."""
    if not notes:
        return None
    onset, end, pitch = _arrays(against) if against else (np.zeros(0),) * 3
    who = np.array([n.who for n in against])
    clashes = 0
    for n in notes:
        sounding = (onset - SOUNDING_TOLERANCE_S <= n.onset) & (n.onset < end)
        if others_only:
            sounding &= who != n.who
        clashes += bool(np.isin((n.pitch - pitch[sounding]) % 12, DISSONANT).any())
    return clashes / len(notes)


@dataclass(frozen=True)
class GridFigures:
    on_grid: float  # share of onsets within 25 ms of an 8th-grid point
    early: float | None  # the same in the first 100 beats...
    late: float | None  # ...and in beats 200-300 (the last 100 when shorter)
    drift_ms_per_100_beats: float | None  # slope of the signed offset to the nearest 8th point
    # on_grid counting only the onsets where the players keep the 8th grid (players_keep_grid);
    # None when no players were given or they keep it nowhere near these onsets
    where_players_keep: float | None = None


def offsets_from_eighths(onsets: np.ndarray, grid: Grid) -> np.ndarray:
    """Signed seconds from each onset to the nearest point of the grid's 8th grid."""
    eighths = grid.eighths()
    i = np.clip(np.searchsorted(eighths, onsets), 1, len(eighths) - 1)
    nearest = np.where(onsets - eighths[i - 1] <= eighths[i] - onsets, eighths[i - 1], eighths[i])
    offset: np.ndarray = onsets - nearest
    return offset


def players_keep_grid(onsets: np.ndarray, players: Sequence[Note], grid: Grid) -> np.ndarray:
    """For each onset: do the players keep the written 8th grid around it, i.e. are at least
    half of their onsets within a beat either side on it? Some transcriptions shift a strain by
    a sixteenth (an ornament or tuplet mis-timed at the source) and the players play it so: a
    comp that follows them there is in time with the band, though off the written grid. A
    dotted rhythm or a sixteenth run keeps half its onsets on the grid, so it still counts;
    with no player onset within a beat, False."""
    played = np.array(sorted(n.onset for n in players))
    if played.size == 0:
        return np.zeros(onsets.size, dtype=bool)
    kept = np.abs(offsets_from_eighths(played, grid)) <= ON_GRID_S + 1e-9
    beat = grid.beat_index(played)
    at = grid.beat_index(onsets)
    lo, hi = np.searchsorted(beat, at - 1.0), np.searchsorted(beat, at + 1.0, side="right")
    counts = hi - lo
    on_counts = np.concatenate([[0], np.cumsum(kept)])
    keeping: np.ndarray = (counts > 0) & (2 * (on_counts[hi] - on_counts[lo]) >= counts)
    return keeping


def grid_figures(notes: Sequence[Note], grid: Grid,
                 players: Sequence[Note] = ()) -> GridFigures | None:
    """`players`: for where_players_keep (players_keep_grid)."""
    if not notes:
        return None
    onsets = np.array(sorted(n.onset for n in notes))
    offset = offsets_from_eighths(onsets, grid)
    on = np.abs(offset) <= ON_GRID_S + 1e-9
    keeping = players_keep_grid(onsets, players, grid)
    beat = grid.beat_index(onsets)
    last = float(beat.max())
    late_from = 200.0 if last >= 300 else max(last - 100.0, 0.0)
    early_mask, late_mask = beat < 100, (beat >= late_from) & (beat < late_from + 100)
    # A slope over a short stretch says nothing about drift (a few late chords make it huge).
    slope = (float(np.polyfit(beat, offset * 1000, 1)[0]) * 100
             if len(onsets) >= 3 and np.ptp(beat) >= DRIFT_MIN_BEATS else None)
    return GridFigures(float(on.mean()),
                       float(on[early_mask].mean()) if early_mask.any() else None,
                       float(on[late_mask].mean()) if late_mask.any() else None, slope,
                       float(on[keeping].mean()) if keeping.any() else None)


@dataclass(frozen=True)
class CompFigures:
    notes: int
    triad_share: float | None  # target >= 0.65, and above the static triad
    dissonant_onsets: float | None  # target <= 0.12 (<= 0.15 with several players)
    grid: GridFigures | None  # on_grid target >= 0.95, no drift


def comp_figures(comp: Sequence[Note], players: Sequence[Note], windows: Sequence[Window],
                 grid: Grid) -> CompFigures:
    return CompFigures(len(comp), triad_share(comp, windows), dissonant_share(comp, players),
                       grid_figures(comp, grid, players))


def played_span(players: Sequence[Note]) -> tuple[float, float]:
    """From the first player onset to the last player note's end."""
    return min(n.onset for n in players), max(n.end for n in players)


def static_triad(grid: Grid, key: Key, span: tuple[float, float]) -> list[Note]:
    """Baseline (a): the tonic triad in root position (root in 48-59) on every felt beat of the
    span, held to the next."""
    root = 48 + key.tonic
    chord = (root, root + (3 if key.minor else 4), root + 7)
    beats = grid.felt[(grid.felt >= span[0] - ON_GRID_S) & (grid.felt < span[1])]
    return [Note(float(a), float(b), p, "static-triad")
            for a, b in itertools.pairwise(beats) for p in chord]


def register_scale(key: Key) -> list[int]:
    """The key's scale notes in the comp register: what the random baselines choose from."""
    return [p for p in range(COMP_REGISTER[0], COMP_REGISTER[1] + 1)
            if (p - key.tonic) % 12 in key.scale]


def random_in_key(grid: Grid, key: Key, span: tuple[float, float], seed: int) -> list[Note]:
    """Baseline (b): one random pitch of the key's scale in the comp register on every 8th-grid
    point of the span, an 8th long (seeded: the same seed, the same notes)."""
    pitches = register_scale(key)
    rng = np.random.default_rng(seed)
    points = grid.eighths()
    points = points[(points >= span[0] - ON_GRID_S) & (points < span[1])]
    chosen = rng.choice(pitches, size=max(len(points) - 1, 0))
    return [Note(float(a), float(b), int(p), "random-in-key")
            for a, b, p in zip(points[:-1], points[1:], chosen, strict=True)]
