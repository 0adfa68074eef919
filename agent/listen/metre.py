"""Where the bar starts: which beat is the downbeat, from where the players put their accents.

Players lean on the downbeat: it is played louder, held longer, and more notes start together on
it (a chord, the bass with the tune). Each onset on a beat adds its accent to that beat's place in
the bar (its number modulo beats_per_bar); the place with the most accent is the downbeat.
Accents fade with a half-life of a few bars, so a shift (a dropped beat, a new tune) is followed.
Beats are numbered by the caller (the agent counts them as they pass); onsets off the beat (more
than OFF_BEAT of a beat away) do not vote. Pure: no clock, every call takes the event's beat.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

OFF_BEAT = 0.2  # beats: an onset farther than this from a beat is not on it
HALF_LIFE_BEATS = 32.0  # accents from eight 4/4 bars ago count half
VELOCITY_SCALE = 12.0  # velocity points that count as one unit of accent
LONG_NOTE_BEATS = 0.75  # a note held this long (or longer) on a beat is an agogic accent
LOWEST_BONUS = 0.5  # a note below every note of the last few beats counts as a bass note
MIN_VOTES = 4  # onsets on beats needed before a downbeat is named


@dataclass
class BarPhase:
    beats_per_bar: int
    _accent: np.ndarray = field(init=False)
    _latest_beat: int | None = None
    _votes: int = 0
    _velocities: deque[int] = field(default_factory=lambda: deque(maxlen=32))
    _pitches: deque[int] = field(default_factory=lambda: deque(maxlen=8))

    def __post_init__(self) -> None:
        self._accent = np.zeros(max(self.beats_per_bar, 1))

    def onset(self, beat: float, velocity: int, pitch: int) -> None:
        """A note started at `beat` (a fractional beat number: 12.03 is just after beat 12)."""
        nearest = round(beat)
        lowest = not self._pitches or pitch < min(self._pitches)
        self._pitches.append(pitch)
        mean = float(np.mean(self._velocities)) if self._velocities else float(velocity)
        self._velocities.append(velocity)
        if abs(beat - nearest) > OFF_BEAT or self.beats_per_bar < 2:
            return
        self._age_to(nearest)
        # Never below 0: a soft note on a beat is weak evidence of a downbeat, not evidence
        # against one (a place no note fell on would otherwise win).
        self._accent[nearest % self.beats_per_bar] += max(
            0.0, 1.0 + (velocity - mean) / VELOCITY_SCALE + (LOWEST_BONUS if lowest else 0.0))
        self._votes += 1

    def ended(self, onset_beat: float, duration_beats: float) -> None:
        """A note ended: a long one on a beat is an accent there."""
        nearest = round(onset_beat)
        if abs(onset_beat - nearest) <= OFF_BEAT and duration_beats >= LONG_NOTE_BEATS \
                and self.beats_per_bar >= 2:
            self._age_to(nearest)
            self._accent[nearest % self.beats_per_bar] += min(duration_beats, 2.0) / 2

    def downbeat(self) -> int | None:
        """The place in the bar (beat number modulo beats_per_bar) of the downbeat, or None
        before enough has been heard. A one-beat bar: always 0."""
        if self.beats_per_bar < 2:
            return 0
        if self._votes < MIN_VOTES:
            return None
        return int(np.argmax(self._accent))

    def _age_to(self, beat: int) -> None:
        if self._latest_beat is not None and beat > self._latest_beat:
            self._accent *= 0.5 ** ((beat - self._latest_beat) / HALF_LIFE_BEATS)
        if self._latest_beat is None or beat > self._latest_beat:
            self._latest_beat = beat
