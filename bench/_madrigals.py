"""Monteverdi's madrigals as written and as a person plays them: bench/style_folder.py's music.

Read with music21 (ties merged, grace notes left out), cut in two at a bar line, then played:
a tempo map, a slow drift, onset jitter, a voice's lead or lag, phrase-shaped dynamics, metric
accents, notes held short of their length (keys let go early under a sustain pedal on a
keyboard). bench/style_folder.py's docstring gives the figures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from music21 import converter, meter, stream

from agent.record.rehearsal import accent, wander_time

LEAD_IN_BEATS = 1.0  # silence before the first bar
SAME_KEY_S = 0.03  # two notes of one key this close are one (a unison in a keyboard take)


@dataclass(frozen=True)
class Written:
    """A madrigal (or half of one) as written: notes in quarter-note beats from its first bar."""

    id: str  # "4.7"
    parts: tuple[str, ...]
    notes: tuple[tuple[float, float, int, int], ...]  # onset, end, pitch, part; sorted
    bar_beats: float


def read_madrigal(path: Path) -> Written:
    score = converter.parse(path)
    first = score.parts[0].getElementsByClass(stream.Measure).first()
    shift = float(first.paddingLeft) if first is not None else 0.0  # a pickup: pad to a bar
    notes = set()
    for i, part in enumerate(score.parts):
        for n in part.stripTies().flatten().notes:
            if not n.duration.isGrace and n.quarterLength > 0:
                onset = float(n.offset) + shift
                notes |= {(onset, onset + float(n.quarterLength), int(p.midi), i)
                          for p in n.pitches}
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    return Written(path.stem.removeprefix("madrigal."), tuple(str(p.partName) for p in
                                                              score.parts),
                   tuple(sorted(notes)), float(ts.barDuration.quarterLength) if ts else 4.0)


def halves(w: Written) -> tuple[Written, Written]:
    """Cut at the bar line of the middle third that the fewest notes sound across (the nearer
    the middle on a tie); a note sounding across it ends there."""
    bars = math.ceil(max(n[1] for n in w.notes) / w.bar_beats)
    middle = range(max(1, bars // 3), max(2, 2 * bars // 3 + 1))
    cut = w.bar_beats * min(middle, key=lambda b: (
        sum(o < b * w.bar_beats < e for o, e, _, _ in w.notes), abs(b - bars / 2), b))
    first = tuple((o, min(e, cut), p, v) for o, e, p, v in w.notes if o < cut)
    second = tuple((o - cut, e - cut, p, v) for o, e, p, v in w.notes if o >= cut)
    return Written(w.id, w.parts, first, w.bar_beats), Written(w.id, w.parts, second,
                                                               w.bar_beats)


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant tempo: segment i from beat starts[i] at seconds_per_beat[i]."""

    starts: tuple[float, ...]
    seconds_per_beat: tuple[float, ...]

    def seconds(self, beat: float) -> float:
        t = 0.0
        for i, start in enumerate(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else math.inf
            t += (min(beat, end) - start) * self.seconds_per_beat[i]
            if beat <= end:
                return t
        return t

    def beats(self, seconds: float) -> float:
        """The inverse of seconds() (before 0: the first tempo)."""
        t = 0.0
        for i, start in enumerate(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else math.inf
            span = (end - start) * self.seconds_per_beat[i]
            if seconds <= t + span:
                return start + (seconds - t) / self.seconds_per_beat[i]
            t += span
        raise AssertionError("the last segment is endless")


def score_tempo(rng: random.Random, spb: float, length: float, bar: float,
                changes: bool) -> TempoMap:
    if not changes:
        return TempoMap((0.0,), (spb,))
    end = LEAD_IN_BEATS + length
    slow_from = LEAD_IN_BEATS + bar * rng.randrange(2, max(3, int(length / bar) // 2))
    slow_to = min(slow_from + bar * rng.randint(4, 8), end - 3 * bar)
    starts, tempi = [0.0], [spb]
    if slow_to > slow_from:
        starts += [slow_from, slow_to]
        tempi += [spb / 0.88, spb]
    rit = math.floor(end - 2 * bar)
    for k, beat in enumerate(range(rit, math.ceil(end))):
        starts.append(float(beat))
        tempi.append(spb * 1.06 ** (k + 1))
    return TempoMap(tuple(starts), tuple(tempi))


@dataclass(frozen=True)
class Sounding:
    onset_s: float
    end_s: float
    pitch: int
    channel: int
    velocity: int


def velocities(w: Written, rng: random.Random, level: float) -> list[int]:
    """One per note of w.notes, in order (see the module's docstring)."""
    voice_level = {v: rng.gauss(0.0, 4.0) for v in range(len(w.parts))}
    swell: dict[int, float] = {}  # note index -> the phrase's shape at it
    for v in range(len(w.parts)):
        idx = [i for i, n in enumerate(w.notes) if n[3] == v]
        phrase: list[int] = []
        for k, i in enumerate([*idx, -1]):
            if phrase and (i < 0 or w.notes[i][0] - w.notes[idx[k - 1]][1] >= 1.0):
                height = rng.uniform(8.0, 20.0)
                first, last = w.notes[phrase[0]][0], w.notes[phrase[-1]][0]
                for j in phrase:
                    x = (w.notes[j][0] - first) / (last - first) if last > first else 0.5
                    swell[j] = height * (math.sin(math.pi * x) - 0.4)
                phrase = []
            phrase.append(i)
    out = []
    for i, (onset, _, _, v) in enumerate(w.notes):
        metre = (accent(onset, w.bar_beats, 1.0) - 0.8) * 40  # +8 +2 0 -4
        stress = 12.0 if rng.random() < 0.04 else 0.0
        value = level + voice_level[v] + swell[i] + metre + stress + rng.gauss(0.0, 4.0)
        out.append(max(30, min(110, round(value))))
    return out


def play(w: Written, rng: random.Random, tempo: TempoMap, keyboard: bool) -> list[Sounding]:
    """The notes as sounded (keyboard: keys let go early, on channel 0; the pedal is added by
    pedal_changes). Times in seconds from the file's start."""
    spb = tempo.seconds_per_beat[0]
    drift, phase = rng.uniform(0.015, 0.04), rng.uniform(0.0, 2 * math.pi)
    period = 8 * w.bar_beats

    def at(beat: float) -> float:  # the score's tempo map plus the player's slow drift
        b = beat + LEAD_IN_BEATS
        return tempo.seconds(b) + wander_time(b, spb, drift, period, phase) - b * spb

    lag = {v: rng.uniform(-0.006, 0.006) for v in range(len(w.parts))}
    levels = velocities(w, rng, rng.uniform(48.0, 84.0))
    out = []
    for (onset, end, pitch, v), velocity in zip(w.notes, levels, strict=True):
        jitter = max(-0.02, min(0.02, rng.gauss(0.0, 0.008))) + lag[v]
        start = max(0.0, at(onset) + jitter)
        held = rng.uniform(0.45, 0.85) if keyboard else rng.uniform(0.82, 0.97)
        out.append(Sounding(start, start + (at(end) - at(onset)) * held, pitch,
                            0 if keyboard else v + (v >= 9), velocity))
    return one_key_at_a_time(out)


def one_key_at_a_time(notes: list[Sounding]) -> list[Sounding]:
    """A key sounds once at a time: two notes of one channel and pitch within SAME_KEY_S are one
    (the louder, the longer end); otherwise a note ends where the next one of its key starts."""
    by_key: dict[tuple[int, int], list[Sounding]] = {}
    for n in sorted(notes, key=lambda n: (n.onset_s, n.pitch, n.channel)):
        same = by_key.setdefault((n.channel, n.pitch), [])
        if same and n.onset_s - same[-1].onset_s < SAME_KEY_S:
            last = same[-1]
            same[-1] = Sounding(last.onset_s, max(last.end_s, n.end_s), n.pitch, n.channel,
                                max(last.velocity, n.velocity))
            continue
        if same and same[-1].end_s > n.onset_s:
            last = same[-1]
            same[-1] = Sounding(last.onset_s, n.onset_s, n.pitch, n.channel, last.velocity)
        same.append(n)
    return sorted((n for same in by_key.values() for n in same),
                  key=lambda n: (n.onset_s, n.pitch, n.channel))


def pedal_changes(w: Written, tempo: TempoMap, rng: random.Random,
                  end_s: float) -> list[tuple[float, int]]:
    """(seconds, CC64 value): down after the first notes, then a legato change every half bar
    (up just after the new half bar's notes, down again 50-100 ms later), up at the end."""
    half = w.bar_beats / 2
    changes = [(tempo.seconds(LEAD_IN_BEATS) + 0.05, 127)]
    beat = half
    while beat < max(n[1] for n in w.notes):
        up = tempo.seconds(beat + LEAD_IN_BEATS) + rng.uniform(0.04, 0.08)
        changes += [(up, 0), (up + rng.uniform(0.05, 0.1), 127)]
        beat += half
    return [*changes, (end_s + 0.3, 0)]
