"""Is a style heard? The agent's notes against a corpus's, as three histograms and one distance.

A piece's notes are taken as melodic lines (a corpus work's voices; the agent's part, one line),
in quarter-note beats, each with the tonic of its piece's key. Three histograms of note counts:

- pitch class relative to the piece's key: (pitch - tonic) mod 12, 12 bins. The tonic is the
  Krumhansl-Kessler key (agent.record.judge.estimate_key) of the whole piece's notes with
  hindsight: a corpus work's own notes; for the agent, the notes of the piece it played over
  (the players'), so its notes are read in the key of the music around them. Major and minor
  keys share the bins (degree 0 is the tonic of either);
- melodic interval, per line: the semitones from each onset's top note to the next onset's top
  note (onsets within CHORD_BEATS are one moment), -12..+12 plus one bin each for larger leaps
  down and up, 27 bins; no interval across a rest longer than LINE_BREAK_BEATS (a voice coming
  back after a rest is not a melodic step);
- note length in beats, half-octave bins on a log scale: bin k holds lengths whose 2*log2 rounds
  to k (k = -8..8: 1/16 beat to 16 beats; shorter and longer ones in the end bins), so a
  played quarter (0.85-1.18 beats) lands in the 1-beat bin, a dotted quarter in the 1.41 bin.

The distance is the Jensen-Shannon divergence in bits (0 = the same distribution, 1 = disjoint)
between the normalised histograms, per histogram, and their mean. Symmetric, bounded, and defined
where a bin is empty on one side (unlike the Kullback-Leibler divergence).

Pure, and judged from outside: nothing of agent.listen or agent.policy is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon

from agent.model.corpus import Work
from agent.record.judge import Note, estimate_key

INTERVAL_LIMIT = 12  # semitones; larger leaps share an end bin per direction
LENGTH_K = 8  # length bins k = -LENGTH_K..LENGTH_K, bin k centred on 2**(k/2) beats
CHORD_BEATS = 0.05  # onsets this close are one moment (~30 ms at 100 BPM: a played chord)
LINE_BREAK_BEATS = 2.0  # a longer rest between two notes of a line: no interval across it


@dataclass(frozen=True)
class Line:
    """One melodic line: onsets and lengths in quarter-note beats, MIDI pitches (all three of
    one length, any order), and the pitch class 0-11 of its piece's tonic."""

    onset: np.ndarray  # float64 [n]
    duration: np.ndarray  # float64 [n]
    pitch: np.ndarray  # int64 [n]
    tonic: int


def line(onset: Sequence[float], duration: Sequence[float], pitch: Sequence[int],
         tonic: int) -> Line:
    if not len(onset) == len(duration) == len(pitch):
        raise ValueError(f"a line needs as many onsets, lengths and pitches, not {len(onset)}, "
                         f"{len(duration)}, {len(pitch)}")
    return Line(np.asarray(onset, dtype=np.float64), np.asarray(duration, dtype=np.float64),
                np.asarray(pitch, dtype=np.int64), tonic % 12)


@dataclass(frozen=True)
class Histograms:
    """Note counts (float64) per bin: 12 pitch classes, 2 * INTERVAL_LIMIT + 3 intervals (from
    'more than an octave down' to 'more than an octave up'), 2 * LENGTH_K + 1 lengths."""

    pitch_class: np.ndarray
    interval: np.ndarray
    length: np.ndarray

    @staticmethod
    def of(lines: Iterable[Line]) -> Histograms:
        kept = list(lines)
        return Histograms(pitch_class_histogram(kept), interval_histogram(kept),
                          length_histogram(kept))

    def __add__(self, other: Histograms) -> Histograms:
        return Histograms(self.pitch_class + other.pitch_class, self.interval + other.interval,
                          self.length + other.length)


def pitch_class_histogram(lines: Iterable[Line]) -> np.ndarray:
    counts = np.zeros(12)
    for ln in lines:
        np.add.at(counts, (ln.pitch - ln.tonic) % 12, 1.0)
    return counts


