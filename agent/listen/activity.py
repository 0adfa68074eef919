"""How each player is playing, and the role that follows: soloing, comping or resting.

Per player, over a sliding window of recent onsets: density (onsets per second), dynamics (mean
velocity), register (median pitch and range) and polyphony (how many notes sound together). Pure:
every call takes the event time; the window forgets by time, not by count, so a player who stops
fades out of the figures.

Roles, as a band hears them:
- resting: nothing held and no onset for `rest_s` (two bars at a moderate tempo by default);
- soloing: the busiest line of the band, mostly one note at a time;
- comping: playing, but not the soloist (chords, sparse figures, or a second line).
With one player, a playing player is soloing unless they mostly play chords (then comping: the
agent might take the line).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

NS = 1_000_000_000
CHORD_NS = 40_000_000  # onsets closer than this sound as one chord


@dataclass(frozen=True)
class Activity:
    """One player's recent playing. Figures are None when the window is empty."""

    onsets: int  # in the window
    density: float  # onsets per second over the window
    velocity: float | None  # mean
    median_pitch: float | None
    low: int | None
    high: int | None
    polyphony: float  # mean notes per attack (1.0 = a single line)
    last_onset_ns: int | None
    holding: bool


SOLOING, COMPING, RESTING = "soloing", "comping", "resting"


@dataclass
class PlayerActivity:
    window_s: float = 4.0
    _onsets: deque[tuple[int, int, int]] = field(default_factory=deque)  # (t, pitch, velocity)
    _held: set[tuple[int, int]] = field(default_factory=set)
    _last_onset: int | None = None

    def note_on(self, t_ns: int, channel: int, pitch: int, velocity: int) -> None:
        self._onsets.append((t_ns, pitch, velocity))
        self._held.add((channel, pitch))
        self._last_onset = t_ns
        self._forget(t_ns)

    def note_off(self, t_ns: int, channel: int, pitch: int) -> None:
        self._held.discard((channel, pitch))

    def _forget(self, now_ns: int) -> None:
        horizon = now_ns - int(self.window_s * NS)
        while self._onsets and self._onsets[0][0] < horizon:
            self._onsets.popleft()

    def summary(self, now_ns: int) -> Activity:
        self._forget(now_ns)
        if not self._onsets:
            return Activity(0, 0.0, None, None, None, None, 0.0, self._last_onset,
                            bool(self._held))
        times = np.array([o[0] for o in self._onsets])
        pitches = np.array([o[1] for o in self._onsets])
        velocities = np.array([o[2] for o in self._onsets])
        attacks = 1 + int(np.count_nonzero(np.diff(times) > CHORD_NS))
        return Activity(
            onsets=len(times), density=len(times) / self.window_s,
            velocity=float(velocities.mean()), median_pitch=float(np.median(pitches)),
            low=int(pitches.min()), high=int(pitches.max()), polyphony=len(times) / attacks,
            last_onset_ns=self._last_onset, holding=bool(self._held))


def roles(activities: dict[str, Activity], now_ns: int, rest_s: float = 4.0,
          chordal: float = 1.8) -> dict[str, str]:
    """Each player's role now. `chordal`: mean notes per attack from which a part is comping."""
    playing = {name: a for name, a in activities.items()
               if a.holding or (a.last_onset_ns is not None
                                and now_ns - a.last_onset_ns < rest_s * NS)}
    out = dict.fromkeys(activities, RESTING)
    lines = {name: a for name, a in playing.items() if a.polyphony < chordal}
    soloist = max(lines, key=lambda n: (lines[n].density, lines[n].median_pitch or 0.0),
                  default=None)
    for name in playing:
        out[name] = SOLOING if name == soloist else COMPING
    return out


def soloist_low(role_of: dict[str, str], band: dict[str, Activity]) -> int | None:
    """The lowest recent note of the soloist (an accompaniment stays under it)."""
    lows = [low for name, role in role_of.items()
            if role == SOLOING and (low := band[name].low) is not None]
    return min(lows) if lows else None


def everyone_resting(role_of: dict[str, str]) -> bool:
    return all(r == RESTING for r in role_of.values())


def soloists(role_of: dict[str, str]) -> Iterable[str]:
    return (n for n, r in role_of.items() if r == SOLOING)
