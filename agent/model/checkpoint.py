"""Self-describing checkpoints: weights plus everything needed to trust and use them.

A checkpoint is a dict of plain data and tensors, loaded with `torch.load(weights_only=True)`:
a checkpoint is data, never code. It records the file format and the representation version it
was trained with, the network's sizes, the style (corpus) names, every corpus it was trained on
(name, hash, counts, provenance and licence), this file's training history, the runs that made
the model (from scratch, then each fine-tune with its parent's path and sha256), and the
corpora's melodic lines for the originality guard. Resume checkpoints also carry the optimiser
state; the shipped ones do not. Checkpoints from before `runs` and the corpora's provenance
load as they are: history() makes their one run from `train`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.errors import ModelError
from agent.files import FileRefused, read_regular
from agent.model import representation as rep
from agent.model.live import MAX_CHECKPOINT_BYTES
from agent.model.net import EventNet, NetConfig
from agent.model.originality import DEFAULT_BOUND, CopyGuard
from agent.model.proposer import Proposer

FORMAT = "stage-agent-model"
VERSION = 1
# What a run's record in `runs` says of its training (train.py writes them, the card reads them).
RUN_FIGURES = ("epochs", "best_epoch", "seconds", "seconds_to_best", "best_valid_bits")


@dataclass(frozen=True)
class Checkpoint:
    net: EventNet
    styles: tuple[str, ...]
    # Every corpus the model was trained on, over all its runs (plan.record): name, hash,
    # works, notes, and (newer checkpoints) velocity and collections (provenance, licence).
    corpora: tuple[dict[str, Any], ...]
    train: dict[str, Any]  # this file's run: epochs, best epoch, validation history, seconds...
    corpus_lines: np.ndarray  # originality.join_lines of every work of every corpus
    path: Path
    sha256: str  # of the file: the model's identity in logs
    extra: dict[str, Any] = field(default_factory=dict)  # resume state (optimiser, rng)
    runs: tuple[dict[str, Any], ...] = ()  # the runs that made the model, oldest first

    def proposer(self, seed: int = 0, bound: int = DEFAULT_BOUND,
                 also: np.ndarray | None = None) -> Proposer:
        """`also`: more joined lines its copy guard covers (respond.memory_from's corpora)."""
        lines = self.corpus_lines if also is None else np.concatenate([self.corpus_lines, also])
        return Proposer(self.net, self.styles, CopyGuard(lines, bound), seed)

    def history(self) -> list[dict[str, Any]]:
        """The runs that made the model, oldest first; an older checkpoint's one run (from
        scratch, on every corpus it names) is made from its `train` record."""
        if self.runs:
            return list(self.runs)
        best: dict[str, Any] = next((h for h in self.train.get("history", ())
                     if h.get("epoch") == self.train.get("best_epoch")), {})
        return [{"kind": "scratch", "corpora": [c["name"] for c in self.corpora],
                 **{k: self.train.get(k) for k in RUN_FIGURES if k in self.train},
                 "best_valid_pitch_bits": best.get("valid_pitch_bits")}]

    @property
    def parent(self) -> dict[str, str] | None:
        """The checkpoint this one was fine-tuned from ({path, sha256}), or None."""
        parent: dict[str, str] | None = self.history()[-1].get("parent")
        return parent


def save(path: Path, net: EventNet, styles: tuple[str, ...], corpora: list[dict[str, Any]],
         train: dict[str, Any], corpus_lines: np.ndarray,
         extra: dict[str, Any] | None = None, runs: list[dict[str, Any]] | None = None) -> None:
    data = {
        "format": FORMAT, "version": VERSION, "representation": rep.REPRESENTATION_VERSION,
        "net": net.cfg.as_dict(), "styles": list(styles), "corpora": corpora, "train": train,
        "corpus_lines": torch.from_numpy(corpus_lines.astype(np.int16)),
        "state_dict": net.state_dict(), "extra": extra or {}, "runs": runs or [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def load(path: Path) -> Checkpoint:
    try:  # a regular file only (a FIFO would hang the load, /dev/zero fill the memory)
        raw = read_regular(path, MAX_CHECKPOINT_BYTES)
    except FileRefused as e:
        raise ModelError(f"{path}: cannot read the model checkpoint: {e}") from None
    try:
        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise ModelError(f"{path}: not a stage-agent model checkpoint ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a stage-agent model checkpoint (no '{FORMAT}' format)")
    if data.get("version") != VERSION or data.get("representation") != rep.REPRESENTATION_VERSION:
        raise ModelError(
            f"{path}: checkpoint version {data.get('version')}, representation "
            f"{data.get('representation')}; this agent reads version {VERSION}, representation "
            f"{rep.REPRESENTATION_VERSION}: retrain with `stage-agent train`")
    try:
        net = EventNet(NetConfig(**data["net"]))
        net.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ModelError(f"{path}: the checkpoint's weights do not fit its network: {e}") from None
    return Checkpoint(net=net.eval(), styles=tuple(data["styles"]),
                      corpora=tuple(data["corpora"]), train=data["train"],
                      corpus_lines=data["corpus_lines"].numpy().astype(np.int64), path=path,
                      sha256=hashlib.sha256(raw).hexdigest(), extra=data.get("extra", {}),
                      runs=tuple(data.get("runs", ())))
