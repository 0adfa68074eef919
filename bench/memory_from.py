"""`[respond] memory_from`: how long priming the live memory from a corpus takes, and how far
the memory would copy the corpus back with and without its copy guard.

Part 1, priming, per corpus, `--repeat` times: load_corpus (every MIDI file read and checked
against the manifest) and memory_from.from_corpora (the PrimedIndex and the copy guard), timed
with perf_counter, as `perform` does before it opens its ports. Peer in the same run: the live
memory's own dict (Continuator.learn of the same lines as phrases, nothing forgotten), once.
Then three memory answers of 24 notes per work, the call the opening 8 notes of its first
voice, without and with the guard (p50/p99; and the least of each call's three, the walk's own
cost without the preemptions of a shared machine).

Part 2, the copy figure: the first `--pieces` train works of each corpus made into humanised
rehearsals (agent.record.rehearsal, a 2-beat rest every 4 bars), so the players play the
corpus's own pieces, as a musician plays their own music to an agent primed with it. Each is
replayed on the manual clock with no model (the memory answers alone), in each of `--modes`,
with the guard off (as before it covered the memory) and on, primed with the whole corpus and
with small ones: its first N train works for each N of `--small` (a musician's own folder is
20-200 pieces, or a handful; the fewer the pieces, the fewer ways a context goes on, the more
the memory copies), the players then playing the first min(N, `--pieces`) of those. The
figure is `stage-agent evaluate`'s copied_from_corpus_notes: the longest run of the agent's
notes found in the corpus (every work), against [model] originality_bound (12).
Deterministic: the same seed, the same figures.

    .venv/bin/python bench/memory_from.py [--corpora DIR] [--names bach-chorales oneill-1850]
        [--repeat 3] [--pieces 10] [--small 20 3] [--modes continue call-response]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, Summary, corpus_config, heading, show, show_ratio

from agent.events import PhraseNote
from agent.model.continuator import Continuator
from agent.model.corpus import Corpus, load_corpus
from agent.model.memory_from import MemoryCorpora, from_corpora, note_lines
from agent.model.originality import DEFAULT_BOUND
from agent.record.evaluate import evaluate_log
from agent.record.log import read_log
from agent.record.rehearsal import make_rehearsals
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME

MAX_ORDER = 4  # respond.max_order's default
ANSWER_NOTES = 24


def prime(path: Path, repeat: int) -> tuple[Corpus, MemoryCorpora]:
    loads, builds = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        corpus = load_corpus(path)
        loaded = time.perf_counter()
        memory = from_corpora([corpus], MAX_ORDER, DEFAULT_BOUND)
        builds.append((time.perf_counter() - loaded) * 1e9)
        loads.append((loaded - started) * 1e9)
    c = memory.corpora[0]
    print(f"  {c['name']}: {c['notes']} notes of {c['works']} train and valid works primed; "
          f"{len(memory.lines)} intervals guarded")
    show("load_corpus (read, check, parse)", loads, "s")
    index = show("index + guard (from_corpora)", builds, "s")
    total = show("priming, all told", [a + b for a, b in zip(loads, builds, strict=True)], "s")
    started = time.perf_counter()
    peer = Continuator(MAX_ORDER, memory_limit=1 << 40)
    for work in corpus.works:
        if work.split in ("train", "valid"):
            for line in note_lines(work):
                peer.learn([PhraseNote(int(t), int(p), int(v), int(d)) for t, p, v, d in zip(
                    line.onset_ns, line.pitch, line.velocity, line.duration_ns, strict=True)])
    dict_ns = (time.perf_counter() - started) * 1e9
    show("peer: the live dict, learn()", [dict_ns], "s")
    show_ratio("index / peer", index.p50, dict_ns, "from_corpora / Continuator.learn")
    print(f"  {'':<34} (priming p50 {total.p50 / 1e9:.2f} s)")
    return corpus, memory


def answer_times(corpus: Corpus, memory: MemoryCorpora) -> None:
    primed = Continuator(MAX_ORDER, primed=memory.primed)
    gc.collect()
    gc.freeze()  # as perform does after start-up (service.freeze_heap), before the first note
    rng = random.Random(1)
    free, guarded = [], []
    for work in [w for w in corpus.works for _ in range(3)]:  # 3 answers to each call
        line = note_lines(work)[0]
        call = [PhraseNote(int(t), int(p), int(v), int(d)) for t, p, v, d in zip(
            line.onset_ns[:8], line.pitch[:8], line.velocity[:8], line.duration_ns[:8],
            strict=True)]
        for guard, times in ((None, free), (memory.guard, guarded)):
            started = time.perf_counter_ns()
            primed.generate(call, ANSWER_NOTES, rng, guard)
            times.append(time.perf_counter_ns() - started)
    show(f"answer of {ANSWER_NOTES} notes, no guard", free, "us")
    show(f"answer of {ANSWER_NOTES} notes, guarded", guarded, "us")
    # The least of a call's 3 answers: what the walk costs, without the preemptions a shared
    # machine adds to the figures above.
    show("  the same, guarded, best of 3", np.min(np.reshape(guarded, (-1, 3)), axis=1), "us")


def small(corpus: Corpus, works: int) -> MemoryCorpora:
    """The memory of the corpus's first `works` train works (by id, as make_rehearsals picks)."""
    chosen = sorted(corpus.split("train"), key=lambda w: w.id)[:works]
    return from_corpora([dataclasses.replace(corpus, works=tuple(chosen))], MAX_ORDER,
                        DEFAULT_BOUND)


