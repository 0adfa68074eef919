"""The beat the agent plays to: from MIDI clock when a player sends it, else from the onsets.

MIDI clock wins while it runs (a drum machine or a DAW knows the tempo exactly); then a beat shared
by the ensemble's tempo leader (policy/ensemble.py), while fresh; otherwise the beat tracker
(listen/beat.py) follows the players' onsets, trusted once it is confident. No clock: every call
takes the event time.
"""

from __future__ import annotations

from agent.events import Heard
from agent.listen.beat import BeatEstimate, BeatTracker
from agent.listen.midi_clock import ClockFollower

CONFIDENT = 0.3  # below this the tracker's grid is a guess: the agent keeps to its own time
PPQN = 24


class Pulse:
    def __init__(self, track_onsets: bool, follow_clock: bool, compound: bool = False) -> None:
        # The tracker costs ~0.3 ms per onset: off when nothing uses it (a harmony-only piece).
        self.tracker = BeatTracker(compound) if track_onsets else None
        self.clock = ClockFollower() if follow_clock else None
        self._clock_beat_ns: int | None = None
        self._shared: tuple[int, int] | None = None  # (a beat's time, period) from the leader

    def share(self, grid: tuple[int, int] | None) -> None:
        """The ensemble's shared beat (None: none now); the caller judges its freshness."""
        self._shared = grid

    def on_onset(self, t_ns: int, velocity: int = 64) -> None:
        """A note started. Louder notes weigh more in the beat's phase: players accent the
        beat, which is what tells a jig's beat from its other eighths."""
        if self.tracker is not None:
            self.tracker.on_onset(t_ns, (velocity / 64) ** 2)

    def on_clock(self, ev: Heard) -> str | None:
        """A system message from the clock player: "start", "stop", "continue", "beat" (the
        clock reached a beat) or None."""
        assert self.clock is not None
        change = self.clock.on_message(ev.time_ns, ev.data)
        if change is None and self.clock.ticks % PPQN == 0 and ev.data[0] == 0xF8:
            self._clock_beat_ns = ev.time_ns
            return "beat"
        return change

    def clock_bpm(self) -> float | None:
        if self.clock is None or not self.clock.running:
            return None
        return self.clock.bpm()

    def estimate(self, t_ns: int) -> BeatEstimate | None:
        return self.tracker.estimate(t_ns) if self.tracker is not None else None

    def grid(self, t_ns: int) -> tuple[int, int] | None:
        """(the time of a beat, the beat period) in ns, or None while no beat is heard."""
        bpm = self.clock_bpm()
        if bpm and self._clock_beat_ns is not None:
            return self._clock_beat_ns, round(60e9 / bpm)
        if self._shared is not None:
            return self._shared
        est = self.estimate(t_ns)
        if est is None or est.confidence < CONFIDENT:
            return None
        return est.phase_ns, est.period_ns

    def period_guess(self, t_ns: int) -> int | None:
        """The beat period however sure the tracker is (None before any estimate)."""
        bpm = self.clock_bpm()
        if bpm:
            return round(60e9 / bpm)
        if self._shared is not None:
            return self._shared[1]
        est = self.estimate(t_ns)
        return est.period_ns if est is not None else None

    def beat_s(self, t_ns: int) -> float | None:
        grid = self.grid(t_ns)
        return grid[1] / 1e9 if grid else None

    def beat_in_bar(self, beats_per_bar: int) -> float | None:
        """Where the MIDI clock says we are in the bar, in beats, if it is running."""
        if self.clock_bpm() is None:
            return None
        assert self.clock is not None
        return (self.clock.ticks / PPQN) % beats_per_bar
