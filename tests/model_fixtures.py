"""Small real models and works for the model tests (no corpus build, no training needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.model import checkpoint
from agent.model.net import EventNet, NetConfig
from agent.model.originality import join_lines

STYLES = ("chorale", "tune")


@dataclass(frozen=True)
class TinyWork:
    """Satisfies representation.NoteArrays."""

    collection: str
    bpm: float
    bar_beats: float
    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    voice: np.ndarray


def tune(pitches: list[int], beats: float = 0.5, bpm: float = 120.0) -> TinyWork:
    n = len(pitches)
    return TinyWork("tune", bpm, 4.0, np.arange(n) * beats, np.full(n, beats),
                    np.array(pitches, dtype=np.int16), np.full(n, 80, dtype=np.int16),
                    np.zeros(n, dtype=np.int16))


def random_net(seed: int = 0, n_styles: int = 2) -> EventNet:
    torch.manual_seed(seed)
    net = EventNet(NetConfig(embed=32, hidden=48, head=32, n_styles=n_styles))
    with torch.no_grad():  # larger than init weights, so the logits differ between contexts
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


CORPUS_LINE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84, 86]


def save_random_checkpoint(path: Path, seed: int = 0) -> Path:
    net = random_net(seed)
    lines = join_lines([np.array(CORPUS_LINE)])
    checkpoint.save(path, net, STYLES, [{"name": s, "hash": "0" * 64, "works": 1, "notes": 16}
                                        for s in STYLES],
                    {"epochs": 0, "best_epoch": 0, "best_valid_bits": 0.0, "seconds": 0.0,
                     "seconds_to_best": 0.0, "history": []}, lines)
    return path


def save_with_style(parent: Path, path: Path, style: str, line: list[int],
                    seed: int = 5) -> Path:
    """A checkpoint as a fine-tune that adds a style leaves one: the parent's network and
    styles unchanged, one row more in the style table (`style`), its corpus (one `line`) in
    the copy guard's lines besides the parent's."""
    parent_ckpt = checkpoint.load(parent)
    cfg = parent_ckpt.net.cfg
    state = parent_ckpt.net.state_dict()
    torch.manual_seed(seed)
    state["style.weight"] = torch.cat([state["style.weight"], 3.0 * torch.randn(1, cfg.embed)])
    net = EventNet(NetConfig(**{**cfg.as_dict(), "n_styles": cfg.n_styles + 1}))
    net.load_state_dict(state)
    corpora = [*parent_ckpt.corpora, {"name": style, "hash": "1" * 64, "works": 1,
                                      "notes": len(line)}]
    lines = np.concatenate([parent_ckpt.corpus_lines, join_lines([np.array(line)])])
    checkpoint.save(path, net.eval(), (*parent_ckpt.styles, style), corpora, parent_ckpt.train,
                    lines)
    return path
