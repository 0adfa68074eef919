"""Issue 15's bench, side by side in one run: a musician's own folder becomes a corpus and a
fine-tuned style, and the style is heard.

1. The folder: bench/style_folder.py writes ~96 Monteverdi madrigal pieces (a style the shipped
   model has never heard), played like a human, with a real folder's junk.
2. Import: `stage-agent corpus import FOLDER --name monteverdi --root ROOT` (a subprocess, as a
   user runs it): files/s (the MIDI-named files over the command's wall time less that of
   `stage-agent corpus list`, the same interpreter and imports doing nothing), whether every
   junk file is named in its output (with the lines naming it), works and notes in, and how
   many madrigals have one half in the test split and the other in train (the pieces are
   halves of 48 madrigals: what the import's split does with them).
3. Fine-tune: `stage-agent train CORPUS --init models/demo.pt --freeze core|none --out DIR
   --minutes M`, and from scratch on the same corpus (`stage-agent train CORPUS --out DIR
   --minutes 10`): time to the best validation (the checkpoint's own record) and wall time.
4. Held-out pitch bits per note on the new corpus's test split (agent.model.heldout, the figure
   `stage-agent eval` prints): the base model (its styles blended evenly, and each alone), core,
   none, scratch; and the old styles' test splits before and after fine-tuning.
5. The style is heard (bench/_style_replays.py, agent.record.style_match): (a) the measure's own
   check on what ships: held-out chorales replayed in solo mode with models/demo.pt in the
   chorale style and in the O'Neill style, against both corpora; (b) held-out pieces of the new
   corpus (its test and validation splits: a corpus of ~100 works has ~10 test works, and the
   validation works only chose the epoch) with the base model in each base style and with the
   fine-tuned models in the new style, against the new corpus. Each setting also with
   `[respond] beat_lock = 0`: the default beat lock puts every onset on an eighth of its own, so
   a chord the model proposes (chorales and madrigals are chords) is played as an arpeggio, which
   the interval histogram hears as leaps.
6. Velocity: the agent's velocities in (5b) against the corpus's.
Last, every step's headline figure with its target, side by side.

Steps 2-4, 5b and 6 need `stage-agent corpus import` and `stage-agent train --init/--freeze`
(issue 15's other branches); where the installed CLI lacks them the step says "needs ..." and
is left out, the rest runs. Exit 1 when a step that could run failed.

    .venv/bin/python bench/own_style.py [--quick] [--out DIR] [--madrigals 48] [--seed 15]
        [--finetune-minutes 5] [--scratch-minutes 10] [--pieces N] [--check-pieces N]
        [--corpora DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import MODEL, REPO, heading
from _style_replays import (
    PieceRun,
    Setting,
    corpus_histograms,
    distance_row,
    make_rehearsals,
    paired,
    pooled,
    solo_runs,
    velocity_figures,
)
from style_folder import Folder, make_folder

from agent.model import checkpoint
from agent.model.corpus import Corpus, load_corpus
from agent.model.heldout import heldout_bits, scored
from agent.record.rehearsal import metres_of

NAME = "monteverdi"
CHECK_STYLES = ("bach-chorales", "oneill-1850")  # (a): the held-out pieces are the first's
NEEDS_IMPORT = "needs `stage-agent corpus import` (issue 15, not in this checkout yet)"
NEEDS_INIT = "needs `stage-agent train --init --freeze` (issue 15, not in this checkout yet)"


@dataclass(frozen=True)
class Done:
    code: int
    output: str  # stdout and stderr
    seconds: float


def stage_agent(*args: str, timeout_s: float = 3600) -> Done:
    """`python -m agent.cli ARGS` with this checkout's code first on the path."""
    path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    return Done(done.returncode, done.stdout + done.stderr, time.perf_counter() - started)


def supports(*args: str, needles: Sequence[str] = ()) -> bool:
    done = stage_agent(*args, "--help", timeout_s=120)
    return done.code == 0 and all(n in done.output for n in needles)


# --- 1, 2: the folder and its import ----------------------------------------------------------

def folder_step(out: Path, seed: int, madrigals: int | None) -> Folder:
    heading("1. the folder (bench/style_folder.py)")
    started = time.perf_counter()
    folder = make_folder(out, seed, madrigals)
    p = folder.pieces
    print(f"  {len(p)} pieces from {len({f.madrigal for f in p})} madrigals, "
          f"{sum(f.notes for f in p)} notes, {len(folder.junk)} junk files, "
          f"{len(folder.not_midi)} not MIDI by name ({time.perf_counter() - started:.1f} s)")
    return folder


