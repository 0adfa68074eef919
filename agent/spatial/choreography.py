"""The music moves the voices: each new phrase of the agent starts a new gesture. Pure.

- register -> elevation: the higher the phrase, the higher the voice (within the rig's reach);
- density -> speed: an orbit turns faster when the phrase has more notes per second;
- a new phrase -> a new gesture, in the section's style (performance.toml `spatial` per section);
- a response turns toward the caller: an answer to a player glides to that player's side of the
  room (their position in `[spatial.players]`), arriving on the answer's first note.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from agent.spatial.frame import aed_to_xyz
from agent.spatial.trajectory import Gesture, Point

STYLES = ("orbit", "spiral", "wander", "static", "glide", "path", "follow")
LOW_PITCH, HIGH_PITCH = 36, 96  # the register mapped onto the rig's elevations
TOP_ELEVATION_DEG = 60.0
TURNS_PER_NOTE = 0.04  # orbit speed (turns/s) per note/s of the phrase
RESPONSES = ("answer", "continue", "mirror")


def elevation_for(pitch: float, floor_deg: float) -> float:
    """The phrase's register as an elevation between the rig's floor and TOP_ELEVATION_DEG."""
    u = min(max((pitch - LOW_PITCH) / (HIGH_PITCH - LOW_PITCH), 0.0), 1.0)
    low = max(floor_deg, 0.0)
    return low + (TOP_ELEVATION_DEG - low) * u


def direction(azimuth_deg: float, elevation_deg: float, distance: float = 1.0) -> Point:
    """ADM xyz of a direction (azimuth positive to the left): frame.aed_to_xyz for one."""
    x, y, z = aed_to_xyz(azimuth_deg, elevation_deg, distance).tolist()
    return (x, y, z)


def azimuth_of(p: Point) -> float:
    """frame.xyz_to_aed's azimuth for one point, with libm's atan2: numpy's SIMD arctan2 can
    differ in the last bit, and gestures (hence replays) must stay exactly as recorded."""
    return math.degrees(math.atan2(-p[0], p[1]))


def new_gesture(style: str, part: str, now_ns: int, first_onset_ns: int, origin: Point,
                pitches: Sequence[int], span_ns: int, caller: Point | None, floor_deg: float,
                rng: random.Random, caller_name: str = "") -> Gesture:
    """The gesture a phrase starts. `pitches` and `span_ns` (first onset to last) describe the
    phrase; `caller` is where the player it answers stands, if known (`caller_name`: who)."""
    pitch = sorted(pitches)[len(pitches) // 2] if pitches else 60
    elevation = elevation_for(pitch, floor_deg)
    per_s = len(pitches) / max(span_ns / 1e9, 0.25)
    arrive = max(first_onset_ns, now_ns + 1)
    if style == "follow" and caller_name:  # stays with the player, wherever they go
        return Gesture("follow", now_ns, origin, player=caller_name)
    if caller is not None and part in RESPONSES:
        return Gesture("glide", now_ns, origin, direction(azimuth_of(caller), elevation),
                       arrive_ns=arrive)
    here = azimuth_of(origin) if origin[:2] != (0.0, 0.0) else 0.0
    if style == "orbit":
        start = direction(here, elevation, 0.9)
        return Gesture("orbit", now_ns, start, speed=rng.choice((-1, 1)) * TURNS_PER_NOTE * per_s)
    if style == "spiral":
        top = elevation_for(HIGH_PITCH, floor_deg) if rng.random() < 0.5 else max(floor_deg, 0)
        return Gesture("spiral", now_ns, direction(here, elevation, 0.9),
                       target=direction(here, top), speed=TURNS_PER_NOTE * per_s,
                       duration_ns=max(span_ns, 1_000_000_000))
    if style == "wander":
        return Gesture("wander", now_ns, origin, target=direction(here, elevation, 0.6),
                       seed=rng.randrange(1 << 30))
    if style == "path":
        points = tuple(direction(here + rng.uniform(-90, 90), elevation + rng.uniform(-15, 15))
                       for _ in range(3))
        return Gesture("path", now_ns, origin, points=points,
                       duration_ns=max(span_ns, 1_000_000_000))
    target = direction(here + rng.uniform(-60, 60), elevation)
    if style == "static":
        return Gesture("static", now_ns, origin, target=target)
    return Gesture("glide", now_ns, origin, target=target, arrive_ns=arrive)
