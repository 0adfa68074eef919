"""The live monitor's meters (agent/io/monitor.py sends them four times a second): note counts,
notes per second and a velocity level per player and for the agent, and MIDI messages in and
out, counted from the log's records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RATE_SMOOTHING = 0.5  # notes/s: the share of the previous figure kept at each meter tick
LEVEL_FALL = 0.6  # velocity level: the share kept at each meter tick without a louder note


@dataclass
class Meter:
    notes: int = 0  # note-ons so far
    rate: float = 0.0  # notes per second, smoothed
    level: float = 0.0  # velocity 0-127: the loudest recent note, falling between notes
    _peak: int = 0  # the loudest note since the last tick
    _counted: int = 0  # notes at the last tick

    def hear(self, velocity: int) -> None:
        self.notes += 1
        self._peak = max(self._peak, velocity)

    def step(self, dt_s: float) -> dict[str, float | int]:
        new, self._counted = self.notes - self._counted, self.notes
        self.rate = RATE_SMOOTHING * self.rate + (1 - RATE_SMOOTHING) * new / max(dt_s, 1e-3)
        self.level, self._peak = max(float(self._peak), self.level * LEVEL_FALL), 0
        return {"notes": self.notes, "rate": round(self.rate, 1), "level": round(self.level)}


class Meters:
    """Note counts per player and for the agent, from the log's records (a tap: a few dict
    lookups per record, and it never raises into the music)."""

    def __init__(self, players: Iterable[str]) -> None:
        self.players = {name: Meter() for name in players}
        self.agent = Meter()
        self.messages_in = 0
        self.messages_out = 0

    def tap(self, r: dict[str, Any]) -> None:
        k = r["k"]
        if k == "in":
            self.messages_in += 1
            meter = self.players.get(r.get("player", ""))
            if meter is not None:
                _count_note(meter, r.get("data"))
        elif k == "emit" and r.get("ok", True):
            self.messages_out += 1
            _count_note(self.agent, r.get("data"))

    def step(self, dt_s: float) -> dict[str, Any]:
        return {"players": {name: m.step(dt_s) for name, m in self.players.items()},
                "agent": self.agent.step(dt_s), "in": self.messages_in,
                "out": self.messages_out}


def _count_note(meter: Meter, data: Any) -> None:
    """A note-on (hex "9cppvv", velocity > 0) counts; anything else does not."""
    if isinstance(data, str) and len(data) == 6 and data[0] == "9" and data[4:6] != "00":
        with contextlib.suppress(ValueError):
            meter.hear(int(data[4:6], 16))
