"""Key accuracy of agent/listen/harmony.py on the corpora, against the key given in the source.

For each corpus and split, and each key model (the default, learned from the training splits by
bench/learn_key_profiles.py, and the published profiles it replaced as default): the estimate from
the whole piece (no decay), from its first N bars only (what a live listener knows early), and as
the live pipeline holds it at the end of the piece played at 100 BPM (key profile with a 30 s
half-life, notes fed as they end), scored four ways:

  strict     the estimate names the source key; a modal tune (O'Neill: "D mixolydian") is never
             right, since the estimator names only major and minor keys.
  lenient    a modal tune counts as its tonic's major or minor by its third: ionian, lydian,
             mixolydian -> major; dorian, phrygian, aeolian, locrian -> minor. The tonic (where the
             tune rests) and its chord are what a player must match. Else as strict, so for the
             chorales (no modal labels) strict and lenient agree. This is the headline.
  signature  the estimate has the source key's key signature (relative major/minor counts).
  ends       not against the source: the estimate's tonic is the piece's last lowest note,
             where most pieces end. A chorale's source key is its key signature's major or minor
             (the encoder's mode flag), which a modal chorale or one notated with an old "Dorian"
             signature (C minor with two flats, labelled G minor) does not end on; the label
             breakdown printed per split shows how many, and bounds what any estimator of the key
             heard can score strictly.

Works whose source gives no mode (key None) are skipped and counted. Peer in the same run, on the
valid and test splits, scored the same way: music21's own key analysis (`Stream.analyze` with
'key', which is music21's Aarden-Essen weighting, and with 'krumhansl') on a stream built from the
same notes, each timed per piece against ours (evidence + estimate, default model and Temperley).

Chord sanity on the chorales' valid and test splits: at each beat where bass and soprano sound,
the chord estimated at the end of the beat from a half-beat half-life profile (the bass pitch as
tie-breaker): the share of beats whose chord contains the bass note, the soprano note, both, and
whose root is the bass note.

    .venv/bin/python bench/key_accuracy.py [--bars 4] [--no-music21]   (about 1 minute)
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, Summary, heading, show, show_ratio

from agent.listen.harmony import (
    DEFAULT_PROFILES,
    PROFILES,
    SCALES,
    estimate_chord,
    estimate_key,
    key_evidence,
    profile_of,
)
from agent.model.corpus import SPLITS, Work, load_corpus

CORPORA = ("bach-chorales", "oneill-1850")
PEER_SPLITS = ("valid", "test")
OLD_DEFAULT = "temperley"  # the default before the learned model
# The live pipeline's key profile: half-life KEY_HALF_LIFE_S (30 s), read at the end of a piece
# played at LIVE_BPM; in beats, the half-life is 30 s * LIVE_BPM / 60.
LIVE_BPM = 100.0
LIVE_HALF_LIFE_BEATS = 30.0 * LIVE_BPM / 60.0
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Mode -> (major or minor by its third, scale degrees above the tonic).
MODES = {"major": ("major", SCALES["major"]), "minor": ("minor", SCALES["minor"]),
          "ionian": ("major", (0, 2, 4, 5, 7, 9, 11)), "lydian": ("major", (0, 2, 4, 6, 7, 9, 11)),
          "mixolydian": ("major", (0, 2, 4, 5, 7, 9, 10)),
          "aeolian": ("minor", (0, 2, 3, 5, 7, 8, 10)), "dorian": ("minor", (0, 2, 3, 5, 7, 9, 10)),
          "phrygian": ("minor", (0, 1, 3, 5, 7, 8, 10)),
          "locrian": ("minor", (0, 1, 3, 5, 6, 8, 10))}

Notes = tuple[np.ndarray, np.ndarray, np.ndarray]  # pitch, onset, duration
Guess = tuple[int, str] | None  # (tonic pitch class, "major" | "minor")


def parse_key(name: str) -> tuple[int, str]:
    """"F# minor" -> (6, "minor"); the mode as written ("D mixolydian" -> (2, "mixolydian"))."""
    tonic, mode = name.split()
    pc = _LETTERS[tonic[0].upper()] + tonic.count("#") - tonic[1:].count("b")
    return pc % 12, mode.lower()


def score(source: str, guess: Guess) -> tuple[bool, bool, bool]:
    """(strict, lenient, signature) correctness of a guess for the source key."""
    if guess is None:
        return False, False, False
    tonic, mode = parse_key(source)
    third, degrees = MODES[mode]
    scale = {(tonic + d) % 12 for d in degrees}
    guessed_scale = {(guess[0] + d) % 12 for d in SCALES[guess[1]]}
    return guess == (tonic, mode), guess == (tonic, third), guessed_scale == scale


def excerpt(work: Work, bars: int | None) -> Notes:
    """The whole work, or its first `bars` bars with notes cut at the bar line."""
    if bars is None:
        return work.pitch, work.onset, work.duration
    end = bars * work.bar_beats
    keep = work.onset < end
    onset = work.onset[keep]
    return work.pitch[keep], onset, np.minimum(onset + work.duration[keep], end) - onset


def ours(profiles: str, half_life: float = math.inf) -> Callable[[Notes], Guess]:
    def guess(notes: Notes) -> Guess:
        est = estimate_key(key_evidence(*notes, half_life=half_life), profiles)
        return None if est is None else (est.tonic, est.mode)
    return guess


def music21_stream(notes: Notes) -> Any:
    from music21 import note, stream
    s: Any = stream.Stream()
    for p, o, d in zip(*(a.tolist() for a in notes), strict=True):
        n = note.Note(midi=p)
        n.quarterLength = d
        s.coreInsert(o, n)
    s.coreElementsChanged()
    return s


def music21_key(method: str) -> Callable[[Any], Guess]:
    def guess(s: Any) -> Guess:
        k = s.analyze(method)
        return None if k is None else (int(k.tonic.pitchClass), str(k.mode))
    return guess


def last_lowest(work: Work) -> int:
    """Pitch class of the last note of the lowest voice (the bass; a tune's melody)."""
    return int(work.pitch[work.voice == work.voice.max()][-1]) % 12


class Tally:
    def __init__(self) -> None:
        self.n = 0
        self.ok = np.zeros(4, dtype=np.int64)  # strict, lenient, signature, ends

    def add(self, work: Work, guess: Guess) -> None:
        self.n += 1
        ends = guess is not None and guess[0] == last_lowest(work)
        self.ok += (*score(str(work.key), guess), ends)

    def __str__(self) -> str:
        pct = 100 * self.ok / max(self.n, 1)
        return f"{self.ok[1]:4d}/{self.n:<4d}" + "".join(f"{p:6.1f}" for p in pct)


HEAD = "lenient  strict lenient  sig  ends"


def key_table(works: dict[str, list[Work]], bars: int) -> None:
    spans: list[tuple[str, int | None, float]] = [
        ("whole piece", None, math.inf), (f"first {bars} bars", bars, math.inf),
        (f"live ({LIVE_BPM:.0f} BPM)", None, LIVE_HALF_LIFE_BEATS)]
    print(f"  {'':<18} {'':<6}" + "".join(f" {label:<35}" for label, _, _ in spans))
    print(f"  {'model':<18} {'split':<6}" + f" {HEAD:<35}" * len(spans))
    for profiles in [DEFAULT_PROFILES, *(p for p in PROFILES if p != DEFAULT_PROFILES)]:
        for split, ws in works.items():
            cells = []
            for _, span, half_life in spans:
                guess, tally = ours(profiles, half_life), Tally()
                for w in ws:
                    tally.add(w, guess(excerpt(w, span)))
                cells.append(f" {tally!s:<35}")
            print(f"  {profiles:<18} {split:<6}" + "".join(cells))


def peer(works: list[Work], bars: int) -> None:
    """music21's analyses and ours on the same pieces, timed per piece."""
    ours_label = f"ours ({DEFAULT_PROFILES})"
    old_label = f"ours ({OLD_DEFAULT})"
    for span in (None, bars):
        print(f"  {'whole piece' if span is None else f'first {bars} bars':<32} {HEAD}")
        tallies: dict[str, Tally] = {}
        times: dict[str, list[float]] = {}
        build: list[float] = []
        for w in works:
            notes = excerpt(w, span)
            t0 = time.perf_counter_ns()
            stream = music21_stream(notes)
            build.append(time.perf_counter_ns() - t0)
            for label, fn, arg in ((ours_label, ours(DEFAULT_PROFILES), notes),
                                   (old_label, ours(OLD_DEFAULT), notes),
                                   ("music21 'key' (Aarden-Essen)", music21_key("key"), stream),
                                   ("music21 'krumhansl'", music21_key("krumhansl"), stream)):
                t0 = time.perf_counter_ns()
                guess = fn(arg)
                times.setdefault(label, []).append(time.perf_counter_ns() - t0)
                tallies.setdefault(label, Tally()).add(w, guess)
        for label, tally in tallies.items():
            print(f"    {label:<30} {tally}")
        for label, t in times.items():
            show(f"time per piece, {label[:20]}", t, unit="ms")
        show("(music21 stream build, not counted)", build, unit="ms")
        base = tallies[ours_label]
        for label in list(tallies)[2:]:
            show_ratio(f"p50 time, {label[:24]}", Summary.of(times[label]).p50,
                       Summary.of(times[ours_label]).p50, "music21 / ours")
            show_ratio(f"lenient accuracy, {label[:16]}", float(tallies[label].ok[1]),
                       float(base.ok[1]), "music21 / ours")


def label_breakdown(works: list[Work]) -> str:
    """Where the last bass/melody note lies above the source tonic: 0 for most pieces; a
    fourth (+5) when a minor piece is labelled by an old Dorian signature; +7 when it ends on
    the dominant (a Phrygian close) or is modal."""
    above = Counter((last_lowest(w) - parse_key(str(w.key))[0]) % 12 for w in works)
    return ("last bass/melody note above the source tonic: "
            + ", ".join(f"+{k} in {c}" for k, c in above.most_common()))


def chord_sanity(works: list[Work], half_life: float = 0.5) -> None:
    counts: Counter[str] = Counter()
    qualities: Counter[str] = Counter()
    for w in works:
        end = w.onset + w.duration
        for beat in range(int(np.ceil(end.max()))):
            sounding = (w.onset <= beat) & (end > beat)
            bass = w.pitch[sounding & (w.voice == 3)]
            soprano = w.pitch[sounding & (w.voice == 0)]
            if not bass.size or not soprano.size:
                continue
            chord = estimate_chord(profile_of(w.pitch, w.onset, w.duration, at=beat + 1.0,
                                              half_life=half_life), bass=int(bass.min()))
            assert chord is not None
            b, s = int(bass.min()) % 12, int(soprano.max()) % 12
            pcs = chord.pitch_classes
            counts.update(beats=1, bass=int(b in pcs), soprano=int(s in pcs),
                          both=int(b in pcs and s in pcs), root=int(chord.root == b))
            qualities[chord.quality] += 1
    n = counts["beats"]
    print(f"  {len(works)} chorales, {n} beats with bass and soprano sounding "
          f"(half-life {half_life} beat, estimated at the end of each beat)")
    for k, what in (("bass", "chord contains the bass note"),
                    ("soprano", "chord contains the soprano note"),
                    ("both", "chord contains both"), ("root", "chord's root is the bass note")):
        print(f"    {what:<34} {counts[k]:6d}  {100 * counts[k] / n:5.1f}%")
    print("    qualities: " + ", ".join(f"{q} {100 * c / n:.1f}%"
                                         for q, c in qualities.most_common()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=4)
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora")
    ap.add_argument("--no-music21", action="store_true", help="skip the music21 peer")
    args = ap.parse_args()
    for name in CORPORA:
        corpus = load_corpus(args.corpora / name)
        works = {s: [w for w in corpus.split(s) if w.key is not None] for s in SPLITS}
        heading(f"{name}: key accuracy against the source key (default: {DEFAULT_PROFILES})")
        modal = Counter(str(w.key) for w in corpus.works
                        if w.key and parse_key(w.key)[1] not in ("major", "minor"))
        print(f"  {len(corpus.works)} works, no mode in the source (skipped): "
              f"{sum(w.key is None for w in corpus.works)}; modal: {sum(modal.values())} "
              f"({', '.join(f'{k} {c}' for k, c in modal.most_common())})")
        for s, ws in works.items():
            n_modal = sum(w.key in modal for w in ws)
            print(f"  {s}: {len(ws)} works ({n_modal} modal); {label_breakdown(ws)}")
        key_table(works, args.bars)
        if not args.no_music21:
            peer_works = [w for s in PEER_SPLITS for w in works[s]]
            heading(f"{name}: music21 peer on {' + '.join(PEER_SPLITS)} ({len(peer_works)})")
            peer(peer_works, args.bars)
        if name == "bach-chorales":
            heading("bach-chorales: chord sanity on valid + test")
            chord_sanity([w for s in PEER_SPLITS for w in corpus.split(s)])


if __name__ == "__main__":
    main()
