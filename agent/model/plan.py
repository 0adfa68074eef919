"""What one training run trains, built before the first epoch and read by train.py's loop.

Two builders make a Plan: train.py from scratch (every weight learns every corpus) and
finetune.py from a checkpoint (`--init`: some weights learn the new corpora, old ones are
rehearsed). The loop does not know which: it trains `params` on `works` (plus a draw from each
rehearsal pool every epoch), stops early on `valid`, and saves what the checkpoint must record
about the data (`corpora`, `lines`) and the runs that made the model (`runs`, then `run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agent.model.corpus import Corpus, Work, read_manifest
from agent.model.heldout import Scored
from agent.model.net import EventNet


@dataclass(frozen=True)
class TrainWork:
    work: Work
    style: int  # index into the plan's styles
    velocity: bool  # whether its velocities are scored (net.event_nll)


@dataclass(frozen=True)
class Plan:
    net: EventNet
    styles: tuple[str, ...]
    params: tuple[torch.Tensor, ...]  # what the optimiser updates; the rest stays bit-exact
    works: tuple[TrainWork, ...]  # every epoch sees each once
    valid: tuple[Scored, ...]  # early stopping is on these alone
    corpora: tuple[dict[str, Any], ...]  # the checkpoint's record of every corpus (record())
    lines: np.ndarray  # the copy guard's corpus lines (originality.join_lines), every corpus
    run: dict[str, Any]  # this run as the checkpoint records it; the loop adds its figures
    runs: tuple[dict[str, Any], ...] = ()  # the runs that made the parent, oldest first
    # Per rehearsed corpus (a fine-tune's old styles): its training works, of which
    # `rehearsal_draw` are drawn afresh every epoch, and its validation works, scored before
    # and after the run to show what the old style lost.
    rehearsal: tuple[tuple[TrainWork, ...], ...] = ()
    rehearsal_draw: int = 0
    old_valid: dict[str, tuple[Scored, ...]] = field(default_factory=dict)

    def epoch_works(self, rng: np.random.Generator, rank: int = 0, world: int = 1
                    ) -> list[TrainWork]:
        """This epoch's works for process `rank` of `world`, in training order: its share of
        every work, plus a fresh draw from its share of each rehearsal pool."""
        works = list(self.works[rank::world])
        draw = -(-self.rehearsal_draw // world)
        for pool in (p[rank::world] for p in self.rehearsal):
            chosen = rng.choice(len(pool), size=min(draw, len(pool)), replace=False)
            works += [pool[int(i)] for i in chosen]
        return [works[int(i)] for i in rng.permutation(len(works))]


def flat_velocity(corpus: Corpus) -> int | None:
    """The one velocity every note of the corpus has, or None when they vary."""
    values = np.unique(np.concatenate([w.velocity for w in corpus.works]))
    return int(values[0]) if len(values) == 1 else None


def record(corpus: Corpus) -> dict[str, Any]:
    """What a checkpoint records of a corpus it was trained on (the model card prints it):
    name, hash, counts, the one velocity of a flat corpus (else None), and each collection's
    provenance and licence as the corpus's manifest declares them."""
    collections = read_manifest(corpus.path).get("collections") or []
    return {"name": corpus.name, "hash": corpus.hash, "works": len(corpus.works),
            "notes": int(sum(len(w.pitch) for w in corpus.works)),
            "velocity": flat_velocity(corpus),
            "collections": [{k: str(c.get(k, "")) for k in ("name", "provenance", "licence")}
                            for c in collections if isinstance(c, dict)]}
