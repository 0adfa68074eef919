"""The canonical spatial frame (ADM): x right, y front, z up, each normalised to -1..1.

Azimuth 0 is front and positive to the LEFT; elevation +90 is up; distance 0..1 (1 = the rig's
surface). Forward: x = -d cos(e) sin(a), y = d cos(e) cos(a), z = d sin(e); inverse
a = atan2(-x, y). (The ADM-OSC spec prints atan2(x, y), which contradicts its own forward
formula; front-left +30 degrees has x < 0.) Every layout, trajectory and adapter speaks this
frame; adapters convert at the edge (e.g. SpatGRIS azimuth is clockwise: its = -ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


def aed_to_xyz(azimuth_deg: np.ndarray | float, elevation_deg: np.ndarray | float,
               distance: np.ndarray | float = 1.0) -> np.ndarray:
    """Directions to ADM xyz; broadcasts; shape (..., 3)."""
    a = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    e = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    d = np.asarray(distance, dtype=np.float64)
    return np.stack(np.broadcast_arrays(-d * np.cos(e) * np.sin(a), d * np.cos(e) * np.cos(a),
                                        d * np.sin(e)), axis=-1)


def xyz_to_aed(xyz: np.ndarray) -> np.ndarray:
    """ADM xyz (..., 3) to (..., 3) of azimuth deg (-180..180], elevation deg, distance."""
    p = np.asarray(xyz, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    d = np.sqrt(x * x + y * y + z * z)
    azimuth = np.degrees(np.arctan2(-x, y))
    elevation = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return np.stack([azimuth, elevation, d], axis=-1)


class Voice(NamedTuple):
    """One agent voice as the rig sees it on one tick. `number` counts from 1 (ADM objects).

    A named tuple rather than a frozen dataclass: 64 of these are made 50 times a second, and a
    frozen dataclass's __init__ (one object.__setattr__ per field) cost several times more."""

    number: int
    name: str
    x: float
    y: float
    z: float
    gain: float = 1.0  # linear
    mute: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """Every voice on one tick: what adapters turn into packets."""

    counter: int  # ticks since the start (visuals use it to spot loss)
    time_ns: int
    voices: tuple[Voice, ...]
