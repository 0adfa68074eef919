"""What the band sounds like now, across players: key, chord, dynamics, tempo, roles.

Fed note by note by the pipeline; read by the modes (constraints, comping) and published as
state when it changes. No clock: every call takes the event time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.events import PhraseNote
from agent.listen.beat import BeatEstimate
from agent.listen.harmony import (
    ChordEstimate,
    KeyEstimate,
    PitchClassProfile,
    estimate_chord,
    estimate_key,
)
from agent.listen.texture import Strikes

KEY_HALF_LIFE_S = 30.0  # the key changes slowly: what was played half a minute ago counts half
CHORD_HALF_LIFE_S = 0.5  # the chord is what sounds now and just before
HELD_WEIGHT_S = 0.5  # a held note counts in the chord as if it had just sounded this long
DEFAULT_VELOCITY = 80.0
TEMPO_CHANGE = 0.01  # a tempo is published again when it moves by this share
NS_PER_S = 1e9


@dataclass
class Hearing:
    key_profile: PitchClassProfile = field(
        default_factory=lambda: PitchClassProfile(half_life=KEY_HALF_LIFE_S))
    chord_profile: PitchClassProfile = field(
        default_factory=lambda: PitchClassProfile(half_life=CHORD_HALF_LIFE_S))
    held: dict[tuple[str, int, int], int] = field(default_factory=dict)  # -> onset ns
    velocities: deque[int] = field(default_factory=lambda: deque(maxlen=16))
    last_onset_ns: int | None = None
    strikes: Strikes = field(default_factory=Strikes)  # struck together, changing? (texture)
    _published: dict[str, dict[str, Any]] = field(default_factory=dict)

    def note_on(self, player: str, channel: int, pitch: int, velocity: int, t_ns: int) -> None:
        self.held[(player, channel, pitch)] = t_ns
        self.velocities.append(velocity)
        self.last_onset_ns = t_ns
        self.strikes.note_on(pitch, t_ns)

    def note_off(self, player: str, channel: int, pitch: int) -> None:
        self.held.pop((player, channel, pitch), None)

    def release_player(self, player: str) -> None:
        for key in [k for k in self.held if k[0] == player]:
            del self.held[key]

    def note_ended(self, note: PhraseNote) -> None:
        """A whole note: the key and the chord hear it duration-weighted, as measured."""
        onset, duration = note.onset_ns / NS_PER_S, note.duration_ns / NS_PER_S
        self.key_profile.add(note.pitch, onset, duration)
        self.chord_profile.add(note.pitch, onset, duration)

    def key(self) -> KeyEstimate | None:
        return estimate_key(self.key_profile)

    def key_scale(self) -> frozenset[int] | None:
        key = self.key()
        return key.scale if key is not None else None

    def chord(self, t_ns: int) -> ChordEstimate | None:
        """The chord sounding: notes held now, and notes that ended in the last moments."""
        v = self.chord_profile.at(t_ns / NS_PER_S).copy()
        for (_p, _c, pitch) in self.held:
            v[pitch % 12] += HELD_WEIGHT_S
        bass = min((k[2] for k in self.held), default=None)
        return estimate_chord(v, bass) if np.any(v > 0) else None

    def recent_velocity(self) -> float:
        return float(np.mean(self.velocities)) if self.velocities else DEFAULT_VELOCITY

    def changes(self, t_ns: int, role_of: dict[str, str], clock_bpm: float | None,
                beat: BeatEstimate | None) -> dict[str, dict[str, Any]]:
        """State that changed since last asked: tempo, key (and chord), roles."""
        state: dict[str, dict[str, Any]] = {"roles": dict(role_of)}
        if clock_bpm is not None:
            state["tempo"] = {"bpm": round(clock_bpm, 2), "confidence": 1.0, "source": "clock"}
        elif beat is not None:
            state["tempo"] = {"bpm": round(beat.bpm, 2), "confidence": round(beat.confidence, 2),
                              "source": "onsets"}
        key, chord = self.key(), self.chord(t_ns)
        state["key"] = {"key": key.name if key else None, "chord": chord.name if chord else None}
        out = {}
        for kind, payload in state.items():
            old = self._published.get(kind)
            if old is not None and (payload == old or (
                    kind == "tempo" and abs(payload["bpm"] / old["bpm"] - 1) < TEMPO_CHANGE
                    and payload["source"] == old["source"])):
                continue
            self._published[kind] = payload
            out[kind] = payload
        return out
