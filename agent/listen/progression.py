"""The chord expected next: a band member's anticipation of the changes. Pure.

Harmony is judged in half bars (two beats of a 4/4 bar, the whole bar in 3/4 and 6/8): that is
how often most tunes and hymns change chord. A comp that plays the chord it has just heard is half
a bar late, so at each moment the comp strikes, the chord is *expected* from four things:

- what usually follows (the prior): how often each triad follows the last half bar's triad in this
  key and at this place in the bar, learned from the training splits of the corpora
  (bench/learn_progressions.py writes progressions.json beside this file; regenerate, do not edit);
- what is heard so far in this half bar: the players' notes since it began, held ones up to now,
  duration-weighted, the first note and the lowest note counting more (the beat and the bass);
- the tune's form as it goes round: the half-bar triads heard are kept, and when the last few
  agree with those 4, 8, 16 or 32 bars earlier, the triad of the matching half bar of the last
  pass is expected again (fiddle tunes, chorales and songs repeat their strains);
- a chord chart (`[[sections]] chords`), when the piece has one and the players keep to it.

The triad chosen is the one with the most expected overlap with the true one (the Bayes choice
for a listener who is scored on shared tones): between two close candidates it prefers the one
that shares tones with both. Times are integer ns; no clock, no I/O.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from agent.listen.harmony import ROOT_NAMES, SCALES

TABLE_FILE = Path(__file__).with_name("progressions.json")
QUALITY_INTERVALS = ((0, 4, 7), (0, 3, 7), (0, 3, 6))  # major, minor, diminished
QUALITY_SUFFIX = ("", "m", "dim")
# Triad index = quality * 12 + root; the same order as the learned table's rows and columns.
TRIADS: tuple[frozenset[int], ...] = tuple(
    frozenset((root + i) % 12 for i in intervals)
    for intervals in QUALITY_INTERVALS for root in range(12))
N_TRIADS = len(TRIADS)
_MEMBERS = np.array([[1.0 if pc in t else 0.0 for pc in range(12)] for t in TRIADS])  # [36, 12]
START = N_TRIADS  # the "previous triad" of a half bar after silence
PRIOR_WEIGHT = 0.5  # the learned prior's weight against what is heard (chosen on valid splits)
EVIDENCE_WEIGHT = 5.0  # log-odds a half bar's heard notes add to a triad holding all of them
FULL_EVIDENCE_BEATS = 1.0  # evidence counts fully once this many beats of sound are heard
FORM_WEIGHT = 2.5  # log-odds for the triad of the matching half bar of the last pass
FORM_LAGS_BARS = (4, 8, 16, 32)
FORM_MATCH = 0.75  # share of recent half bars that must match the pass before
FORM_WINDOW = 8  # recent half bars compared
FORM_MIN_PAIRS = 4
BEAT_WEIGHT = 2.0  # the first note of the half bar counts this much more
BASS_WEIGHT = 1.5  # and the lowest
ROOT_WEIGHT = 0.3  # log-odds for a triad whose root is the half bar's lowest note so far
CHART_FIT = 0.5  # share of the heard note-time a chart chord must hold for the chart to be kept
MEMORY_HALF_BARS = 512  # half-bar triads kept for the form (a long set at 4/4: ~17 min at 120)


def half_bars_per_bar(beats_per_bar: int) -> int:
    """Two half bars in a bar of an even number of beats (4/4, 2/4, 6/8 as two dotted beats),
    else one: a 3/4 bar is one harmonic span."""
    return 2 if beats_per_bar % 2 == 0 else 1


def triad_name(index: int) -> str:
    return ROOT_NAMES[index % 12] + QUALITY_SUFFIX[index // 12]


def relative_triad(index: int, tonic: int) -> int:
    """The triad moved so that the key's tonic is C (the learned table is key-relative)."""
    return (index // 12) * 12 + (index % 12 - tonic) % 12


def absolute_triad(relative: int, tonic: int) -> int:
    return (relative // 12) * 12 + (relative % 12 + tonic) % 12


def triad_of(weights: np.ndarray, bass: int | None = None,
             scale: frozenset[int] | None = None) -> int | None:
    """The triad whose tones hold the most of the weight (12 pitch-class weights); among equals
    the one whose root is the bass, then one within the key's `scale` (a bare fifth in A minor
    is A minor, not A major), then major before minor before diminished, then the lowest root.
    None when nothing sounds."""
    if not np.any(weights > 0):
        return None
    held = _MEMBERS @ weights
    top = float(held.max())
    tied = [i for i in range(N_TRIADS) if held[i] >= top - 1e-9]
    return min(tied, key=lambda i: (bass is None or i % 12 != bass % 12,
                                    scale is not None and not TRIADS[i] <= scale, i))


def weights_in(notes: list[tuple[int, int, int]], start_ns: int, end_ns: int) -> np.ndarray:
    """Pitch-class note-time (seconds) of (pitch, onset ns, end ns) notes within [start, end)."""
    w = np.zeros(12)
    for pitch, onset, end in notes:
        overlap = min(end, end_ns) - max(onset, start_ns)
        if overlap > 0:
            w[pitch % 12] += overlap / 1e9
    return w


def scale_of(tonic: int, mode: str) -> frozenset[int]:
    return frozenset((tonic + d) % 12 for d in SCALES[mode])


@dataclass(frozen=True)
class Transitions:
    """log P(next triad | mode, place in the bar, previous triad), key-relative.

    `logp[mode][place]` is a [37, 36] array: row = previous relative triad (36 = after silence),
    column = next relative triad. place 0 = the half bar that starts a bar, 1 = the other one.
    """

    logp: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str


@lru_cache(maxsize=1)
def load_transitions(path: Path = TABLE_FILE) -> Transitions:
    table = json.loads(path.read_text())
    logp = {}
    for mode in ("major", "minor"):
        places = []
        for place in ("downbeat", "mid-bar"):
            counts = np.full((N_TRIADS + 1, N_TRIADS), table["smoothing"], dtype=np.float64)
            for prev, row in table["counts"][mode][place].items():
                for nxt, n in row.items():
                    counts[int(prev), int(nxt)] += n
            places.append(np.log(counts / counts.sum(axis=1, keepdims=True)))
        logp[mode] = (places[0], places[1])
    return Transitions(logp, table["source"])


@dataclass(frozen=True)
class HalfBar:
    """Where a moment is in the bar: the half bar's number since listening began, its start and
    length (ns), whether it starts a bar, and the beat's length (ns)."""

    index: int
    start_ns: int
    length_ns: int
    starts_bar: bool
    beat_ns: int


@dataclass(frozen=True)
class Expectation:
    triad: int  # index into TRIADS
    pitch_classes: frozenset[int]
    name: str
    source: str  # "chart" | "form" | "heard" | "prior": what decided it
    # the chance (0-1) each of the triad's tones is in the chord the players will outline,
    # most likely first: a comp unsure of the third can leave it out
    tones: tuple[tuple[int, float], ...] = ()

    def likely_tones(self, least: float, keep: int = 2) -> frozenset[int]:
        """The triad's tones at least this likely, and never fewer than `keep`."""
        return frozenset(pc for i, (pc, chance) in enumerate(self.tones)
                         if chance >= least or i < keep) or self.pitch_classes


@dataclass
class Progression:
    """The players' half-bar chords as they go by, and the chord expected at a moment."""

    transitions: Transitions = field(default_factory=load_transitions)
    # (pitch, onset ns, end ns) of finished notes of the last bars, by end time
    _notes: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=256))
    # half-bar number -> triad heard there (None: silence); finalised as half bars end
    _heard: dict[int, int | None] = field(default_factory=dict)
    _open: HalfBar | None = None  # the half bar in progress
    _open_chart: int | None = None  # the chart's triad there, if any
    _half_bars_per_bar: int = 2
    _misfits: int = 0  # finished half bars in a row whose notes did not fit the chart
    _scale: frozenset[int] | None = None  # the key's, as last told
    chart_kept: bool = True  # whether the players keep to the chart (False: listen instead)

    def note(self, pitch: int, onset_ns: int, end_ns: int) -> None:
        """A player's note that has ended."""
        self._notes.append((pitch, onset_ns, end_ns))

    def expect(self, at: HalfBar, now_ns: int, key: tuple[int, str] | None,
               held: list[tuple[int, int]], half_bars_per_bar: int = 2,
               chart: int | None = None) -> Expectation | None:
        """The chord expected in half bar `at` (heard up to now_ns; `held`: (pitch, onset ns) of
        keys down now). `key`: (tonic pitch class, "major" | "minor"), None while unknown.
        `chart`: the chart's triad for this half bar, if any."""
        self._half_bars_per_bar = half_bars_per_bar
        self._scale = None if key is None else scale_of(*key)
        self._close_before(at, held, now_ns, chart)
        notes = self._sounding(held, now_ns)
        heard = self._evidence(notes, at.start_ns, min(now_ns, at.start_ns + at.length_ns))
        if chart is not None and self.chart_kept:
            return _expectation(chart, "chart", np.ones(12))
        if key is None:
            best = triad_of(heard)
            return None if best is None else _expectation(best, "heard", np.ones(12))
        tonic, mode = key
        prev = self._heard.get(at.index - 1)
        row = START if prev is None else relative_triad(prev, tonic)
        place = 0 if at.starts_bar else 1
        logp = self.transitions.logp[mode][place][row]
        scores = PRIOR_WEIGHT * np.array([logp[relative_triad(i, tonic)] for i in range(N_TRIADS)])
        source = "prior"
        total = float(heard.sum())
        bass = self._bass(notes, at.start_ns, now_ns)
        if bass is not None:  # F and A heard over an F in the bass: F major, not D minor
            scores[[i for i in range(N_TRIADS) if i % 12 == bass % 12]] += ROOT_WEIGHT
        if total > 0:
            full = at.beat_ns / 1e9 * FULL_EVIDENCE_BEATS
            scores += EVIDENCE_WEIGHT * min(total / full, 1.0) * (_MEMBERS @ heard) / total
            source = "heard"
        form = self.form_expects(at.index)
        if form is not None:
            scores[form] += FORM_WEIGHT
        p = np.exp(scores - scores.max())
        p /= p.sum()
        pc_chance = p @ _MEMBERS  # [12]: the chance each pitch class is in the true triad
        best = int(np.argmax(_MEMBERS @ pc_chance))
        if form is not None and best == form:
            source = "form"
        return _expectation(best, source, pc_chance)

    def form_expects(self, index: int) -> int | None:
        """The triad of the matching half bar of the last pass, when the recent half bars
        match the pass before at one of FORM_LAGS_BARS (the best-matching lag)."""
        lag = self._form_lag(index)
        return None if lag is None else self._heard.get(index - lag)

    def _form_lag(self, index: int) -> int | None:
        best: tuple[float, int] | None = None
        for bars in FORM_LAGS_BARS:
            lag = bars * self._half_bars_per_bar
            pairs = [(self._heard[h], self._heard[h - lag])
                     for h in range(index - FORM_WINDOW, index)
                     if self._heard.get(h) is not None and self._heard.get(h - lag) is not None]
            if len(pairs) < FORM_MIN_PAIRS:
                continue
            match = sum(a == b for a, b in pairs) / len(pairs)
            if match >= FORM_MATCH and (best is None or match > best[0]):
                best = (match, lag)
        return None if best is None else best[1]

    def foresee(self, start: HalfBar, count: int, key: tuple[int, str]) -> list[int]:
        """The triads expected in `count` half bars from `start` on, before any is heard (an
        answer's harmony, planned at the call's end): the matching half bars of the last pass
        where the form is known, else, one after the other, the likeliest to follow (the
        learned prior) in this key and place in the bar."""
        tonic, mode = key
        lag = self._form_lag(start.index)
        prev = self._heard.get(start.index - 1)
        out: list[int] = []
        for i in range(count):
            index = start.index + i
            known = self._heard.get(index - lag) if lag is not None else None
            if known is None:
                place = 0 if (start.starts_bar == (i % self._half_bars_per_bar == 0)) else 1
                row = START if prev is None else relative_triad(prev, tonic)
                known = absolute_triad(int(np.argmax(self.transitions.logp[mode][place][row])),
                                       tonic)
            out.append(known)
            prev = known
        return out

    def heard(self, index: int) -> int | None:
        """The triad heard in a finished half bar."""
        return self._heard.get(index)

    # -- bookkeeping ------------------------------------------------------------------------
    def _close_before(self, at: HalfBar, held: list[tuple[int, int]], now_ns: int,
                      chart: int | None) -> None:
        """Finalise the half bar in progress once a later one is asked about: the triad heard
        there, and whether the players kept to the chart (two misfits in a row: listen instead;
        one fit: follow the chart again)."""
        if self._open is not None and self._open.index < at.index:
            done = self._open
            notes = self._sounding(held, now_ns)
            w = weights_in(notes, done.start_ns, done.start_ns + done.length_ns)
            bass = self._bass(notes, done.start_ns, done.start_ns + done.length_ns)
            self._heard[done.index] = triad_of(w, bass, self._scale)
            if self._open_chart is not None and w.sum() > 0:
                fits = float(_MEMBERS[self._open_chart] @ w) / float(w.sum()) >= CHART_FIT
                self._misfits = 0 if fits else self._misfits + 1
                self.chart_kept = self._misfits < 2
            for old in [h for h in self._heard if h < done.index - MEMORY_HALF_BARS]:
                del self._heard[old]
        if self._open is None or self._open.index < at.index:
            self._open = at
            self._open_chart = chart

    @staticmethod
    def _bass(notes: list[tuple[int, int, int]], start_ns: int, end_ns: int) -> int | None:
        return min((p for p, onset, end in notes if onset < end_ns and end > start_ns),
                   default=None)

    def _sounding(self, held: list[tuple[int, int]], now_ns: int) -> list[tuple[int, int, int]]:
        return list(self._notes) + [(p, onset, now_ns) for p, onset in held]

    def _evidence(self, notes: list[tuple[int, int, int]], start_ns: int,
                  end_ns: int) -> np.ndarray:
        """This half bar's notes so far: note-time, the first and the lowest counting more."""
        inside = [n for n in notes if n[1] < end_ns and n[2] > start_ns]
        w = weights_in(inside, start_ns, end_ns)
        if inside:
            first = min(inside, key=lambda n: (n[1], n[0]))
            low = min(inside, key=lambda n: n[0])
            for note, gain in ((first, BEAT_WEIGHT - 1), (low, BASS_WEIGHT - 1)):
                w[note[0] % 12] += gain * float(weights_in([note], start_ns, end_ns).sum())
        return w


def _expectation(index: int, source: str, pc_chance: np.ndarray) -> Expectation:
    tones = sorted(((pc, round(float(pc_chance[pc]), 4)) for pc in TRIADS[index]),
                   key=lambda x: (-x[1], (x[0] - index) % 12))
    return Expectation(index, TRIADS[index], triad_name(index), source, tuple(tones))