def import_step(folder: Folder, source: Path, root: Path, said: list[str]) -> Corpus | None:
    """The imported corpus; None when the import failed (the CLI has it: checked before)."""
    heading("2. import: stage-agent corpus import")
    midi_files = len(folder.pieces) + len(folder.junk)
    idle = stage_agent("corpus", "list", "--root", str(root))
    done = stage_agent("corpus", "import", str(source), "--name", NAME, "--root", str(root),
                       "--licence", "bench material: Monteverdi (public domain), encodings "
                       "from music21's corpus")
    print("  " + "\n  ".join(done.output.strip().splitlines()[-12:]))
    work = max(done.seconds - idle.seconds, 1e-3)
    print(f"  exit {done.code}; {midi_files} MIDI-named files in {done.seconds:.2f} s wall, "
          f"{idle.seconds:.2f} s of it the CLI's start (`corpus list`): "
          f"{midi_files / work:.0f} files/s (target >= 100)")
    lines = done.output.splitlines()
    named = 0
    for name, why in folder.junk:
        naming = [ln.strip() for ln in lines if Path(name).name in ln]
        named += bool(naming)
        print(f"  junk {name} ({why}): " + (" | ".join(naming)[:160] if naming else "NOT NAMED"))
    print(f"  junk named: {named}/{len(folder.junk)}")
    said.append(f"import: exit {done.code}, {midi_files / work:.0f} files/s (target >= 100), "
                f"junk named {named}/{len(folder.junk)}")
    if done.code != 0:
        return None
    corpus = load_corpus(root / NAME)
    notes = sum(len(w.pitch) for w in corpus.works)
    splits = {s: len(corpus.split(s)) for s in ("train", "valid", "test")}
    print(f"  {len(corpus.works)} works ({splits}), {notes} notes in; {len(folder.pieces)} "
          f"pieces were written")
    print(f"  madrigals with a half in test and the other in train: {leaks(root / NAME)}")
    return corpus


def leaks(corpus_dir: Path) -> str:
    """How many madrigals have one half in the test split and the other in train (read from the
    manifest's per-work entries, whatever field holds the source file's name)."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
    halves: dict[str, set[str]] = {}
    for entry in manifest["works"]:
        found = re.search(r"(Libro \w+, \d+) - (prima|seconda) parte", json.dumps(entry))
        if found:
            halves.setdefault(found[1], set()).add(str(entry["split"]))
    split = sum({"test", "train"} <= s for s in halves.values())
    return f"{split} of {len(halves)}"


# --- 3, 4: training and held-out bits ---------------------------------------------------------

def train_step(corpus: Corpus, out: Path, finetune_min: float, scratch_min: float,
               rehearse: Sequence[Corpus], said: list[str]) -> dict[str, Path]:
    """The fine-tunes are given the shipped corpora too, as README "Fine-tuning" says to: they
    rehearse the old styles (and measure them before and after) while learning the new one."""
    heading("3. fine-tune from models/demo.pt (--freeze core, none) and from scratch")
    made: dict[str, Path] = {}
    runs = [("scratch", ["train", str(corpus.path), "--out", str(out / "scratch"), "--minutes",
                         f"{scratch_min:g}"])]
    if supports("train", needles=("--init", "--freeze")):
        old = [str(c.path) for c in rehearse]
        runs = [(f, ["train", str(corpus.path), *old, "--init", str(MODEL), "--freeze", f,
                     "--out", str(out / f), "--minutes", f"{finetune_min:g}"])
                for f in ("core", "none")] + runs
    else:
        print(f"  core, none: {NEEDS_INIT}")
    for label, args in runs:
        done = stage_agent(*args)
        best = out / label / "best.pt"
        if done.code != 0 or not best.is_file():
            print(f"  {label}: FAILED (exit {done.code}): {done.output.strip()[-600:]}")
            said.append(f"{label}: FAILED")
            continue
        train = checkpoint.load(best).train
        print(f"  {label}: best validation {figure(train.get('best_valid_bits'), '.3f')} "
              f"bits/event after {figure(train.get('seconds_to_best'), '.0f')} s (epoch "
              f"{train.get('best_epoch')}); {done.seconds:.0f} s wall (target for core/none: "
              "best within 300 s, goal 180)")
        said.append(f"{label}: best validation after {figure(train.get('seconds_to_best'), '.0f')}"
                    f" s" + ("" if label == "scratch" else " (target <= 300, goal 180)"))
        made[label] = best
    return made


def figure(value: object, spec: str) -> str:
    """A number from a checkpoint's record as `spec` formats it; what is not one as it is."""
    return format(value, spec) if isinstance(value, int | float) else str(value)


