"""What each player is doing: held notes, and the notes of the current phrase.

No I/O and no clock: every method takes the event time. A phrase is everything played since the
last phrase boundary, which the policy declares (silence with no held notes, see policy/).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent import midi
from agent.events import Heard, PhraseNote


@dataclass
class PlayerState:
    # (channel, pitch) -> (onset, velocity) of every key held down now
    held: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    phrase: list[PhraseNote] = field(default_factory=list)


@dataclass
class Listening:
    players: dict[str, PlayerState]

    @classmethod
    def for_players(cls, names: list[str]) -> Listening:
        return cls({name: PlayerState() for name in names})

    def hear(self, ev: Heard) -> PhraseNote | None:
        """Update from one message; returns the note it completed, if any."""
        state = self.players[ev.player]
        data = ev.data
        if midi.is_note_on(data):
            key = (data[0] & 0x0F, data[1])
            finished = self._release(state, key, ev.time_ns)  # a re-struck key ends the old note
            state.held[key] = (ev.time_ns, data[2])
            return finished
        if midi.is_note_off(data):
            return self._release(state, (data[0] & 0x0F, data[1]), ev.time_ns)
        return None

    def release_player(self, name: str, t_ns: int) -> list[PhraseNote]:
        """The player's port vanished: whatever they held is over now."""
        state = self.players[name]
        return [n for key in list(state.held) if (n := self._release(state, key, t_ns))]

    @staticmethod
    def _release(state: PlayerState, key: tuple[int, int], t_ns: int) -> PhraseNote | None:
        if key not in state.held:
            return None
        onset, velocity = state.held.pop(key)
        note = PhraseNote(onset, key[1], velocity, t_ns - onset, key[0])
        state.phrase.append(note)
        return note

    def anyone_holding(self) -> bool:
        return any(s.held for s in self.players.values())

    def caller(self) -> str | None:
        """Who played most of the current phrase (the last to stop, among equals)."""
        playing = [(len(s.phrase), max(n.onset_ns + n.duration_ns for n in s.phrase), name)
                   for name, s in self.players.items() if s.phrase]
        return max(playing)[2] if playing else None

    def take_phrase(self) -> list[PhraseNote]:
        """Every player's notes since the last boundary, by onset; starts a new phrase."""
        notes = sorted((n for s in self.players.values() for n in s.phrase),
                       key=lambda n: (n.onset_ns, n.pitch))
        for s in self.players.values():
            s.phrase = []
        return notes
