"""Make the chorale piece's rehearsal: Bach's chorale BWV 113.8 traded by a soprano and a bass,
phrase by phrase, then sung through by both.

Run from the repository root:  .venv/bin/python performances/chorale/make_rehearsal.py
Writes performances/chorale/rehearsal.mid (type 1: a conductor track, then one track per player).
Deterministic (seeded): it always writes the same bytes (tests/pipeline/test_pieces.py checks
the shipped file against it).

The notes come from music21's bundled corpus exactly as the bach-chorales corpus has them: the
first ten chorales are built into a temporary folder (BWV 113.8 is the tenth; ~6 s), and the
work's MIDI file is checked against the sha256 in corpora/bach-chorales/manifest.json, so a
different music21 cannot change the rehearsal unnoticed. BWV 113.8 is in the corpus's test
split: the shipped model never trained on it.

The piece (PHRASE_ENDS are the chorale's fermatas, in beats of the corpus work, whose repeat of
the first two phrases is written out):
- trading: the seven phrases in turn, soprano first, each followed by two bars of rest in which
  the agent answers;
- together: after two more bars of rest, both sing the whole chorale.

Played as people would, reusing the corpus rehearsals' note humanising (agent/record/rehearsal.py:
Gaussian onset jitter of 10 ms clipped at 30 ms, velocity noise, notes held 80-95% of their
length): the tempo drifts slowly (±2% over eight bars), each phrase slows down over its last two
beats (the last phrase over four, more) and its fermata is held for 3/4 of a beat more; the
velocity follows the metre (agent.record.rehearsal.accent) and an arc over each phrase, the
soprano above the bass, and the sung-through chorale a little softer than the trading.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido

from agent.model.corpus import Work, build_corpus
from agent.record.rehearsal import Played, Style, accent, humanise_note, to_smf, wander_time

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parent.parent / "corpora" / "bach-chorales" / "manifest.json"
WORK_ID = "bwv113.8"
BUILD_LIMIT = 10  # BWV 113.8 is the tenth chorale in the corpus's build order
SEED = 1138
TEMPO_BPM = 84.0
TICKS_PER_BEAT = 480
# The fermatas: where each phrase ends, in quarter-note beats of the corpus work (whose pickup is
# padded to a full bar, so the first note is at beat 3 and bar lines at multiples of 4).
PHRASE_ENDS = (11.0, 19.0, 27.0, 35.0, 43.0, 51.0, 63.0)
LEAD_IN_BEATS = 1.0  # silence before the first note
REST_BEATS = 8.0  # two bars of rest after each traded phrase, and before the sung-through one
# (name, MIDI channel 0-15, corpus voice: 0 soprano, 3 bass, how they play)
PLAYERS = (("soprano", 0, 0, Style(velocity=88.0)), ("bass", 1, 3, Style(velocity=80.0)))
WANDER, WANDER_BEATS = 0.02, 32.0  # the tempo drifts within ±2%, one cycle per eight bars
RIT, RIT_BEATS = 0.25, 2.0  # a phrase's last beats slow down to 25% longer...
FINAL_RIT, FINAL_RIT_BEATS = 0.6, 4.0  # ...the piece's last phrase more, and for longer
FERMATA_BEATS = 0.75  # a fermata holds this much longer
ARC = 0.12  # velocity rises by this share to the middle of a phrase, then falls
TOGETHER = 0.9  # the sung-through chorale's velocities, against the trading's


@dataclass(frozen=True)
class PhraseEnd:
    """A phrase end on the rehearsal's time line (beats), and how the players slow into it."""

    beat: float
    rit: float  # the last beat lasts up to this share longer
    rit_beats: float  # slowing down over this many beats
    hold: float  # fermata: beats added at the end


def seconds_at(beat: float, beat_s: float, phase: float, ends: tuple[PhraseEnd, ...]) -> float:
    """Seconds from the start to time-line `beat`: the wandering tempo (closed form), plus each
    ritardando already begun (the beat lengthens linearly to 1 + rit at the end, so it adds
    rit * x^2 / 2 beats after x of its beats) and each fermata passed. A note ending on a phrase
    end is held through the fermata; a note starting there starts after it."""
    t = wander_time(beat, beat_s, WANDER, WANDER_BEATS, phase)
    for end in ends:
        x = min(max(beat - (end.beat - end.rit_beats), 0.0), end.rit_beats)
        t += beat_s * end.rit * x * x / (2 * end.rit_beats)
        if beat >= end.beat - 1e-9:
            t += beat_s * end.hold
    return t


def phrases(work: Work) -> list[tuple[float, float]]:
    """(start, end) beats of each phrase; checks that each end is where the soprano's and the
    bass's notes end (a fermata), so a different encoding of the chorale is caught."""
    starts = (float(work.onset.min()), *PHRASE_ENDS[:-1])
    for voice in (0, 3):
        ends = set((work.onset + work.duration)[work.voice == voice].round(6).tolist())
        missing = [e for e in PHRASE_ENDS if e not in ends]
        if missing:
            raise ValueError(f"{work.id}: no note of voice {voice} ends at beats {missing}: "
                             "PHRASE_ENDS do not fit this encoding")
    return list(zip(starts, PHRASE_ENDS, strict=True))


