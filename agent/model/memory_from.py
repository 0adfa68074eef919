"""`[respond] memory_from`: corpora that prime the live Markov memory at start, no training.

Which lines: every voice of every train and valid work of each corpus, in time order (a chord
low to high: representation.voice_orders, the same order as the copy guard's lines), each note
with its own rhythm, length and velocity at the work's first tempo. The test works are left out
of the memory: they stay held out, so a replay of them (`agent.record.rehearsal --split test`)
measures the agent on music it was not given, as `stage-agent eval` measures the model.

The copy guard covers every work of these corpora, test works too: the agent never hands a
piece of them back longer than `[model] originality_bound` notes, whether its memory walked the
piece or a player played it into the live memory. The same lines join the model's own guard
(model/checkpoint.py), and the copy figure of a run's summary (record/session.py).

A folder that is missing, not a corpus or whose files do not match its manifest is a ConfigError
naming `respond.memory_from[i]` (exit 2): `perform` loads these before it opens any port. Reading
is the cost (mido parsing each file; bench/memory_from.py measures it): bach-chorales in ~2 s,
oneill-1850 in ~7 s on the 2-core machine of bench/README.md; the index itself takes a fraction
of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Config
from agent.errors import ConfigError, CorpusError
from agent.model import representation as rep
from agent.model.continuator import NoteLine, PrimedIndex
from agent.model.corpus import Corpus, Work, load_corpus
from agent.model.originality import CopyGuard

MEMORY_SPLITS = ("train", "valid")
NS_PER_MINUTE = 60_000_000_000


@dataclass(frozen=True)
class MemoryCorpora:
    """What the corpora give the agent: the memory's primed part, the copy guard over them."""

    primed: PrimedIndex
    lines: np.ndarray  # originality.join_lines of every voice of every work, all splits
    guard: CopyGuard | None  # over `lines` at [model] originality_bound (None: unguarded)
    corpora: tuple[dict[str, Any], ...]  # per corpus: path, name, hash, works, notes primed


def note_lines(work: Work) -> list[NoteLine]:
    """The work's voices as the memory remembers them: times in ns at its first tempo."""
    ns_per_beat = NS_PER_MINUTE / work.bpm
    lines = []
    for order in rep.voice_orders(work):
        lines.append(NoteLine(
            pitch=work.pitch[order].astype(np.int64),
            onset_ns=np.rint(work.onset[order] * ns_per_beat).astype(np.int64),
            duration_ns=np.rint(work.duration[order] * ns_per_beat).astype(np.int64),
            velocity=work.velocity[order].astype(np.int64)))
    return lines


def from_corpora(corpora: list[Corpus], max_order: int, bound: int) -> MemoryCorpora:
    """The primed memory and the guard for loaded corpora (pure: no file is read)."""
    lines: list[NoteLine] = []
    identity = []
    for corpus in corpora:
        works = [w for w in corpus.works if w.split in MEMORY_SPLITS]
        mine = [line for w in works for line in note_lines(w)]
        lines += mine
        identity.append({"path": str(corpus.path.resolve()), "name": corpus.name,
                         "hash": corpus.hash, "works": len(works),
                         "notes": sum(len(line.pitch) for line in mine)})
    every = all_lines(corpora)
    return MemoryCorpora(PrimedIndex(lines, max_order), every, CopyGuard(every, bound),
                         tuple(identity))


def all_lines(corpora: list[Corpus]) -> np.ndarray:
    """rep.copy_lines of every work of the corpora, all splits: what a copy is of."""
    return rep.copy_lines(w for c in corpora for w in c.works)


def recorded_lines(memory_from: list[dict[str, Any]]) -> np.ndarray | None:
    """all_lines of the corpora a log's header names (its `memory_from`) that still load as
    recorded (the same hash); None if none does."""
    corpora = []
    for recorded in memory_from:
        try:
            corpus = load_corpus(Path(recorded["path"]))
        except CorpusError:
            continue
        if corpus.hash == recorded["hash"]:
            corpora.append(corpus)
    return all_lines(corpora) if corpora else None


def load_memory(config: Config) -> MemoryCorpora | None:
    """The corpora respond.memory_from names, loaded and checked; None when it names none.
    ConfigError naming the key for a folder that is not a usable corpus."""
    if not config.respond.memory_from:
        return None
    corpora = []
    for i, path in enumerate(config.memory_paths()):
        key = f"respond.memory_from[{i}]"
        try:
            corpus = load_corpus(path)
        except CorpusError as e:
            raise ConfigError(config.source, key, str(e)) from None
        if not any(w.split in MEMORY_SPLITS and len(w.pitch) for w in corpus.works):
            raise ConfigError(config.source, key, f"{path}: no note in a train or valid work "
                              f"to remember ({len(corpus.works)} works; the memory leaves the "
                              "test works out)")
        corpora.append(corpus)
    return from_corpora(corpora, config.respond.max_order, config.model.originality_bound)
