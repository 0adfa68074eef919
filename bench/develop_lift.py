"""Does an answer develop its call? The 3-gram lift of answers built from corpus phrases.

Material: the **valid** split of corpora/oneill-1850 (single-line tunes) and corpora/bach-chorales
(the soprano is the line; all four voices give the harmony), never the test split. Each tune is
cut into 4-bar phrases from its first note; every first, third, ... phrase is a call, and an
answer is made from it as the agent would, then scored as an independent judge does:

- **lift**: the distinct 3-note figures of the answer (two consecutive intervals counted in scale
  steps of the tune's key, so "the motif a third up" counts) that occur in the call, as a share of
  the answer's figures, minus the mean share found in each other phrase of the same tune.
- **triad**: the share of the answer's note-time on the triad that the tune itself (all voices)
  outlines in each half bar of the phrase the answer stands in for (the phrase after the call).
- **copy**: the longest run of the answer moving by the call's intervals (transposition does not
  make it new; agent.model.originality.longest_shared_run) and the longest run of the call's exact
  pitches, as maxima over answers.

Answers (the same call, key, chord heard at the call's end, beat and length for each):
  develop_motif  today's head: the call's first 4 notes sequenced 1-2 steps (agent.policy.develop)
  develop        the skeleton of agent.policy.skeleton.develop: motif statements, transformed
  develop/chords the same, given the tune's own triad on each beat of the answer: what a
                 perfect prediction of the progression would let it do (an upper bound)
  echo+3rd       the call's line a third up in the key (the judge's baseline)
  random         random in-key notes in the call's range on the 8th grid
and the two heads again, "+tail": filled to the answer's length with random in-key notes, a
pessimistic stand-in for the model's continuation.

    .venv/bin/python bench/develop_lift.py [--seed 1] [--corpora oneill-1850 bach-chorales]
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import REPO, heading

from agent.events import PhraseNote, PlannedNote
from agent.listen.harmony import estimate_chord
from agent.model.corpus import Work, load_corpus
from agent.model.originality import join_lines, longest_shared_run
from agent.policy.develop import develop_motif, diatonic_shift, relative, scale_pitches, top_line
from agent.policy.motif import figures, longest_exact_run
from agent.policy.skeleton import develop

PHRASE_BARS = 4
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
         "dorian": (0, 2, 3, 5, 7, 9, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
         "lydian": (0, 2, 4, 6, 7, 9, 11), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
         "aeolian": (0, 2, 3, 5, 7, 8, 10), "locrian": (0, 1, 3, 5, 6, 8, 10)}
LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def key_scale(key: str | None, pitches: np.ndarray) -> frozenset[int]:
    """The pitch classes of "G major", "E dorian", "Bb minor"; without a key, the major scale
    whose tones cover most of the tune's notes."""
    if key is not None:
        tonic, mode = key.split()
        pc = LETTERS[tonic[0].upper()] + tonic[1:].count("#") - tonic[1:].count("b") \
            - tonic[1:].count("-")
        return frozenset((pc + i) % 12 for i in MODES[mode.lower()])
    counts = np.bincount(pitches % 12, minlength=12)
    best = max(range(12), key=lambda t: sum(counts[(t + i) % 12] for i in MODES["major"]))
    return frozenset((best + i) % 12 for i in MODES["major"])


@dataclass
class Tune:
    scale: frozenset[int]
    beat_ns: int
    bar_beats: float
    phrases: list[list[PhraseNote]]  # the line (voice 0), cut into 4-bar phrases
    everything: Work  # all voices, for the harmony


