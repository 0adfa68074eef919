"""Self-describing checkpoints: weights plus everything needed to trust and use them.

A checkpoint is a dict of plain data and tensors, loaded with `torch.load(weights_only=True)`:
a checkpoint is data, never code. It records the file format and the representation version it
was trained with, the network's sizes, the style (corpus) names, each corpus's id and hash, the
training history, and the corpus's melodic lines for the originality guard. Resume checkpoints
also carry the optimiser state; the shipped ones do not.
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


@dataclass(frozen=True)
class Checkpoint:
    net: EventNet
    styles: tuple[str, ...]
    corpora: tuple[dict[str, Any], ...]  # name, hash, works, notes per training corpus
    train: dict[str, Any]  # epochs, best epoch, validation history, seconds, seed, ...
    corpus_lines: np.ndarray  # originality.join_lines of every work of every corpus
    path: Path
    sha256: str  # of the file: the model's identity in logs
    extra: dict[str, Any] = field(default_factory=dict)  # resume state (optimiser, rng)

    def proposer(self, seed: int = 0, bound: int = DEFAULT_BOUND,
                 also: np.ndarray | None = None) -> Proposer:
        """`also`: more joined lines its copy guard covers (respond.memory_from's corpora)."""
        lines = self.corpus_lines if also is None else np.concatenate([self.corpus_lines, also])
        return Proposer(self.net, self.styles, CopyGuard(lines, bound), seed)


def save(path: Path, net: EventNet, styles: tuple[str, ...], corpora: list[dict[str, Any]],
         train: dict[str, Any], corpus_lines: np.ndarray,
         extra: dict[str, Any] | None = None) -> None:
    data = {
        "format": FORMAT, "version": VERSION, "representation": rep.REPRESENTATION_VERSION,
        "net": net.cfg.as_dict(), "styles": list(styles), "corpora": corpora, "train": train,
        "corpus_lines": torch.from_numpy(corpus_lines.astype(np.int16)),
        "state_dict": net.state_dict(), "extra": extra or {},
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
                      sha256=hashlib.sha256(raw).hexdigest(), extra=data.get("extra", {}))
