"""Following MIDI clock (24 PPQN): tempo, start/stop/continue, song position, clock loss.

Tempo is the least-squares slope of clock times against their tick numbers. Unlike the mean of
intervals (whose error is set by the jitter of just the first and last tick) the slope averages
every tick. Its error still grows with tempo squared: over 96 clocks, ±5 ms of jitter gave 0.5 BPM
at 192 BPM now and then, so a steady tempo is fitted over up to two bars (192 clocks). To follow
a change quickly, the last 48 clocks are fitted too; when they disagree with the long fit by more
than CHANGE (far beyond their own jitter), the window restarts from those 48 clocks.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from agent import midi

PPQN = 24
CLOCK_BPM = (20.0, 400.0)  # a clock outside this is no tempo (see bpm())
CLOCKS_PER_16TH = 6
LOSS_NS = 500_000_000  # no clock for this long while running: free-run at the last tempo
LONG, SHORT = 192, 48  # clocks in the steady fit and in the change detector
CHANGE = 0.02  # relative slope difference taken as a tempo change (short-fit noise: ~0.3%)


def _slope(points: collections.deque[tuple[int, int]] | list[tuple[int, int]]) -> float:
    """Least-squares ns per clock of (tick, time) points."""
    ticks, times = np.array(points, dtype=np.float64).T
    dx = ticks - ticks.mean()
    return float(dx @ (times - times.mean()) / (dx @ dx))


@dataclass
class ClockFollower:
    running: bool = False
    lost: bool = False
    ticks: int = 0  # clocks since Start (or since the song position on Continue)
    _times: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)

    def on_message(self, t_ns: int, data: bytes) -> str | None:
        """Update from one system message; returns "start", "stop", "continue" or None."""
        status = data[0]
        if status == midi.CLOCK:
            self.lost = False
            self.ticks += 1
            self._times.append((self.ticks, t_ns))
            if len(self._times) > LONG:
                self._times.popleft()
            if len(self._times) >= 2 * SHORT:
                recent = list(self._times)[-SHORT:]
                if abs(_slope(recent) / _slope(self._times) - 1) > CHANGE:
                    self._times = collections.deque(recent)  # the tempo changed: forget the old
            return None
        if status == midi.START:
            self.running, self.ticks = True, 0
            self._times.clear()
            return "start"
        if status == midi.CONTINUE:
            self.running = True
            self._times.clear()  # the gap while stopped is no tempo evidence
            return "continue"
        if status == midi.STOP:
            self.running = False
            return "stop"
        if status == midi.SONG_POSITION and len(data) == 3:
            self.ticks = (data[1] | data[2] << 7) * CLOCKS_PER_16TH
        return None

    def bpm(self) -> float | None:
        if len(self._times) < 3:
            return None
        slope_ns_per_tick = _slope(self._times)
        if slope_ns_per_tick <= 0:
            return None
        bpm = 60e9 / (slope_ns_per_tick * PPQN)
        # A burst of clocks (a stalled USB queue delivering them together) is no tempo: the
        # agent would tick (and divide by a beat) of a few microseconds.
        return bpm if CLOCK_BPM[0] <= bpm <= CLOCK_BPM[1] else None

    def check_loss(self, now_ns: int) -> bool:
        """True once when the clock stops arriving while running (then free-run)."""
        if self.running and not self.lost and self._times and \
                now_ns - self._times[-1][1] > LOSS_NS:
            self.lost = True
            return True
        return False
