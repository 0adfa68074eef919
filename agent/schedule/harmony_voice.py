"""The immediate reaction: harmony notes struck with each heard note and released with it.

The notes go straight to the scheduler with the heard note's own time as deadline (no plan, no
waiting); each is keyed by who played what, so its release follows the player's note exactly.

The pedals: `release` is called when the player's note stops sounding (listen/keys.py), not when
its key goes up, so while the player's sustain or sostenuto pedal holds a note, its harmony rings
too, and ends when the pedal lifts or the key is struck again. A keyboard player doubling a part
expects the second hand to ring as the first does, and no more. We hold the harmony notes rather
than send CC64 on the agent's channel: a mirrored pedal would also hold the agent's own answers
and comping on that channel, and it would be one more thing to lift on every path that silences
the agent (mute sends only the ledger's note-offs). Held notes stay in the note ledger, so panic,
mute, stop, a lost output and the maximum note length release them like any other note.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.events import Heard, NoteId
from agent.policy.respond import harmony_pitches
from agent.schedule.scheduler import Scheduler


class HarmonyVoice:
    def __init__(self, scheduler: Scheduler, outputs: Sequence[str], channel: int,
                 intervals: Sequence[int]) -> None:
        self.scheduler, self.outputs = scheduler, tuple(outputs)
        self.channel, self.intervals = channel, tuple(intervals)  # channel 0-15
        self._sounding: dict[tuple[str, int, int], list[NoteId]] = {}  # (player, ch, pitch)

    def strike(self, ev: Heard) -> None:
        """A heard note-on: its harmony now (deadline = the heard note's own time)."""
        ch, pitch, velocity = ev.data[0] & 0x0F, ev.data[1], ev.data[2]
        key = (ev.player, ch, pitch)
        self.release(*key, ev.time_ns)  # a re-struck key: its old harmony ends first
        self._sounding[key] = [
            self.scheduler.note_on(ev.time_ns, port, self.channel, p, velocity,
                                   cause_ns=ev.time_ns)
            for p in harmony_pitches(pitch, self.intervals) for port in self.outputs]

    def release(self, player: str, channel: int, pitch: int, t_ns: int) -> None:
        for note in self._sounding.pop((player, channel, pitch), []):
            self.scheduler.note_off(t_ns, note)

    def release_player(self, player: str, t_ns: int) -> None:
        for key in [k for k in self._sounding if k[0] == player]:
            self.release(*key, t_ns)

    def forget(self) -> None:
        """The scheduler silenced everything (mute): nothing of ours sounds any more."""
        self._sounding.clear()
