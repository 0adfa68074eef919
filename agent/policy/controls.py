"""The performer's controls: what a director, a cue or a section can turn while the agent plays.

`Controls` holds the values as set (from the config, then sections, cues and commands); `mood`
maps valence and arousal onto the concrete controls the modes read. Pure.

    mode           which mode plays (see policy/modes.py)
    temperature    the model's sampling temperature
    density        how many notes: answer length and comping attacks are scaled by this
    register       semitones: where the agent plays, relative to where it would
    dynamics       -1..1: velocities move down or up by up to DYNAMICS_SPAN
    valence        -1 (dark) .. 1 (bright): register moves up with it
    arousal        -1 (calm) .. 1 (excited): density, dynamics and temperature rise with it, and
                   in auto mode the agent takes the lead sooner (see modes.choose)
    styles         the blend of corpus styles, {style: weight}; empty = as configured
    memory_weight  0..1: the chance an answer comes from the live Markov memory, not the model
    mute           the agent listens and plans but plays nothing
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

MODES = ("call-response", "accompany", "continue", "mirror", "solo", "auto", "harmony")
DYNAMICS_SPAN = 40  # velocity steps at dynamics = +-1
REGISTER_PER_VALENCE = 5  # semitones at valence = +-1

# name -> (type, low, high): the ranges every source of a control is checked against.
RANGES: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.05, 5.0),
    "density": (float, 0.25, 4.0),
    "register": (int, -36, 36),
    "dynamics": (float, -1.0, 1.0),
    "valence": (float, -1.0, 1.0),
    "arousal": (float, -1.0, 1.0),
    "memory_weight": (float, 0.0, 1.0),
}


class ControlValueError(ValueError):
    """A control's value is of the wrong kind or out of range; the message names the control."""


@dataclass(frozen=True)
class Controls:
    mode: str = "call-response"
    temperature: float = 0.9
    density: float = 1.0
    register: int = 0
    dynamics: float = 0.0
    valence: float = 0.0
    arousal: float = 0.0
    styles: tuple[tuple[str, float], ...] = ()
    memory_weight: float = 0.0
    mute: bool = False

    def with_changes(self, changes: dict[str, Any]) -> Controls:
        """These controls with some changed; every value checked (ControlValueError)."""
        return replace(self, **check_changes(changes))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "temperature": self.temperature, "density": self.density,
                "register": self.register, "dynamics": self.dynamics, "valence": self.valence,
                "arousal": self.arousal, "styles": dict(self.styles),
                "memory_weight": self.memory_weight, "mute": self.mute}


def check_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Validated, normalised values for Controls fields (styles become sorted pairs)."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "mode":
            if value not in MODES:
                raise ControlValueError(f"mode: {value!r} is not one of {', '.join(MODES)}")
            out[name] = value
        elif name == "mute":
            if not isinstance(value, bool):
                raise ControlValueError(f"mute: expected true or false, got {value!r}")
            out[name] = value
        elif name == "styles":
            out[name] = _styles(value)
        elif name in RANGES:
            out[name] = _number(name, value)
        else:
            known = ", ".join(("mode", *RANGES, "styles", "mute"))
            raise ControlValueError(f"{name}: unknown control (known: {known})")
    return out


def _number(name: str, value: Any) -> float | int:
    kind, low, high = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not isinstance(value, int)):
        raise ControlValueError(f"{name}: expected {kind.__name__}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ControlValueError(f"{name}: {value} is out of range {low}..{high}")
    return kind(value)  # type: ignore[no-any-return]


def _styles(value: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, dict) or not value:
        raise ControlValueError(f"styles: expected a table of style weights, got {value!r}")
    pairs = []
    for style, weight in value.items():
        if not isinstance(style, str) or isinstance(weight, bool) or not isinstance(
                weight, int | float) or not (math.isfinite(weight) and 0 <= weight <= 1000):
            raise ControlValueError(f"styles: {style!r} = {weight!r} is not a weight 0..1000")
        pairs.append((style, float(weight)))
    if sum(w for _s, w in pairs) <= 0:
        raise ControlValueError("styles: the weights must not all be zero")
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class Mood:
    """What the modes read: the controls with valence and arousal folded in."""

    density: float
    register: int
    velocity_shift: int
    temperature: float
    arousal: float


def mood(c: Controls) -> Mood:
    """Valence and arousal onto density, register, dynamics and temperature.

    Arousal doubles (or halves) density over its range in log steps, adds up to half the dynamics
    span, and raises the temperature by up to a quarter; valence moves the register up to a
    fourth. Results stay inside the controls' own ranges.
    """
    density = _clip(c.density * 2.0 ** c.arousal, *RANGES["density"][1:])
    dynamics = _clip(c.dynamics + 0.5 * c.arousal, -1.0, 1.0)
    temperature = _clip(c.temperature * (1.0 + 0.25 * c.arousal), *RANGES["temperature"][1:])
    register = int(_clip(c.register + round(REGISTER_PER_VALENCE * c.valence), -36, 36))
    return Mood(density=density, register=register,
                velocity_shift=round(DYNAMICS_SPAN * dynamics), temperature=temperature,
                arousal=c.arousal)


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)
