"""Rehearsal recordings made from held-out corpus pieces: a stand-in band for measuring the agent.

A corpus work becomes a Standard MIDI File (type 1, one track per player, named after the player)
that `stage-agent replay` and `evaluate` take like a band part from a DAW (agent.record.smf reads
track names as player names). Who plays what: a single-voice work (an O'Neill tune) is "melody"
on MIDI channel 1; a work in several voices (a chorale) gives its top voice to "melody" (channel
1) and its lowest to "bass" (channel 2), the inner voices left out, as two players would play it.

Played as a person would, so the agent hears what it hears on stage, not a grid: the tempo wanders
slowly (about ±2% over eight bars), each onset is off by a Gaussian ±10 ms (clipped at 30 ms),
notes are held for 80-95% of their written length, and velocity follows the metre (downbeat,
strong beat, beat, off-beat) with noise and a gentle arch over each four-bar phrase. The pieces
keep their own phrasing; `gaps_beats` adds a rest after every `gap_every_bars` bars so that
call-and-response can be measured on pieces that never stop, and `silent_phrases` makes a
call-and-response version on the same time line instead: every second `gap_every_bars`-bar phrase
is left out (the notes kept are exactly those of the whole version). `every_voice` gives each
voice of a work in several voices to its own player (a chorale as four singers).

The true beat times are known from how a rehearsal is made: `perform_timed` also returns its
`Timeline` (beat k of the written time line at `Timeline.seconds(k)`, bar lines at
`Timeline.bar_line(m)`), which the judge (agent.record.judge) takes as the grid.

Deterministic: the random choices for a work come from (seed, work id) alone, so the same seed
gives byte-identical files whatever `limit` or the other works are. Everything but
`make_rehearsals` (reads the corpus, writes files) and `main` is pure.

    python -m agent.record.rehearsal CORPUS_DIR OUT_DIR [--split test] [--limit N] [--seed S]
        [--bpm B] [--gaps-beats N] [--gap-every-bars 4] [--silent-phrases] [--every-voice]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from agent.model.corpus import Work, load_corpus, read_manifest

TICKS_PER_BEAT = 960  # ~0.6 ms at 100 BPM: finer than the jitter it must show
LEAD_IN_BEATS = 1.0  # silence before the first bar that has a note


@dataclass(frozen=True)
class Style:
    """How a player deviates from the written notes. The defaults are those of the demo."""

    jitter_s: float = 0.010  # standard deviation of onset timing
    jitter_limit_s: float = 0.030  # no onset further off than this
    hold: tuple[float, float] = (0.80, 0.95)  # share of the written length a note sounds
    velocity: float = 92.0  # at a downbeat, before noise and arch
    velocity_noise: float = 6.0  # standard deviation
    velocity_range: tuple[int, int] = (20, 120)
    wander: float = 0.02  # largest tempo deviation, as a share of the tempo
    wander_bars: float = 8.0  # one slow push and pull lasts this many bars
    arch: float = 0.06  # velocity rises by this share to the middle of a phrase, then falls
    arch_bars: float = 4.0
    # Play each note at the work's own velocity (a corpus with dynamics: what the piece's
    # players did) instead of the metric model above; the random draws stay the same.
    written_velocity: bool = False


@dataclass(frozen=True)
class Played:
    onset_s: float
    channel: int  # 0-15
    pitch: int
    velocity: int
    duration_s: float


def humanise_note(rng: random.Random, written_s: float, length_s: float, accent: float,
                  style: Style = Style()) -> tuple[float, int, float]:
    """(onset s, velocity, duration s) of one note written at `written_s`, `length_s` long.

    Draws exactly three numbers from `rng`, in this order (the demo's file depends on it): the
    onset jitter, the velocity noise, the share held.
    """
    jitter = rng.gauss(0.0, style.jitter_s)
    jitter = max(-style.jitter_limit_s, min(style.jitter_limit_s, jitter))
    low, high = style.velocity_range
    velocity = max(low, min(high, round(style.velocity * accent
                                        + rng.gauss(0.0, style.velocity_noise))))
    return written_s + jitter, velocity, length_s * rng.uniform(*style.hold)


def beat_length(numerator: int, denominator: int) -> float:
    """The felt beat in quarter notes: a dotted quarter in 6/8, 9/8, 12/8; else the denominator."""
    if denominator == 8 and numerator % 3 == 0 and numerator > 3:
        return 1.5
    return 4.0 / denominator


def accent(position: float, bar_beats: float, beat: float) -> float:
    """Metric weight of an onset `position` quarter notes from a bar line: 1 on the downbeat,
    0.85 on the middle of a bar of four beats, 0.8 on other beats, 0.7 between beats."""
    in_bar = position % bar_beats
    if _near(in_bar, 0.0) or _near(in_bar, bar_beats):
        return 1.0
    beats = round(bar_beats / beat)
    if beats % 2 == 0 and beats >= 4 and _near(in_bar, bar_beats / 2):
        return 0.85
    return 0.8 if _near(in_bar / beat, round(in_bar / beat)) else 0.7


def _near(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6


def wander_time(beat: float, beat_s: float, amount: float, period: float, phase: float) -> float:
    """Seconds from the start to `beat` when each beat lasts beat_s * (1 + amount * sin(...)):
    the tempo drifts within ±amount, one cycle per `period` beats. Closed form, so no drift adds
    up from rounding."""
    if amount == 0.0:
        return beat * beat_s
    w = 2 * math.pi / period
    return beat_s * (beat - amount / w * (math.cos(w * beat + phase) - math.cos(phase)))


VOICE_NAMES = ("soprano", "alto", "tenor", "bass")  # every_voice: a four-voice work's singers


def players_of(work: Work, every_voice: bool = False) -> list[tuple[str, int, int]]:
    """(player name, MIDI channel 0-15, voice) for each player of a work."""
    voices = np.unique(work.voice)
    if voices.size == 1:
        return [("melody", 0, int(voices[0]))]
    if every_voice:
        names = VOICE_NAMES if voices.size == len(VOICE_NAMES) else tuple(
            f"voice{i + 1}" for i in range(voices.size))
        return [(names[i], i, int(v)) for i, v in enumerate(voices[:16])]
    return [("melody", 0, int(voices.min())), ("bass", 1, int(voices.max()))]


@dataclass(frozen=True)
class Timeline:
    """When a rehearsal's beats fall: beat k (quarter notes of the written time line, the first
    bar with a note starting at LEAD_IN_BEATS) at seconds(k)."""

    beat_s: float
    wander: float
    period: float  # beats of one push and pull
    phase: float
    bar_beats: float
    gaps_beats: float = 0.0
    gap_every_bars: int = 4

    def seconds(self, beat: float) -> float:
        return wander_time(beat, self.beat_s, self.wander, self.period, self.phase)

    def bar_line(self, bar: int) -> float:
        """The time-line beat where bar `bar` (0 = the first with a note) starts."""
        return (LEAD_IN_BEATS + bar * self.bar_beats
                + (bar // self.gap_every_bars) * self.gaps_beats)

    def beat_times(self, until_s: float) -> np.ndarray:
        """The time of every whole beat from 0 to the first one after `until_s`. float64."""
        count = math.ceil(until_s / (self.beat_s * (1 - self.wander))) + 2
        return np.array([self.seconds(k) for k in range(count)], dtype=np.float64)


def perform(work: Work, rng: random.Random, *, bpm: float | None = None,
            time_signature: tuple[int, int] = (4, 4), gaps_beats: float = 0.0,
            gap_every_bars: int = 4, style: Style = Style(), silent_phrases: bool = False,
            every_voice: bool = False) -> dict[str, list[Played]]:
    """{player: notes as played, in written order}: the whole work, humanised (perform_timed)."""
    return perform_timed(work, rng, bpm=bpm, time_signature=time_signature,
                         gaps_beats=gaps_beats, gap_every_bars=gap_every_bars, style=style,
                         silent_phrases=silent_phrases, every_voice=every_voice)[0]


def perform_timed(work: Work, rng: random.Random, *, bpm: float | None = None,
                  time_signature: tuple[int, int] = (4, 4), gaps_beats: float = 0.0,
                  gap_every_bars: int = 4, style: Style = Style(), silent_phrases: bool = False,
                  every_voice: bool = False) -> tuple[dict[str, list[Played]], Timeline]:
    """({player: notes as played, in written order}, when its beats fall).

    Bars before the first note are dropped (a padded pickup keeps its silence within the bar),
    then LEAD_IN_BEATS of silence. With gaps_beats > 0, a rest that long follows every
    gap_every_bars bars, and a note sounding across the gap's start is cut there. With
    silent_phrases, every second gap_every_bars-bar phrase (the 2nd, 4th, ...) is left out and
    a note sounding into one is cut at its start; the random draws are those of the whole
    version, so the notes kept are those of the whole version (cut where one sounds into a
    silent phrase).
    """
    if gaps_beats < 0 or gap_every_bars < 1:
        raise ValueError(f"gaps_beats >= 0 and gap_every_bars >= 1, not {gaps_beats}, "
                         f"{gap_every_bars}")
    beat_s = 60.0 / (bpm or work.bpm)
    beat = beat_length(*time_signature)
    start = math.floor(float(work.onset.min()) / work.bar_beats) * work.bar_beats
    segment = gap_every_bars * work.bar_beats
    phase = rng.uniform(0.0, 2 * math.pi)
    period = style.wander_bars * work.bar_beats
    phrase = style.arch_bars * work.bar_beats
    timeline = Timeline(beat_s, style.wander, period, phase, work.bar_beats, gaps_beats,
                        gap_every_bars)
    parts: dict[str, list[Played]] = {}
    for name, channel, voice in players_of(work, every_voice):
        mask = work.voice == voice
        order = np.lexsort((work.pitch[mask], work.onset[mask]))
        played: list[Played] = []
        for o, d, p, v in zip(work.onset[mask][order].tolist(),
                              work.duration[mask][order].tolist(),
                              work.pitch[mask][order].tolist(),
                              work.velocity[mask][order].tolist(), strict=True):
            written, end = o - start, o - start + d
            shift = LEAD_IN_BEATS
            seg = math.floor(written / segment + 1e-6)
            if gaps_beats:
                shift += seg * gaps_beats
                end = min(end, (seg + 1) * segment)
            elif silent_phrases and seg % 2 == 0:  # sounding into the silent phrase: cut there
                end = min(end, (seg + 1) * segment)
            onset_s = wander_time(shift + written, beat_s, style.wander, period, phase)
            end_s = wander_time(shift + end, beat_s, style.wander, period, phase)
            arch = 1 + style.arch * (math.sin(math.pi * (written % phrase) / phrase) - 0.5)
            onset, velocity, duration = humanise_note(
                rng, onset_s, end_s - onset_s, accent(written, work.bar_beats, beat) * arch, style)
            velocity = int(v) if style.written_velocity else velocity
            if not (silent_phrases and seg % 2 == 1):
                played.append(Played(max(0.0, onset), channel, int(p), velocity, duration))
        parts[name] = _no_overlaps(played)
    return parts, timeline


def _no_overlaps(notes: list[Played]) -> list[Played]:
    """Cut a note where the next onset of the same pitch starts, so note-ons and note-offs of a
    pitch alternate in the file (timing jitter can move a short note's end past the next one)."""
    out = list(notes)
    next_onset: dict[int, float] = {}
    for i in sorted(range(len(out)), key=lambda i: out[i].onset_s, reverse=True):
        n = out[i]
        later = next_onset.get(n.pitch)
        if later is not None and n.onset_s + n.duration_s > later:
            out[i] = Played(n.onset_s, n.channel, n.pitch, n.velocity, later - n.onset_s)
        next_onset[n.pitch] = n.onset_s
    return out


def to_smf(parts: dict[str, list[Played]], bpm: float, *,
           time_signature: tuple[int, int] = (4, 4),
           ticks_per_beat: int = TICKS_PER_BEAT) -> mido.MidiFile:
    """A type-1 file: a conductor track (tempo, metre), then one track per player, named after
    it. At equal ticks a note-off comes before a note-on."""
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo = mido.bpm2tempo(bpm)
    mid.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=tempo, time=0),
        mido.MetaMessage("time_signature", numerator=time_signature[0],
                         denominator=time_signature[1], time=0),
    ]))
    for name, played in parts.items():
        events = []
        for n in played:
            events.append((mido.second2tick(n.onset_s, ticks_per_beat, tempo), 1,
                           mido.Message("note_on", channel=n.channel, note=n.pitch,
                                        velocity=n.velocity)))
            events.append((mido.second2tick(n.onset_s + n.duration_s, ticks_per_beat, tempo), 0,
                           mido.Message("note_off", channel=n.channel, note=n.pitch,
                                        velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    return mid


def work_rng(seed: int, work_id: str) -> random.Random:
    """The random source of one work: (seed, id) alone (str seeds hash with sha512, stably)."""
    return random.Random(f"{seed}:{work_id}")


def parse_time_signature(text: str | None) -> tuple[int, int]:
    """"6/8" -> (6, 8); 4/4 when absent or not a valid MIDI metre."""
    try:
        num, den = (int(x) for x in str(text).split("/"))
    except ValueError:
        return (4, 4)
    return (num, den) if num > 0 and den > 0 and den & (den - 1) == 0 else (4, 4)


def metres_of(corpus_dir: Path) -> dict[str, tuple[int, int]]:
    """{work id: its time signature} from a built corpus's manifest (4/4 when it gives none)."""
    return {str(e["id"]): parse_time_signature(e.get("time_signature"))
            for e in read_manifest(corpus_dir)["works"]}


def make_rehearsals(corpus_dir: Path, split: str, out_dir: Path, limit: int | None, seed: int,
                    bpm: float | None = None, *, gaps_beats: float = 0.0,
                    gap_every_bars: int = 4, silent_phrases: bool = False,
                    every_voice: bool = False) -> list[Path]:
    """Write `<out_dir>/<work id>.mid` for the first `limit` works of `split` (by id; all when
    None), at each work's tempo (the manifest's rule: the score's mark, else the corpus default)
    or at `bpm`. Returns the files written, in id order."""
    corpus = load_corpus(corpus_dir)
    metres = metres_of(corpus_dir)
    works = sorted(corpus.split(split), key=lambda w: w.id)[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for work in works:
        metre = metres.get(work.id, (4, 4))
        parts = perform(work, work_rng(seed, work.id), bpm=bpm, time_signature=metre,
                        gaps_beats=gaps_beats, gap_every_bars=gap_every_bars,
                        silent_phrases=silent_phrases, every_voice=every_voice)
        path = out_dir / f"{work.id}.mid"
        to_smf(parts, bpm or work.bpm, time_signature=metre).save(path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir", type=Path, help="a built corpus, e.g. corpora/oneill-1850")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--split", default="test", choices=("train", "valid", "test"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bpm", type=float, default=None, help="default: each work's own tempo")
    ap.add_argument("--gaps-beats", type=float, default=0.0)
    ap.add_argument("--gap-every-bars", type=int, default=4)
    ap.add_argument("--silent-phrases", action="store_true",
                    help="call and response: every second --gap-every-bars phrase left out")
    ap.add_argument("--every-voice", action="store_true",
                    help="each voice its own player (default: top voice and bass)")
    args = ap.parse_args(argv)
    for path in make_rehearsals(args.corpus_dir, args.split, args.out_dir, args.limit,
                                args.seed, args.bpm, gaps_beats=args.gaps_beats,
                                gap_every_bars=args.gap_every_bars,
                                silent_phrases=args.silent_phrases,
                                every_voice=args.every_voice):
        print(path)


if __name__ == "__main__":
    main()