def copy_figures(path: Path, memory: MemoryCorpora, pieces: int, modes: list[str],
                 tmp: Path, label: str) -> None:
    rehearsals = make_rehearsals(path, "train", tmp / f"{path.name}-{label}", pieces, seed=1,
                                 gaps_beats=2)
    for mode in modes:
        figures: dict[str, list[int]] = {"off": [], "on": []}
        answers = 0
        for mid in rehearsals:
            rec = load_recording(mid)
            metre = rec.time_signature or (4, 4)
            cfg = fit_config(rec, corpus_config(rec.player_names, mode, None, metre,
                                                memory_from=[str(path.resolve())]))
            for guard in ("off", "on"):
                out = tmp / f"{path.name}-{label}-{mode}-{guard}-{mid.stem}"
                replay_fast(rec, cfg, out, str(mid), corpora=memory if guard == "on" else
                            dataclasses.replace(memory, guard=None))
                header, records = read_log(out / LOG_NAME)
                report = evaluate_log(header, records, memory.lines)
                figures[guard].append(report["copied_from_corpus_notes"])
                answers += report["answers"] if guard == "on" else 0
        for guard, values in figures.items():
            s = Summary.of(values)
            print(f"  {label + ', ' + mode + ', guard ' + guard:<44} copy figure p50 "
                  f"{s.p50:5.1f}  max {s.max:4.0f} notes  n={s.n}   (bound {DEFAULT_BOUND})")
        print(f"  {label + ', ' + mode:<44} {answers} answers (guarded run), from the memory")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--corpora", type=Path, default=REPO / "corpora")
    p.add_argument("--names", nargs="+", default=["bach-chorales", "oneill-1850"])
    p.add_argument("--repeat", type=int, default=3, help="priming runs per corpus (default 3)")
    p.add_argument("--pieces", type=int, default=10, help="train works replayed (default 10)")
    p.add_argument("--modes", nargs="+", default=["continue", "call-response"])
    p.add_argument("--small", type=int, nargs="*", default=[20, 3],
                   help="works in each small corpus (default 20 3)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for name in args.names:
            path = args.corpora / name
            heading(f"priming the live memory from {path}, {args.repeat} times")
            corpus, memory = prime(path, args.repeat)
            answer_times(corpus, memory)
            heading(f"copy figure: {args.pieces} train works of {name} played to it")
            copy_figures(path, memory, args.pieces, args.modes, Path(tmp), "whole corpus")
            for works in args.small:
                copy_figures(path, small(corpus, works), min(works, args.pieces), args.modes,
                             Path(tmp), f"{works} works")


if __name__ == "__main__":
    main()
