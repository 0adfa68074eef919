"""The agent as a band member, judged from outside (agent.record.judge*), next to baselines.

Material, never tuned on: the test split of both corpora (the first `--pieces` O'Neill tunes,
played twice round, and `--chorales` chorales), made into humanised rehearsals
(agent.record.rehearsal) at varied tempos (piece by piece: its own, 90, 160 BPM), in versions:
- as given (a tune is one player; a chorale its soprano and bass): modes accompany and auto;
- call and response (every second 4-bar phrase silent, the time line kept): call-response,
  mirror and auto; the harmony reference is the whole version, so an answer in a silent phrase
  is judged against what the tune does there;
- a chorale's four voices as four players (the multi-part figures): accompany and auto;
plus the shipped pieces (performances/demo, performances/chorale) with their own config and in
auto mode, judged on a grid estimated with hindsight (judge_grid), the players as reference.

Each run replays the rehearsal through the agent (models/demo.pt, the corpus's style) on the
manual clock; the judge reads the log: the agent's comp and answer notes against the players'
notes, on the rehearsal's true beat grid (from how it was made). Baselines made by the judge in
the same run from the same grid, key and players: a static tonic triad on every beat, random
in-key notes on the 8th grid, the call echoed a diatonic third up, random in-key eighths in the
rests on the beat kept from before each rest (the ceiling for answers on the beat without
hindsight), and the players' own line scored as a comp. Per material and mode the figures are
pooled over pieces (shares: the mean of the pieces'; counts: the sum; copies: the maximum) and
printed beside each baseline and the target (issue 13). Also: the longest run of an answer
found in the model's corpus, and the hindsight beat tracker against the true beats (share of
true beats within 25 ms).

    .venv/bin/python bench/band_judge.py [--pieces 6] [--chorales 4] [--split test]
        [--seed 2026] [--quick] [--corpora DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import MODEL, REPO, corpus_config, heading, piece_config

from agent.config import Config
from agent.model.checkpoint import load
from agent.model.corpus import Work, load_corpus
from agent.model.originality import CorpusIndex
from agent.record.judge import Grid, Note, grid_of
from agent.record.judge_grid import beats_found, estimate_beats
from agent.record.judge_log import (
    ROWS,
    Verdict,
    agent_notes,
    judge_log,
    player_notes,
    shown,
    value_of,
)
from agent.record.log import read_log
from agent.record.rehearsal import (
    LEAD_IN_BEATS,
    Played,
    beat_length,
    metres_of,
    perform_timed,
    to_smf,
    work_rng,
)
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME

CORPORA = ("oneill-1850", "bach-chorales")  # the style is the corpus's name
TEMPOS = (None, 90.0, 160.0)  # piece by piece: its own tempo, then these
ROUNDS = {"oneill-1850": 2, "bach-chorales": 1}  # fiddle tunes go round
VERSIONS = {"as given": ("accompany", "auto"),
            "call and response": ("call-response", "mirror", "auto"),
            "four voices": ("accompany", "auto")}
PIECES = {"demo": REPO / "performances" / "demo", "chorale": REPO / "performances" / "chorale"}
COLUMNS = ("agent", "static-triad", "random-in-key", "call-echo", "kept-time", "players")


@dataclass(frozen=True)
class Material:
    group: str  # what the pooled table is about
    name: str
    path: Path  # the rehearsal's MIDI file
    style: str | None  # None: a shipped piece with its own config
    grid: Grid | None  # the true grid; None: estimated with hindsight
    reference: list[Note] | None  # the whole version's notes, for call and response
    true_beats: np.ndarray | None


def rounds(work: Work, times: int) -> Work:
    """The work played `times` times round, back to back (each round whole bars long)."""
    length = np.ceil(float((work.onset + work.duration).max()) / work.bar_beats) * work.bar_beats
    start = np.floor(float(work.onset.min()) / work.bar_beats) * work.bar_beats
    span = length - start
    return dataclasses.replace(
        work, onset=np.concatenate([work.onset + k * span for k in range(times)]),
        **{f: np.concatenate([getattr(work, f)] * times)
           for f in ("duration", "pitch", "velocity", "voice")})


def notes_of(parts: dict[str, list[Played]]) -> list[Note]:
    return [Note(p.onset_s, p.onset_s + p.duration_s, p.pitch, name, p.velocity)
            for name, played in parts.items() for p in played]


def corpus_material(root: Path, corpus: str, split: str, count: int, seed: int,
                    out: Path) -> list[Material]:
    metres = metres_of(root / corpus)
    works = sorted(load_corpus(root / corpus).split(split), key=lambda w: w.id)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i, written in enumerate(works[:count]):
        work = rounds(written, ROUNDS[corpus])
        metre, bpm = metres.get(work.id, (4, 4)), TEMPOS[i % len(TEMPOS)]
        tempo = bpm or work.bpm
        versions = ["as given", "call and response"]
        if corpus == "bach-chorales":
            versions.append("four voices")
        whole: list[Note] = []
        for version in versions:
            parts, timeline = perform_timed(
                work, work_rng(seed, work.id), bpm=bpm, time_signature=metre,
                silent_phrases=version == "call and response",
                every_voice=version == "four voices")
            notes = notes_of(parts)
            whole = notes if version == "as given" else whole
            beats = timeline.beat_times(max(n.end for n in notes) + 2 * timeline.beat_s)
            grid = grid_of(beats, work.bar_beats, LEAD_IN_BEATS, beat_length(*metre))
            path = out / f"{work.id}-{version.replace(' ', '-')}.mid"
            to_smf(parts, tempo, time_signature=metre).save(path)
            made.append(Material(f"{corpus}, {version}", f"{work.id} {metre[0]}/{metre[1]} "
                                 f"{tempo:g} BPM", path, corpus, grid,
                                 whole if version == "call and response" else None, beats))
    return made


def config_for(material: Material, mode: str) -> Config:
    if material.style is None:
        return piece_config(material.path.parent / "performance.toml",
                            None if mode == "own" else mode)
    recording = load_recording(material.path)
    return corpus_config(recording.player_names, mode, material.style,
                         recording.time_signature or (4, 4))


@dataclass(frozen=True)
class Run:
    verdict: Verdict
    corpus_copy: int | None  # longest run of an answer's pitches found in the model's corpus
    beats_found: float | None  # the hindsight tracker against the true beats


def run(material: Material, mode: str, out: Path, corpus: CorpusIndex) -> Run | None:
    rec = load_recording(material.path)
    replay_fast(rec, fit_config(rec, config_for(material, mode)), out, "band-judge")
    header, records = read_log(out / LOG_NAME)
    verdict = judge_log(header, records, material.grid, material.reference)
    if verdict is None:
        return None
    players = player_notes(records)
    answers = [n for n in agent_notes(records, header["config"]["agent"]["outputs"][0])
               if n.who == "answer"]
    # In playing order across answers: a run spanning two answers can only over-report a copy.
    copy = corpus.longest_shared_run([n.pitch for n in answers]) if len(answers) > 1 else None
    found = None
    if material.true_beats is not None:
        start, end = min(n.onset for n in players), max(n.end for n in players)
        true = material.true_beats[(material.true_beats >= start - 0.05)
                                   & (material.true_beats <= end)]
        found = beats_found(estimate_beats(players), true)
    return Run(verdict, copy, found)


def pooled(runs: Sequence[Run], column: int, part: str, field: str) -> float | int | None:
    values = [v for r in runs
              if (v := value_of((r.verdict.agent, *r.verdict.baselines)[column], part, field))
              is not None]
    if not values:
        return None
    if field in ("notes", "answers", "rests"):
        return int(sum(values))
    if field == "copy_from_call":
        return int(max(values))
    return float(np.mean(values))


def table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def report(group: str, mode: str, runs: Sequence[Run], names: Sequence[str]) -> None:
    heading(f"{group} | {mode} | {len(runs)} pieces: {', '.join(names)}")
    rows: list[tuple[str, ...]] = [("figure", *COLUMNS, "target")]
    for label, part, field, target in ROWS:
        values = [pooled(runs, c, part, field) for c in range(len(COLUMNS))]
        if any(v is not None for v in values):
            rows.append((label, *(shown(v) for v in values), target))
    copies = [r.corpus_copy for r in runs if r.corpus_copy is not None]
    rows.append(("longest copy of the corpus (notes)", shown(max(copies) if copies else None),
                 *("-" * (len(COLUMNS) - 1)), "<= 12"))
    dissonance = [r.verdict.players_dissonance for r in runs
                  if r.verdict.players_dissonance is not None]
    table(rows)
    keys = ", ".join(sorted({r.verdict.key.name() for r in runs}))
    print(f"  judge's keys: {keys}"
          + (f"; players' dissonant onsets against each other {np.mean(dissonance):.2f}"
             if dissonance else ""))
    found = [r.beats_found for r in runs if r.beats_found is not None]
    if found:
        print(f"  hindsight beat tracker: true beats found within 25 ms, per piece "
              f"{' '.join(f'{f:.2f}' for f in found)} (mean {np.mean(found):.2f})")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=6, help="O'Neill test tunes")
    ap.add_argument("--chorales", type=int, default=4, help="chorales of the test split")
    ap.add_argument("--split", default="test", choices=("train", "valid", "test"))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: one tune, as given and call and response, no pieces")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora", help="built corpora")
    args = ap.parse_args(argv)
    if args.quick:
        args.pieces, args.chorales = 1, 0
    started = time.perf_counter()
    index = CorpusIndex(load(MODEL).corpus_lines)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.out or Path(tmp_name)
        material = [m for corpus, count in zip(CORPORA, (args.pieces, args.chorales),
                                               strict=True)
                    if count > 0
                    for m in corpus_material(args.corpora, corpus, args.split, count, args.seed,
                                             tmp / corpus)]
        if not args.quick:
            material += [Material(f"the {name} piece", name, folder / "rehearsal.mid", None,
                                  None, None, None) for name, folder in PIECES.items()]
        results: dict[tuple[str, str], list[Run]] = defaultdict(list)
        names: dict[tuple[str, str], list[str]] = defaultdict(list)
        for i, m in enumerate(material):
            version = m.group.split(", ")[-1]
            modes = VERSIONS.get(version, ("own", "auto"))
            for mode in modes:
                result = run(m, mode, tmp / f"run-{i}-{mode}", index)
                if result is not None:
                    results[(m.group, mode)].append(result)
                    names[(m.group, mode)].append(m.name)
        for (group, mode), runs in results.items():
            report(group, mode, runs, names[(group, mode)])
    print(f"\n  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
