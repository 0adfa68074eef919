"""Call and response: when the players end a phrase, answer it from the live memory.

Pure: the answer depends only on the call, the memory, the random generator and the start time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from agent.events import PhraseNote, PlannedNote
from agent.model.continuator import MIN_DURATION_NS, Continuator
from agent.model.live import ModelNote
from agent.model.originality import CopyGuard


def plan_answer(call: Sequence[PhraseNote], memory: Continuator, rng: random.Random,
                start_ns: int, max_notes: int, max_note_ns: int,
                guard: CopyGuard | None = None, before: Sequence[int] = ()
                ) -> list[PlannedNote]:
    """An answer about as long as the call (at most max_notes), starting at start_ns; with a
    guard, copying no more than its bound of its corpus, counting `before` (the agent's own
    pitches just before it) in."""
    steps = memory.generate(call, min(max_notes, len(call)), rng, guard, before)
    out = []
    t = start_ns
    for i, step in enumerate(steps):
        if i:
            t += step.ioi_ns
        out.append(PlannedNote(t, step.pitch, step.velocity, min(step.duration_ns, max_note_ns)))
    return out


def plan_from_model(notes: Sequence[ModelNote], start_ns: int, max_note_ns: int
                    ) -> list[PlannedNote]:
    """The model's phrase as a plan: the first note at start_ns, the others at their offsets."""
    out = []
    t = start_ns
    for i, n in enumerate(notes):
        if i:
            t += n.dt_ns
        out.append(PlannedNote(t, n.pitch, n.velocity,
                               min(max(n.duration_ns, MIN_DURATION_NS), max_note_ns)))
    return out


def harmony_pitches(pitch: int, intervals: Sequence[int]) -> list[int]:
    """The pitches to sound at once with a heard pitch, kept inside the MIDI range."""
    return [pitch + i for i in intervals if 0 <= pitch + i <= 127]
