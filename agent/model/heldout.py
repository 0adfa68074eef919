"""Held-out likelihood: how many bits the model needs per event, and per note's pitch.

Shared by training (validation after every epoch) and `stage-agent eval` (the test split), so the
two figures are computed the same way. Works are scored whole, with the fixed role assignment of
representation.eval_roles and no augmentation. Bits per event sums every predicted field of an
event (pitch, dt, velocity, and duration for agent notes); pitch bits per note is the pitch
field alone, averaged over every note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agent.model import representation as rep
from agent.model.net import HEADS, EventNet, event_nll


@dataclass(frozen=True)
class Scored:
    """A work ready to score: its tokens int64 [n, 6], its style index, and whether its
    velocities are scored (not for a flat-velocity corpus in a fine-tune: net.event_nll)."""

    tokens: np.ndarray
    style: int
    velocity: bool = True


@dataclass(frozen=True)
class Bits:
    bits_per_event: float
    pitch_bits_per_note: float
    events: int
    per_head: dict[str, float]  # bits per scored event, per head
    durations: int = 0  # scored durations (the agent's notes): per_head["duration"]'s count

    @staticmethod
    def combine(parts: Sequence[Bits]) -> Bits:
        """The figures of all the parts' events together, as if scored in one call."""
        events, durations = sum(b.events for b in parts), sum(b.durations for b in parts)

        def count(b: Bits, head: str) -> int:
            return b.durations if head == "duration" else b.events

        per_head = {h: sum(b.per_head[h] * count(b, h) for b in parts)
                    / max(durations if h == "duration" else events, 1) for h in HEADS}
        return Bits(sum(b.bits_per_event * b.events for b in parts) / max(events, 1),
                    sum(b.pitch_bits_per_note * b.events for b in parts) / max(events, 1),
                    events, per_head, durations)


def scored(works: Sequence[rep.NoteArrays], style: int, velocity: bool = True) -> list[Scored]:
    return [Scored(rep.work_tokens(w, rep.eval_roles(w)), style, velocity) for w in works]


def pad_batch(items: Sequence[Scored], n_styles: int) -> tuple[torch.Tensor, ...]:
    """Right-padded tokens [B, T, 6], style one-hots [B, n_styles], mask bool [B, T]."""
    longest = max(len(s.tokens) for s in items)
    tokens = np.zeros((len(items), longest, len(rep.FIELDS)), dtype=np.int64)
    mask = np.zeros((len(items), longest), dtype=bool)
    for i, s in enumerate(items):
        tokens[i, :len(s.tokens)] = s.tokens
        mask[i, :len(s.tokens)] = True
    style = torch.zeros(len(items), n_styles)
    style[torch.arange(len(items)), torch.tensor([s.style for s in items])] = 1.0
    return torch.from_numpy(tokens), style, torch.from_numpy(mask)


@torch.no_grad()
def heldout_bits(net: EventNet, items: Sequence[Scored], batch: int = 16,
                 style: torch.Tensor | None = None) -> Bits:
    """style: one mixture [n_styles] for every work instead of each work's own style."""
    was_training = net.training
    net.eval()
    totals = dict.fromkeys([*HEADS, "events", "durations"], 0.0)
    ordered = sorted(items, key=lambda s: len(s.tokens))  # similar lengths pad less
    for start in range(0, len(ordered), batch):
        chunk = ordered[start:start + batch]
        tokens, own, mask = pad_batch(chunk, net.cfg.n_styles)
        styles = own if style is None else style.expand(len(tokens), -1)
        velocity = torch.tensor([s.velocity for s in chunk])
        for key, value in event_nll(net, tokens, styles, mask, velocity).items():
            totals[key] += float(value)
    net.train(was_training)
    events = max(totals["events"], 1.0)
    nats = sum(totals[h] for h in HEADS)
    per_head = {h: totals[h] / math.log(2) / max(
        totals["durations"] if h == "duration" else events, 1.0) for h in HEADS}
    return Bits(nats / math.log(2) / events, totals["pitch"] / math.log(2) / events,
                int(totals["events"]), per_head, int(totals["durations"]))
