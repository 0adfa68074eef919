"""What the policy asks of the model and what it gets back: plain data, no torch.

Kept apart from proposer.py so the live agent's own process can build requests and read answers
(unpickled from the model worker) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constraints:
    """What the policy allows for the next agent note. Defaults allow anything."""

    low: int = 0  # pitch range, inclusive
    high: int = 127
    pitch_classes: frozenset[int] | None = None  # e.g. the current scale; None = all twelve
    dt_min_s: float = 0.0  # time window for the onset, after the previous event
    dt_max_s: float = 8.0
    velocity_min: int = 1
    velocity_max: int = 127
    temperature: float = 1.0
    top_p: float = 1.0  # nucleus sampling: keep the most likely choices up to this mass


@dataclass(frozen=True, slots=True)
class Proposal:
    pitch: int
    dt_s: float
    velocity: int
    duration_s: float


ANYTHING = Constraints()
