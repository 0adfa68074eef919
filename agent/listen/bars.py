"""The bars as they go by: beats numbered as they pass, where a bar starts, and which half bar
(the span a chord usually lasts) a moment falls in. No clock: every call takes the time.

Beats are counted by the agent's beat ticks (`tick`); a moment between ticks is placed on the
grid the pulse hears now, so when the tempo tracker changes its mind, every later moment moves
with it and nothing drifts from an old grid. Where the bar starts is the metre's business
(listen/metre.py): the place in the bar where the players' accents fall.
"""

from __future__ import annotations

import math

from agent.listen.metre import BarPhase
from agent.listen.progression import HalfBar, half_bars_per_bar
from agent.listen.pulse import Pulse


class Bars:
    def __init__(self, pulse: Pulse, beats_per_bar: int) -> None:
        self.pulse = pulse
        self.beats_per_bar = beats_per_bar
        self.halves = half_bars_per_bar(beats_per_bar)
        self.metre = BarPhase(beats_per_bar)
        self.number = 0  # of the latest beat ticked, since listening began
        self._tick_ns: int | None = None  # its time

    def tick(self, t_ns: int) -> None:
        """A beat is reached. Beats that passed while none ticked (a long rest) are counted
        too, so that the bar's phase survives it."""
        grid = self.pulse.grid(t_ns)
        if grid is None:
            return  # no beat heard: the next tick with one counts the beats since the last
        if self._tick_ns is not None:
            self.number += max(1, round((t_ns - self._tick_ns) / grid[1]))
        self._tick_ns = t_ns

    def last_tick_ns(self) -> int | None:
        return self._tick_ns

    def beat_at(self, t_ns: int) -> float | None:
        """The beat number of a moment (fractional), on the grid heard now; None before the
        first tick or while no beat is heard."""
        return self._beat_on(t_ns, self.pulse.grid(t_ns))

    def _beat_on(self, t_ns: int, grid: tuple[int, int] | None) -> float | None:
        if grid is None or self._tick_ns is None:
            return None
        phase, period = grid
        anchor = phase + round((self._tick_ns - phase) / period) * period
        return self.number + (t_ns - anchor) / period

    def onset(self, t_ns: int, velocity: int, pitch: int) -> None:
        """A player's note started: its accent tells the metre where bars start."""
        beat = self.beat_at(t_ns)
        if beat is not None:
            self.metre.onset(beat, velocity, pitch)

    def ended(self, onset_ns: int, duration_ns: int) -> None:
        grid = self.pulse.grid(onset_ns)
        beat = self._beat_on(onset_ns, grid)
        if beat is not None and grid is not None:
            self.metre.ended(beat, duration_ns / grid[1])

    def half_bar(self, t_ns: int) -> HalfBar | None:
        """The half bar a moment falls in (the whole bar when the bar has an odd number of
        beats), counted from the downbeat the metre hears (beat 0 until it hears one)."""
        grid = self.pulse.grid(t_ns)
        beat = self._beat_on(t_ns, grid)
        if grid is None or beat is None:
            return None
        period = grid[1]
        span = self.beats_per_bar // self.halves
        downbeat = self.metre.downbeat() or 0
        index = int((beat - downbeat + 1e-6) // span)
        start_beat = downbeat + index * span
        start_ns = t_ns - round((beat - start_beat) * period)
        return HalfBar(index, start_ns, span * period, index % self.halves == 0, period)

    def bar_of(self, beat: float) -> int:
        """The number of the bar a beat (a beat number, see beat_at) belongs to, counted as half
        bars are (a beat up to half a bar before a bar line, a pickup, belongs to the bar it
        leads into), on the bar lines heard now."""
        downbeat = self.metre.downbeat() or 0
        return math.floor((beat - downbeat) / self.beats_per_bar + 0.5)

    def next_strong(self, t_ns: int) -> tuple[int, bool, int, int] | None:
        """(the first strong beat after t_ns: a half bar's start, whether it is a bar line,
        the bar's length, the beat's) on the grid heard now, once the metre has heard where
        bars start; None before."""
        at = self.half_bar(t_ns)
        if at is None or self.metre.downbeat() is None:
            return None
        start = at.start_ns + at.length_ns
        bar_line = self.halves == 1 or not at.starts_bar  # the next half bar starts a bar
        return start, bar_line, self.halves * at.length_ns, at.beat_ns
