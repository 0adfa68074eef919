"""Events the model reads and writes: one note at a time, as the live agent hears and plays them.

An event is one note onset, with six fields, each a small integer (a token):

| field    | values |
|----------|--------|
| role     | 0 = a human player, 1 = an agent voice |
| pitch    | MIDI pitch 0..127 |
| dt       | time since the previous event's onset, in seconds, on a log scale (DT_EDGES) |
| velocity | 8 levels of 16 (velocity // 16) |
| duration | seconds, log scale (DUR_EDGES); UNKNOWN_DURATION for players |
| position | onset in the bar in twelfths of a beat (0..47, wrapping after four beats), or |
|          | UNKNOWN_POSITION when no tempo is known |

Why players carry no duration: the live agent feeds a player's note when it starts, before anyone
knows how long it will be. Training shows the model player notes the same way, so what it learns
is what it will see on stage. Agent notes carry their duration because the agent must play them.
Events are ordered by onset, then pitch (a chord is fed from the bottom up).

Augmentation (training only): transposition, tempo stretch, velocity offset, and the position
hidden in some sequences so the model also works without a tempo. Changing any of this changes
REPRESENTATION_VERSION; checkpoints record the version they were trained with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.model.originality import join_lines

REPRESENTATION_VERSION = 1

PLAYER, AGENT = 0, 1
N_ROLES = 2
N_PITCHES = 128
# dt bin 0 is "together" (< 15 ms: a chord, or a flam); then 31 log-spaced bins up to 4 s.
DT_EDGES = np.concatenate([[0.015], np.geomspace(0.03, 4.0, 31)])
N_DT = len(DT_EDGES) + 1
N_VELOCITY = 8
DUR_EDGES = np.geomspace(0.04, 8.0, 23)
UNKNOWN_DURATION = len(DUR_EDGES) + 1
N_DURATION = UNKNOWN_DURATION + 1
POSITION_STEPS_PER_BEAT = 12  # twelfths of a beat hold both sixteenths and triplets
N_POSITIONS_KNOWN = 4 * POSITION_STEPS_PER_BEAT
UNKNOWN_POSITION = N_POSITIONS_KNOWN
N_POSITIONS = N_POSITIONS_KNOWN + 1
FIELDS = ("role", "pitch", "dt", "velocity", "duration", "position")


def _bin_centres(edges: np.ndarray, low: float) -> np.ndarray:
    """A representative value per bin: geometric centre between neighbouring edges."""
    bounds = np.concatenate([[low], edges, [edges[-1] * 1.5]])
    centres: np.ndarray = np.sqrt(np.maximum(bounds[:-1], 1e-4) * bounds[1:])
    return centres


DT_VALUES = _bin_centres(DT_EDGES, 0.0)
DT_VALUES[0] = 0.0
DUR_VALUES = _bin_centres(DUR_EDGES, 0.02)
VELOCITY_VALUES = np.arange(N_VELOCITY) * 16 + 8


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """One note as the model sees it, in real units (seconds, MIDI values)."""

    role: int
    pitch: int
    dt_s: float
    velocity: int
    duration_s: float | None  # None: not known (a player's note as it starts)
    beat_in_bar: float | None  # None: no tempo known


@dataclass(frozen=True, slots=True)
class Tokens:
    """The same note as model tokens (what the network reads)."""

    role: int
    pitch: int
    dt: int
    velocity: int
    duration: int
    position: int


def dt_token(seconds: float) -> int:
    return int(np.searchsorted(DT_EDGES, seconds, side="right"))


def duration_token(seconds: float | None) -> int:
    if seconds is None:
        return UNKNOWN_DURATION
    return int(np.searchsorted(DUR_EDGES, seconds, side="right"))


def velocity_token(velocity: int) -> int:
    return min(max(velocity, 0), 127) // 16


def velocity_in_bin(token: int, where: float) -> int:
    """A velocity of bin `token` (velocity_token's inverse): `where` in [0, 1) from its lowest
    to its highest, never 0 (a note-on of velocity 0 is a note-off)."""
    return max(1, int(token) * 16 + min(int(where * 16), 15))


def position_token(beat_in_bar: float | None) -> int:
    if beat_in_bar is None:
        return UNKNOWN_POSITION
    return round(beat_in_bar * POSITION_STEPS_PER_BEAT) % N_POSITIONS_KNOWN


def encode(ev: ModelEvent) -> Tokens:
    return Tokens(ev.role, min(max(ev.pitch, 0), 127), dt_token(ev.dt_s),
                  velocity_token(ev.velocity), duration_token(ev.duration_s),
                  position_token(ev.beat_in_bar))


class NoteArrays(Protocol):
    """What a corpus work offers (agent.model.corpus.Work satisfies it)."""

    @property
    def collection(self) -> str: ...
    @property
    def bpm(self) -> float: ...
    @property
    def bar_beats(self) -> float: ...
    @property
    def onset(self) -> np.ndarray: ...
    @property
    def duration(self) -> np.ndarray: ...
    @property
    def pitch(self) -> np.ndarray: ...
    @property
    def velocity(self) -> np.ndarray: ...
    @property
    def voice(self) -> np.ndarray: ...


def eval_roles(work: NoteArrays) -> np.ndarray:
    """The fixed role assignment used for validation, tests and benchmarks.

    Chorales: the soprano is the player, the other three voices are the agent (accompaniment).
    Single-line tunes: two-bar phrases alternate, player first (call and response).
    int64 [n].
    """
    roles: np.ndarray
    if int(work.voice.max(initial=0)) > 0:
        roles = (work.voice != 0).astype(np.int64)
    else:
        roles = np.floor(work.onset / (2 * work.bar_beats)).astype(np.int64) % 2
    return roles


def random_roles(work: NoteArrays, rng: np.random.Generator) -> np.ndarray:
    """Training roles: any one voice may be the player; tunes alternate with a random phase."""
    roles: np.ndarray
    voices = int(work.voice.max(initial=0)) + 1
    if voices > 1:
        roles = (work.voice != rng.integers(voices)).astype(np.int64)
    else:
        phrase = np.floor(work.onset / (2 * work.bar_beats)).astype(np.int64)
        roles = (phrase + rng.integers(2)) % 2
    return roles


@dataclass(frozen=True)
class Augment:
    transpose: int = 0
    tempo_scale: float = 1.0  # >1 plays faster
    velocity_offset: int = 0
    hide_position: bool = False

    @staticmethod
    def draw(rng: np.random.Generator) -> Augment:
        return Augment(transpose=int(rng.integers(-6, 6)),
                       tempo_scale=float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))),
                       velocity_offset=int(rng.integers(-30, 31)),
                       hide_position=bool(rng.random() < 0.2))


def work_tokens(work: NoteArrays, roles: np.ndarray, aug: Augment = Augment()) -> np.ndarray:
    """Every note of a work as tokens: int64 [n, 6] in FIELDS order, sorted by (onset, pitch)."""
    order = np.lexsort((work.pitch, work.onset))
    onset = work.onset[order]
    seconds_per_beat = 60.0 / (work.bpm * aug.tempo_scale)
    onset_s = onset * seconds_per_beat
    dt = np.diff(onset_s, prepend=onset_s[:1])
    role = roles[order]
    pitch = np.clip(work.pitch[order].astype(np.int64) + aug.transpose, 0, 127)
    velocity = np.clip(work.velocity[order].astype(np.int64) + aug.velocity_offset, 1, 127)
    duration = np.searchsorted(DUR_EDGES, work.duration[order] * seconds_per_beat, side="right")
    duration = np.where(role == PLAYER, UNKNOWN_DURATION, duration)
    if aug.hide_position:
        position = np.full(len(onset), UNKNOWN_POSITION)
    else:
        in_bar = np.mod(onset, work.bar_beats)
        position = np.rint(in_bar * POSITION_STEPS_PER_BEAT).astype(np.int64) % N_POSITIONS_KNOWN
    return np.stack([role, pitch, np.searchsorted(DT_EDGES, dt, side="right"),
                     velocity // 16, duration, position], axis=1).astype(np.int64)


def voice_orders(work: NoteArrays) -> list[np.ndarray]:
    """Each voice's notes in time order (a chord low to high): indexes into the work's
    arrays, int64 [n_v] per voice. The copy guard's lines and the live memory's corpus lines
    (model/memory_from.py) are both these."""
    orders = []
    for v in np.unique(work.voice):
        at = np.flatnonzero(work.voice == v)
        orders.append(at[np.lexsort((work.pitch[at], work.onset[at]))])
    return orders


def melodic_lines(work: NoteArrays) -> list[np.ndarray]:
    """Each voice's pitches in time order (what 'copying a piece' would copy). int64 [n_v]."""
    return [work.pitch[order].astype(np.int64) for order in voice_orders(work)]


def copy_lines(works: Iterable[NoteArrays]) -> np.ndarray:
    """originality.join_lines of every voice of every work: what the copy guard calls a copy
    of (a model's corpora, a performance's memory_from corpora)."""
    return join_lines([line for w in works for line in melodic_lines(w)])


def decode_time(tokens: Sequence[int]) -> tuple[float, float | None]:
    """(dt seconds, duration seconds or None) of a token row's dt and duration fields."""
    dur_token = tokens[4]
    duration = None if dur_token == UNKNOWN_DURATION else float(DUR_VALUES[dur_token])
    return float(DT_VALUES[tokens[2]]), duration