def perform(work: Work, rng: random.Random) -> dict[str, list[Played]]:
    """{player: notes as played}: the trading, then the chorale sung through."""
    spans = phrases(work)
    first = spans[0][0]
    # Time-line beat = written beat + shift: phrase k of the trading after k rests, then the
    # whole chorale after one more rest.
    shifts = [LEAD_IN_BEATS - first + k * REST_BEATS for k in range(len(spans))]
    together = LEAD_IN_BEATS - first + len(spans) * REST_BEATS + (spans[-1][1] - first)
    ends = tuple(PhraseEnd(end + shift, RIT, RIT_BEATS, FERMATA_BEATS)
                 for (_, end), shift in zip(spans, shifts, strict=True))
    slowing = [(RIT, RIT_BEATS)] * (len(spans) - 1) + [(FINAL_RIT, FINAL_RIT_BEATS)]
    ends += tuple(PhraseEnd(end + together, rit, beats, FERMATA_BEATS)
                  for (_, end), (rit, beats) in zip(spans, slowing, strict=True))
    beat_s = 60.0 / TEMPO_BPM
    phase = rng.uniform(0.0, 2 * math.pi)
    parts: dict[str, list[Played]] = {}
    for turn, (name, channel, voice, style) in enumerate(PLAYERS):
        mask = work.voice == voice
        notes = sorted(zip(work.onset[mask].tolist(), work.duration[mask].tolist(),
                           work.pitch[mask].tolist(), strict=True))
        played: list[Played] = []
        for k in range(turn, len(spans), len(PLAYERS)):  # this player's turns in the trading
            start, end = spans[k]
            played += [_play(rng, o, min(o + d, end), p, channel, style, (start, end),
                             shifts[k], beat_s, phase, ends, work.bar_beats, 1.0)
                       for o, d, p in notes if start <= o < end]
        for o, d, p in notes:  # the chorale sung through
            span = next(s for s in spans if s[0] <= o < s[1])
            played.append(_play(rng, o, o + d, p, channel, style, span, together, beat_s, phase,
                                ends, work.bar_beats, TOGETHER))
        parts[name] = _separate_repeats(played)
    return parts


def _play(rng: random.Random, onset: float, end: float, pitch: int, channel: int, style: Style,
          phrase: tuple[float, float], shift: float, beat_s: float, phase: float,
          ends: tuple[PhraseEnd, ...], bar_beats: float, loudness: float) -> Played:
    """One written note (beats of the work) as played: timing, then velocity and length."""
    onset_s = seconds_at(onset + shift, beat_s, phase, ends)
    end_s = seconds_at(end + shift, beat_s, phase, ends)
    start, stop = phrase
    arc = 1 + ARC * (math.sin(math.pi * (onset - start) / (stop - start)) - 0.5)
    t, velocity, duration = humanise_note(rng, onset_s, end_s - onset_s,
                                          accent(onset, bar_beats, 1.0) * arc * loudness, style)
    return Played(max(0.0, t), channel, pitch, velocity, duration)


def _separate_repeats(notes: list[Played]) -> list[Played]:
    """A repeated pitch's note ends before the next one starts (onset jitter can push a note's
    end past the next onset), so note-ons and note-offs of a pitch alternate in the file."""
    out = list(notes)
    for i, n in enumerate(out):
        later = [m.onset_s for m in out[i + 1:] if m.pitch == n.pitch and m.onset_s >= n.onset_s]
        if later and n.onset_s + n.duration_s > min(later):
            out[i] = Played(n.onset_s, n.channel, n.pitch, n.velocity, min(later) - n.onset_s)
    return out


def load_work(root: Path) -> Work:
    """The chorale as the bach-chorales corpus has it, built into `root` (music21 needed)."""
    corpus = build_corpus("bach-chorales", root, limit=BUILD_LIMIT)
    work = next((w for w in corpus.works if w.id == WORK_ID), None)
    if work is None:
        raise ValueError(f"{WORK_ID} is not among the first {BUILD_LIMIT} chorales built")
    expected = next(w["sha256"] for w in json.loads(MANIFEST.read_text())["works"]
                    if w["id"] == WORK_ID)
    built = hashlib.sha256((corpus.path / "midi" / f"{WORK_ID}.mid").read_bytes()).hexdigest()
    if built != expected:
        raise ValueError(f"{WORK_ID} built from this music21 differs from {MANIFEST} (sha256 "
                         f"{built}, not {expected}): install the pinned music21 "
                         "(constraints.txt)")
    return work


def rehearsal(work: Work) -> mido.MidiFile:
    return to_smf(perform(work, random.Random(SEED)), TEMPO_BPM, ticks_per_beat=TICKS_PER_BEAT)


def main(out: Path = HERE / "rehearsal.mid") -> Path:
    with tempfile.TemporaryDirectory() as root:
        rehearsal(load_work(Path(root))).save(out)
    return out


if __name__ == "__main__":
    print(f"wrote {main(*(Path(a) for a in sys.argv[1:2]))}")