def tunes(corpus: str, root: Path = REPO / "corpora", split: str = "valid") -> list[Tune]:
    out = []
    for work in load_corpus(root / corpus).split(split):
        beat_ns = round(60e9 / work.bpm)
        line = work.voice == 0
        onset, pitch = work.onset[line], work.pitch[line]
        length = PHRASE_BARS * work.bar_beats
        cut: dict[int, list[PhraseNote]] = {}
        for t, p, v, d in zip(onset, pitch, work.velocity[line], work.duration[line],
                              strict=True):
            cut.setdefault(int((t - onset[0]) // length), []).append(
                PhraseNote(round(t * beat_ns), int(p), int(v), round(d * beat_ns)))
        phrases = [cut.get(i, []) for i in range(max(cut) + 1)] if cut else []
        out.append(Tune(key_scale(work.key, work.pitch), beat_ns, work.bar_beats, phrases,
                        work))
    return out


def triad_share(answer: Sequence[PlannedNote], start_beats: float, tune: Tune) -> float | None:
    """Share of the answer's note-time on the triad the tune outlines in each half bar, the
    answer placed at `start_beats` of the tune."""
    on = total = 0.0
    for n in answer:
        triad = chord_at(tune, start_beats + n.start_ns / tune.beat_ns)
        length = n.duration_ns / tune.beat_ns
        total += length
        if triad is not None and n.pitch % 12 in triad:
            on += length
    return on / total if total > 0 else None


def chord_at(tune: Tune, beats: float) -> set[int] | None:
    """The triad the tune (all voices) outlines in the half bar around `beats`."""
    w = tune.everything
    half = tune.bar_beats / 2
    cell = (beats - w.onset[0]) // half
    lo, hi = w.onset[0] + cell * half, w.onset[0] + (cell + 1) * half
    overlap = np.clip(np.minimum(w.onset + w.duration, hi) - np.maximum(w.onset, lo), 0, None)
    chord = estimate_chord(np.bincount(w.pitch % 12, weights=overlap, minlength=12))
    return None if chord is None else _triad(chord.root, chord.quality)


def _triad(root: int, quality: str) -> set[int]:
    third = 3 if quality.startswith(("min", "dim", "m7b5")) else 4
    fifth = 6 if quality.startswith(("dim", "m7b5")) else 8 if quality == "aug" else 7
    return {root, (root + third) % 12, (root + fifth) % 12}


def chord_heard(call: Sequence[PhraseNote], tune: Tune) -> frozenset[int] | None:
    """The triad sounding (all voices) in the call's last beat: what the agent hears."""
    w = tune.everything
    end = (call[-1].onset_ns + call[-1].duration_ns) / tune.beat_ns
    overlap = np.clip(np.minimum(w.onset + w.duration, end) - np.maximum(w.onset, end - 1), 0,
                      None)
    chord = estimate_chord(np.bincount(w.pitch % 12, weights=overlap, minlength=12))
    return None if chord is None else frozenset(_triad(chord.root, chord.quality))


def random_notes(count: int, call: Sequence[PhraseNote], ladder: Sequence[int], beat_ns: int,
                 rng: random.Random, after_ns: int = 0) -> list[PlannedNote]:
    low, high = min(n.pitch for n in call), max(n.pitch for n in call)
    choices = [p for p in ladder if low <= p <= high] or list(ladder)
    return [PlannedNote(after_ns + i * beat_ns // 2, rng.choice(choices), 80, beat_ns // 2)
            for i in range(count)]


def with_tail(head: list[PlannedNote], wanted: int, call: Sequence[PhraseNote],
              ladder: Sequence[int], beat_ns: int, rng: random.Random) -> list[PlannedNote]:
    after = head[-1].start_ns + beat_ns // 2 if head else 0
    return head + random_notes(max(wanted - len(head), 0), call, ladder, beat_ns, rng, after)


Answer = Callable[[list[PhraseNote], Tune, int, random.Random], list[PlannedNote]]


def answers(plans: list[str]) -> dict[str, Answer]:
    """The answers compared; `plans` gets the name of each plan develop() chose."""
    def head(call: list[PhraseNote], tune: Tune, wanted: int,
             rng: random.Random) -> list[PlannedNote]:
        return develop_motif(call, tune.scale, rng)

    def skeleton(call: list[PhraseNote], tune: Tune, wanted: int,
                 rng: random.Random) -> list[PlannedNote]:
        notes, plan = develop(call, tune.scale, rng, wanted, tune.beat_ns,
                              chord_heard(call, tune), _whole(tune.bar_beats))
        plans.append(plan)
        return notes

    def echo(call: list[PhraseNote], tune: Tune, wanted: int,
             rng: random.Random) -> list[PlannedNote]:
        ladder = scale_pitches(tune.scale)
        return [PlannedNote(n.start_ns, diatonic_shift(n.pitch, 2, ladder), n.velocity,
                            n.duration_ns) for n in relative(top_line(call))]

    def noise(call: list[PhraseNote], tune: Tune, wanted: int,
              rng: random.Random) -> list[PlannedNote]:
        return random_notes(wanted, call, scale_pitches(tune.scale), tune.beat_ns, rng)

    def tailed(make: Answer) -> Answer:
        return lambda call, tune, wanted, rng: with_tail(
            make(call, tune, wanted, rng), wanted, call, scale_pitches(tune.scale), tune.beat_ns,
            rng)

    def skeleton_on_chords(call: list[PhraseNote], tune: Tune, wanted: int,
                           rng: random.Random) -> list[PlannedNote]:
        i = next(j for j, p in enumerate(tune.phrases) if p is call)
        start = tune.phrases[i + 1][0].onset_ns / tune.beat_ns
        chords = [chord_at(tune, start + beat) for beat in range(64)]
        return develop(call, tune.scale, rng, wanted, tune.beat_ns, chord_heard(call, tune),
                       _whole(tune.bar_beats), chords=[c or set() for c in chords])[0]

    return {"develop_motif": head, "develop": skeleton, "develop/chords": skeleton_on_chords,
            "echo+3rd": echo, "random": noise, "develop_motif+tail": tailed(head),
            "develop+tail": tailed(skeleton)}


def _whole(beats: float) -> int | None:
    return round(beats) if beats == round(beats) else None


def measure(corpus: str, seed: int, root: Path = REPO / "corpora",
            split: str = "valid") -> None:
    rows: dict[str, dict[str, list[float]]] = {}
    plans: list[str] = []
    by_plan: dict[str, list[float]] = {}
    for name, make in answers(plans).items():
        rng = random.Random(seed)
        got: dict[str, list[float]] = {k: [] for k in ("call", "other", "lift", "triad",
                                                       "run", "exact", "notes")}
        for tune in tunes(corpus, root, split):
            ladder = scale_pitches(tune.scale)
            for i in range(0, len(tune.phrases) - 1, 2):
                call = tune.phrases[i]
                others = [p for j, p in enumerate(tune.phrases) if j != i and len(p) >= 3]
                if len(call) < 3 or not others:
                    continue
                wanted = len(top_line(call))
                answer = make(call, tune, wanted, rng)
                pitches = [n.pitch for n in answer]
                mine = figures(pitches, ladder)
                if not mine:
                    continue
                share_call = len(mine & figures([n.pitch for n in call], ladder)) / len(mine)
                share_other = statistics.fmean(
                    len(mine & figures([n.pitch for n in p], ladder)) / len(mine)
                    for p in others)
                got["call"].append(share_call)
                got["other"].append(share_other)
                got["lift"].append(share_call - share_other)
                if name == "develop":
                    by_plan.setdefault(plans[-1], []).append(share_call - share_other)
                triad = triad_share(answer, tune.phrases[i + 1][0].onset_ns / tune.beat_ns
                                    if tune.phrases[i + 1] else 0.0, tune)
                if triad is not None:
                    got["triad"].append(triad)
                line = [n.pitch for n in top_line(call)]
                got["run"].append(longest_shared_run(pitches, join_lines([np.array(line)])))
                got["exact"].append(longest_exact_run(pitches, line))
                got["notes"].append(len(answer))
        rows[name] = got
    heading(f"{corpus} (valid split), seed {seed}")
    print(f"{'answer':20} {'calls':>5} {'notes':>5} {'call':>5} {'other':>5} {'lift':>5} "
          f"{'triad':>5} {'run':>4} {'exact':>5}")
    for name, got in rows.items():
        print(f"{name:20} {len(got['lift']):5d} {statistics.fmean(got['notes']):5.1f} "
              f"{statistics.fmean(got['call']):5.2f} {statistics.fmean(got['other']):5.2f} "
              f"{statistics.fmean(got['lift']):5.2f} {statistics.fmean(got['triad']):5.2f} "
              f"{max(got['run']):4.0f} {max(got['exact']):5.0f}")
    print("develop, lift by plan:", ", ".join(
        f"{k or '-'} {statistics.fmean(v):.2f} ({len(v)})" for k, v in sorted(by_plan.items())))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpora", nargs="+", default=["oneill-1850", "bach-chorales"])
    parser.add_argument("--root", type=Path, default=REPO / "corpora", help="built corpora")
    parser.add_argument("--split", default="valid", choices=("train", "valid"),
                        help="never the test split: it is kept for bench/band_judge.py")
    args = parser.parse_args(argv)
    for corpus in args.corpora:
        measure(corpus, args.seed, args.root, args.split)


if __name__ == "__main__":
    main()