def top_notes(ln: Line) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset, end, pitch) of the highest note of each moment, in time order. A moment is a run
    of onsets each within CHORD_BEATS of the moment's first."""
    order = np.lexsort((-ln.pitch, ln.onset))
    onsets, ends, pitches = [], [], []
    first = -math.inf
    for i in order.tolist():
        o, p = float(ln.onset[i]), int(ln.pitch[i])
        if o - first > CHORD_BEATS:
            first = o
            onsets.append(o)
            ends.append(o + float(ln.duration[i]))
            pitches.append(p)
        elif p > pitches[-1]:  # a later onset of the moment, higher: the top note is it
            ends[-1], pitches[-1] = o + float(ln.duration[i]), p
    return np.array(onsets), np.array(ends), np.array(pitches, dtype=np.int64)


def interval_histogram(lines: Iterable[Line]) -> np.ndarray:
    counts = np.zeros(2 * INTERVAL_LIMIT + 3)
    for ln in lines:
        onset, end, pitch = top_notes(ln)
        if len(pitch) < 2:
            continue
        steps = np.diff(pitch)
        # A rest is the silence between a note's end and the next onset (overlaps: none).
        joined = onset[1:] - end[:-1] <= LINE_BREAK_BEATS
        bins = np.clip(steps[joined], -INTERVAL_LIMIT - 1, INTERVAL_LIMIT + 1)
        np.add.at(counts, bins + INTERVAL_LIMIT + 1, 1.0)
    return counts


def length_bin(beats: np.ndarray) -> np.ndarray:
    """The bin index 0..2*LENGTH_K of each length (> 0) in beats: round(2 * log2) clipped."""
    k = np.rint(2 * np.log2(np.maximum(beats, 1e-9)))
    index: np.ndarray = (np.clip(k, -LENGTH_K, LENGTH_K) + LENGTH_K).astype(np.int64)
    return index


def length_histogram(lines: Iterable[Line]) -> np.ndarray:
    counts = np.zeros(2 * LENGTH_K + 1)
    for ln in lines:
        positive = ln.duration[ln.duration > 0]
        np.add.at(counts, length_bin(positive), 1.0)
    return counts


def js_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two histograms (each normalised first)."""
    if p.shape != q.shape:
        raise ValueError(f"histograms of {p.shape} and {q.shape} bins cannot be compared")
    if not p.sum() > 0 or not q.sum() > 0:
        raise ValueError("an empty histogram (no notes) has no distribution to compare")
    # scipy returns the Jensen-Shannon *distance*, the square root of the divergence.
    return float(jensenshannon(p, q, base=2)) ** 2


@dataclass(frozen=True)
class StyleDistance:
    """Jensen-Shannon divergences in bits, per histogram, and their mean."""

    pitch_class: float
    interval: float
    length: float

    @property
    def mean(self) -> float:
        return (self.pitch_class + self.interval + self.length) / 3


def style_distance(a: Histograms, b: Histograms) -> StyleDistance:
    return StyleDistance(js_bits(a.pitch_class, b.pitch_class), js_bits(a.interval, b.interval),
                         js_bits(a.length, b.length))


def work_lines(work: Work) -> list[Line]:
    """A corpus work's voices as lines, in the key of the whole work."""
    tonic = estimate_key([Note(float(o), float(o + d), int(p), "")
                          for o, d, p in zip(work.onset, work.duration, work.pitch,
                                             strict=True)]).tonic
    return [Line(work.onset[m], work.duration[m], work.pitch[m].astype(np.int64), tonic)
            for v in np.unique(work.voice).tolist() if (m := work.voice == v).any()]


def played_line(notes: Sequence[Note], beat_s: float, around: Sequence[Note]) -> Line:
    """Notes played in seconds (the agent's part) as one line in beats of `beat_s` seconds, in
    the key of the music `around` them (the players' notes of the piece)."""
    if beat_s <= 0:
        raise ValueError(f"a beat must last longer than 0 s, not {beat_s}")
    return line([n.onset / beat_s for n in notes], [(n.end - n.onset) / beat_s for n in notes],
                [n.pitch for n in notes], estimate_key(around).tonic)