def pitch_bits(path: Path, corpus: Corpus, style: str | None) -> float:
    """Held-out pitch bits per note on the corpus's test split, in `style` (None: the model's
    styles blended evenly)."""
    ckpt = checkpoint.load(path)
    if style is None:
        n = len(ckpt.styles)
        return heldout_bits(ckpt.net, scored(corpus.split("test"), 0),
                            style=torch.full((n,), 1.0 / n)).pitch_bits_per_note
    return heldout_bits(ckpt.net, scored(corpus.split("test"), ckpt.styles.index(style))
                        ).pitch_bits_per_note


def bits_step(corpus: Corpus, models: dict[str, Path], old: Sequence[Corpus],
              said: list[str]) -> None:
    heading(f"4. held-out pitch bits per note, {corpus.name} test split "
            f"({len(corpus.split('test'))} works)")
    base = {"base, styles blended evenly": pitch_bits(MODEL, corpus, None)}
    base |= {f"base, style {s}": pitch_bits(MODEL, corpus, s) for s in CHECK_STYLES}
    for label, bits in base.items():
        print(f"  {label:<34} {bits:.3f}")
    best_base = min(base.values())
    scratch = (pitch_bits(models["scratch"], corpus, corpus.name) if "scratch" in models
               else None)
    for label, path in models.items():
        bits = pitch_bits(path, corpus, corpus.name)
        vs = f"{bits - best_base:+.3f} vs the best base (target <= -0.5)"
        if scratch is not None and label != "scratch":
            vs += f", {bits - scratch:+.3f} vs scratch (target <= +0.1)"
        print(f"  {label + ', style ' + corpus.name:<34} {bits:.3f}   {vs}")
        said.append(f"pitch bits, {corpus.name}: {label} {bits:.3f}: {vs}")
    for c in old:
        before = pitch_bits(MODEL, c, c.name)
        tuned = {label: pitch_bits(p, c, c.name) for label, p in models.items()
                 if label != "scratch"}
        after = " ".join(f"{label} {bits:.3f} ({bits - before:+.3f})"
                         for label, bits in tuned.items())
        print(f"  old style {c.name}: base {before:.3f}; after: {after or '-'} "
              f"(target: at most +0.1)")
        said.append(f"pitch bits, {c.name}: base {before:.3f}, after {after or '-'} "
                    f"(target: at most +0.1)")


# --- 5, 6: the style is heard, velocity -------------------------------------------------------

def heard(title: str, held_out: Corpus, splits: Sequence[str], settings: Sequence[Setting],
          pairs: Sequence[tuple[Setting, Setting]], references: Sequence[Corpus],
          pieces: int | None, seed: int, out: Path,
          said: list[str]) -> dict[str, list[PieceRun]]:
    """Replay the held-out works (of `splits`) with each setting; print the distances to each
    reference's train split, and each pair (A, B) compared piece by piece."""
    works = sorted((w for s in splits for w in held_out.split(s)), key=lambda w: w.id)[:pieces]
    where = " and ".join(splits)
    heading(f"{title}: {len(works)} held-out works of {held_out.name} ({where}) in solo mode")
    if not works:
        print(f"  {held_out.name} has no works in its {where} split: nothing to replay")
        return {}
    rehearsals = make_rehearsals(works, metres_of(held_out.path), seed, out / "rehearsals")
    runs = {s.label: solo_runs(rehearsals, s, out / f"run-{i}") for i, s in enumerate(settings)}
    own = pooled(corpus_histograms(works))
    for ref in references:
        if not ref.split("train"):
            print(f"  {ref.name} has no works in its train split: no reference")
            continue
        reference = pooled(corpus_histograms(ref.split("train")))
        print(f"  to {ref.name}'s train split (Jensen-Shannon bits: pitch class, interval, "
              f"length, mean; lower is closer)   notes  solo phrases from the model")
        print(distance_row("the held-out works' own notes", own, reference))
        for s in settings:
            r = runs[s.label]
            print(distance_row(s.label, pooled([x.histograms for x in r]), reference,
                               f"{sum(x.from_model for x in r)}/{sum(x.phrases for x in r)}"))
        for a, b in pairs:
            p = paired(runs[a.label], runs[b.label], reference, seed)
            print(f"  {a.label} - {b.label}: mean distance {p.difference:+.3f} (95% over "
                  f"pieces {p.low:+.3f} .. {p.high:+.3f}); closer piece by piece in "
                  f"{p.closer} of {p.pieces}")
            said.append(f"{title.split('.')[0]}, to {ref.name}: {a.label} - {b.label} "
                        f"{p.difference:+.3f} ({p.low:+.3f} .. {p.high:+.3f})")
    return runs


