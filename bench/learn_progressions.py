"""Learn agent/listen/progressions.json: which half-bar triad follows which, from the training
splits of the corpora (never the valid or test splits).

For every training work, its players' notes (the top voice and, in a work of several voices, the
lowest: the two players agent.record.rehearsal makes of it) are cut into half bars (two per bar
when the bar has an even number of main beats: 4/4, 2/4, 2/2, 6/8, 12/8; else one: 3/4, 9/8);
each half bar's triad is the one holding the most note-time (agent.listen.progression.triad_of,
the bass breaking ties). Triads are counted relative to the work's key as the agent would hear it
(agent.listen.harmony.estimate_key over the whole work), per mode, per place in the bar (the half
bar that starts a bar, or not), after the previous half bar's triad (or after silence). The
table holds raw counts; the loader adds `smoothing` to every cell.

    .venv/bin/python bench/learn_progressions.py            write the table (a few seconds)
    .venv/bin/python bench/learn_progressions.py --check    exit 1 unless the file holds it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from _common import REPO, heading

from agent.config import metre_of
from agent.listen.harmony import estimate_key, key_evidence
from agent.listen.progression import (
    START,
    TABLE_FILE,
    half_bars_per_bar,
    relative_triad,
    triad_of,
    weights_in,
)
from agent.model.corpus import Work, load_corpus, read_manifest
from agent.record.rehearsal import parse_time_signature

CORPORA = ("bach-chorales", "oneill-1850")
SMOOTHING = 0.5
SCALE = 1_000_000  # beats -> integer units for weights_in


def half_bar_triads(work: Work, halves: int, scale: frozenset[int]) -> list[int | None]:
    voices = [int(work.voice.min()), int(work.voice.max())]
    mask = np.isin(work.voice, voices)
    notes = [(int(p), round(o * SCALE), round((o + d) * SCALE)) for o, d, p in zip(
        work.onset[mask].tolist(), work.duration[mask].tolist(), work.pitch[mask].tolist(),
        strict=True)]
    half = work.bar_beats / halves
    start = float(np.floor(work.onset.min() / work.bar_beats) * work.bar_beats)
    end = float((work.onset + work.duration).max())
    out: list[int | None] = []
    t = start
    while t < end - 1e-9:
        a, b = round(t * SCALE), round((t + half) * SCALE)
        inside = [n for n in notes if n[1] < b and n[2] > a]
        out.append(triad_of(weights_in(inside, a, b), min((n[0] for n in inside), default=None),
                            scale))
        t += half
    return out


def learn(root: Path = REPO / "corpora") -> dict[str, object]:
    counts: dict[str, dict[str, defaultdict[int, Counter[int]]]] = {
        mode: {place: defaultdict(Counter) for place in ("downbeat", "mid-bar")}
        for mode in ("major", "minor")}
    works_used = 0
    for name in CORPORA:
        corpus = load_corpus(root / name)
        metres = {str(e["id"]): parse_time_signature(e.get("time_signature"))
                  for e in read_manifest(root / name)["works"]}
        for work in sorted(corpus.split("train"), key=lambda w: w.id):
            key = estimate_key(key_evidence(work.pitch, work.onset, work.duration))
            if key is None:
                continue
            works_used += 1
            halves = half_bars_per_bar(metre_of(*metres.get(work.id, (4, 4)))[0])
            prev = START
            for i, triad in enumerate(half_bar_triads(work, halves, key.scale)):
                if triad is None:
                    prev = START
                    continue
                place = "downbeat" if i % halves == 0 else "mid-bar"
                rel = relative_triad(triad, key.tonic)
                counts[key.mode][place][prev][rel] += 1
                prev = rel
    return {"source": f"training splits of {', '.join(CORPORA)} ({works_used} works)",
            "smoothing": SMOOTHING,
            "counts": {mode: {place: {str(prev): {str(n): c for n, c in sorted(row.items())}
                                      for prev, row in sorted(rows.items())}
                              for place, rows in places.items()}
                       for mode, places in counts.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--root", type=Path, default=REPO / "corpora", help="built corpora")
    ap.add_argument("--out", type=Path, default=TABLE_FILE)
    args = ap.parse_args(argv)
    text = json.dumps(learn(args.root), sort_keys=True, separators=(",", ":")) + "\n"
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out.name} is up to date" if same else f"{args.out.name} differs")
        return 0 if same else 1
    args.out.write_text(text)
    heading(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
