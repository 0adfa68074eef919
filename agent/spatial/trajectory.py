"""Where a voice is at any moment: its current gesture, evaluated per tick. Pure.

A gesture starts where the voice was (`origin`) and goes on until the next one replaces it:

    static   stays at `target`
    glide    moves in a straight line (Cartesian, eased) to `target`, arriving at `arrive_ns`
             (e.g. on the onset of the phrase's first note), then stays
    orbit    circles the vertical axis at the origin's height and distance, `speed` turns/s
             (positive = counter-clockwise seen from above, i.e. towards the left)
    spiral   an orbit whose elevation moves from the origin's to `target`'s over `duration_ns`
    path     through `points` one after another, `duration_ns` for the whole path, then stays
    wander   a smooth random drift around `target` (sums of slow sines, phases from `seed`)
    follow   glides towards a player's position; the caller passes where the player is

Positions are ADM xyz (x right, y front, z up, normalised). Every result is clamped to the rig's
coverage: inside the unit sphere and no lower than the rig's lowest speaker (`floor_z`), so a
voice never asks a dome for a place it cannot reach.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float, float]
KINDS = ("static", "glide", "orbit", "spiral", "path", "wander", "follow")
NS = 1e9
WANDER_RADIUS = 0.35  # how far a wander strays from its centre (normalised units)
FOLLOW_TIME_S = 0.5  # a follower closes most of the distance to its player in this long


@dataclass(frozen=True, slots=True)
class Gesture:
    kind: str
    start_ns: int
    origin: Point
    target: Point = (0.0, 1.0, 0.0)
    arrive_ns: int = 0  # glide
    speed: float = 0.1  # orbit, spiral: turns per second
    duration_ns: int = 4_000_000_000  # spiral, path
    points: tuple[Point, ...] = ()  # path
    seed: int = 0  # wander
    player: str = ""  # follow

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown gesture {self.kind!r} (known: {', '.join(KINDS)})")


def position(g: Gesture, t_ns: int, floor_z: float = -1.0,
             followed: Point | None = None) -> Point:
    """Where the gesture puts the voice at t_ns (clamped to the rig's coverage)."""
    elapsed = max(t_ns - g.start_ns, 0) / NS
    kind = g.kind
    if kind == "orbit":  # the common moving case first
        p = _orbit(g, elapsed)
    elif kind == "static":
        p = g.target
    elif kind == "glide":
        span = max(g.arrive_ns - g.start_ns, 1) / NS
        p = _lerp(g.origin, g.target, _ease(min(elapsed / span, 1.0)))
    elif kind == "spiral":
        p = _orbit(g, elapsed)
    elif kind == "path":
        p = _along(g.origin, g.points, elapsed / max(g.duration_ns / NS, 1e-9))
    elif kind == "wander":
        p = _wander(g.target, g.seed, elapsed)
    else:  # follow: exponential approach, so a moving player is followed smoothly
        goal = followed if followed is not None else g.origin
        p = _lerp(g.origin, goal, 1.0 - math.exp(-elapsed / FOLLOW_TIME_S))
    return clamp(p, floor_z)


def clamp(p: Point, floor_z: float) -> Point:
    """Inside the unit sphere, then no lower than the floor (on the sphere: the floor's ring)."""
    x, y, z = p
    norm2 = x * x + y * y + z * z
    if norm2 <= 1.0 and z >= floor_z:
        return p
    norm = math.sqrt(norm2)
    if norm > 1.0:
        x, y, z = x / norm, y / norm, z / norm
    if z < floor_z:
        z = min(floor_z, 1.0)
        h, h_max = math.hypot(x, y), math.sqrt(max(1.0 - z * z, 0.0))
        if h > h_max:
            x, y = x * h_max / h, y * h_max / h
    return (x, y, z)


def _ease(u: float) -> float:
    """Smoothstep: starts and arrives without a jolt."""
    return u * u * (3.0 - 2.0 * u)


def _lerp(a: Point, b: Point, u: float) -> Point:
    return (a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u, a[2] + (b[2] - a[2]) * u)


def _orbit(g: Gesture, elapsed: float) -> Point:
    x, y, z = g.origin
    radius = math.hypot(x, y) or 0.8
    angle = math.atan2(y, x) + 2 * math.pi * g.speed * elapsed
    if g.kind == "spiral":
        u = min(elapsed / max(g.duration_ns / NS, 1e-9), 1.0)
        z = z + (g.target[2] - z) * u
        radius = math.sqrt(max(1.0 - z * z, 0.0)) if abs(z) < 1 else 0.0
    return (radius * math.cos(angle), radius * math.sin(angle), z)


def _along(origin: Point, points: Sequence[Point], u: float) -> Point:
    route = (origin, *points)
    if len(route) == 1 or u <= 0:
        return origin
    if u >= 1:
        return route[-1]
    scaled = u * (len(route) - 1)
    i = int(scaled)
    return _lerp(route[i], route[i + 1], scaled - i)


def _wander(centre: Point, seed: int, t: float) -> Point:
    """Three slow sines per axis (periods 7-23 s), phases fixed by the seed: smooth, bounded,
    never repeating within a piece, and the same in a replay."""
    out = []
    for axis in range(3):
        total = 0.0
        for k, period in enumerate((23.0, 13.0, 7.0)):
            phase = ((seed * 2654435761 + axis * 97 + k * 31) % 1000) / 1000 * 2 * math.pi
            total += math.sin(2 * math.pi * t / period + phase) / (k + 1)
        out.append(centre[axis] + WANDER_RADIUS * total / 1.83)  # 1.83 = 1 + 1/2 + 1/3
    return (out[0], out[1], out[2])