def velocity_step(corpus: Corpus, runs: dict[str, list[PieceRun]], said: list[str]) -> None:
    heading("6. velocity: the agent's notes against the corpus's")
    for split, what in (("train", ""), ("test", ", the replays' players play these")):
        print(f"  corpus {corpus.name} ({split} split{what}): " + velocity_figures(
            [int(v) for w in corpus.split(split) for v in w.velocity]))
    said.append(f"velocity, corpus {corpus.name}: " + velocity_figures(
        [int(v) for w in corpus.split("train") for v in w.velocity]))
    for label, r in runs.items():
        print(f"  {label}: " + velocity_figures([v for x in r for v in x.velocities]))
        said.append(f"velocity, {label}: "
                    + velocity_figures([v for x in r for v in x.velocities]))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 10 madrigals, 0.2-minute trainings, 2 held-out pieces")
    ap.add_argument("--out", type=Path, help="keep everything here (default: a temporary "
                                             "folder)")
    ap.add_argument("--madrigals", type=int, default=None, help="default: all 48")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--finetune-minutes", type=float, default=5.0)
    ap.add_argument("--scratch-minutes", type=float, default=10.0)
    ap.add_argument("--pieces", type=int, default=None,
                    help="held-out pieces of the new corpus for (5b) (default: its test and "
                         "valid splits)")
    ap.add_argument("--check-pieces", type=int, default=None,
                    help="held-out chorales for (5a) (default: the test split)")
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora",
                    help="the built shipped corpora")
    args = ap.parse_args(argv)
    if args.quick:
        args.madrigals, args.pieces, args.check_pieces = 10, 2, 2
        args.finetune_minutes = args.scratch_minutes = 0.2
    started = time.perf_counter()
    try:
        return run(args)
    finally:
        print(f"\n  ({time.perf_counter() - started:.0f} s)")


def base_settings() -> list[Setting]:
    return [Setting(f"demo.pt, style {s}", MODEL, {s: 1.0}) for s in CHECK_STYLES]


def run(args: argparse.Namespace) -> int:
    said: list[str] = []
    try:
        return steps(args, said)
    finally:
        heading("issue 15's figures, side by side")
        for line in said:
            print(f"  {line}")


def steps(args: argparse.Namespace, said: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        folder = folder_step(out / "folder", args.seed, args.madrigals)
        shipped = [load_corpus(args.corpora / name) for name in CHECK_STYLES]
        base = base_settings()
        unlocked = [s.unlocked() for s in base]
        heard("5a. the measure's check", shipped[0], ("test",), [*base, *unlocked],
              [(base[0], base[1]), (unlocked[0], unlocked[1])], shipped, args.check_pieces,
              args.seed, out / "check", said)
        if not supports("corpus", "import"):
            print(f"\n  2, 3, 4, 5b, 6: {NEEDS_IMPORT}")
            said.append(f"2, 3, 4, 5b, 6: {NEEDS_IMPORT}")
            return 0
        corpus = import_step(folder, out / "folder", out / "corpora", said)
        return 1 if corpus is None else after_import(corpus, shipped, args, out, said)


def after_import(corpus: Corpus, shipped: Sequence[Corpus], args: argparse.Namespace,
                 out: Path, said: list[str]) -> int:
    """Steps 3-6 on an imported corpus; 1 if a training that could run failed."""
    trainings = 3 if supports("train", needles=("--init", "--freeze")) else 1
    models = train_step(corpus, out / "models", args.finetune_minutes, args.scratch_minutes,
                        shipped, said)
    bits_step(corpus, models, shipped, said)
    new = [Setting(f"{label}, style {corpus.name}", path, {corpus.name: 1.0})
           for label, path in models.items()]
    base = base_settings()
    pairs = [(n, b) for n in new for b in base]
    pairs += [(n.unlocked(), b.unlocked()) for n, b in pairs]
    settings = [*new, *base]
    runs = heard("5b. the new style", corpus, ("test", "valid"),
                 [*settings, *(s.unlocked() for s in settings)],
                 pairs, [corpus], args.pieces, args.seed, out / "heard", said)
    velocity_step(corpus, runs, said)
    return 1 if len(models) < trainings else 0


if __name__ == "__main__":
    sys.exit(main())
