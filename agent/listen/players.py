"""What each player is doing: the notes sounding, and the notes of the current phrase.

No I/O and no clock: every method takes the event time. A phrase is everything played since the
last phrase boundary, which the policy declares (silence with nothing sounding, see policy/).
Notes are paired, and held by the pedals, in keys.py: a note a pedal holds is sounding, and its
duration in the phrase runs until the pedal lets it go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.events import Heard, PhraseNote
from agent.listen.keys import Keys, Sound

MAX_PHRASE_NOTES = 512  # per player: what an answer can develop, and a bound on the work


@dataclass
class PlayerState:
    keys: Keys = field(default_factory=Keys)
    phrase: list[PhraseNote] = field(default_factory=list)
    # (channel, pitch, onset) of notes still ringing in the pedal that a phrase already took
    taken: set[tuple[int, int, int]] = field(default_factory=set)


@dataclass
class Listening:
    players: dict[str, PlayerState]

    @classmethod
    def for_players(cls, names: Iterable[str]) -> Listening:
        return cls({name: PlayerState() for name in names})

    def sound(self, ev: Heard) -> Sound:
        """Update from one message: the notes it ended (see keys.Sound)."""
        state = self.players[ev.player]
        sound = state.keys.hear(ev.time_ns, ev.data)
        for note in (*sound.ended, *sound.grace):
            key = (note.channel, note.pitch, note.onset_ns)
            if key in state.taken:
                state.taken.discard(key)  # its phrase took it while the pedal held it
            else:
                state.phrase.append(note)
        if len(state.phrase) > MAX_PHRASE_NOTES:  # a phrase that never ends (a pedal held
            del state.phrase[:-MAX_PHRASE_NOTES]  # down all night) keeps its latest notes
        return sound

    def release_player(self, name: str, t_ns: int) -> list[PhraseNote]:
        """The player's port vanished: whatever they held, pedals too, is over now."""
        state = self.players[name]
        ended = state.keys.release_all(t_ns)
        state.phrase += ended
        return list(ended)

    def forget_phrase(self, name: str) -> None:
        """The player's notes in the current phrase were not theirs (the agent's own, played
        back to it): no phrase is made of them."""
        self.players[name].phrase = []

    def anyone_holding(self) -> bool:
        """A note sounds: a key is down, or a pedal holds one."""
        return any(s.keys.sounding() for s in self.players.values())

    def phrase_start(self) -> int | None:
        """When the current phrase's first note started (None: nothing since the boundary)."""
        return min((n.onset_ns for s in self.players.values() for n in s.phrase), default=None)

    def caller(self) -> str | None:
        """Who played most of the current phrase (the last to stop, among equals)."""
        playing = [(len(s.phrase), max(n.onset_ns + n.duration_ns for n in s.phrase), name)
                   for name, s in self.players.items() if s.phrase]
        return max(playing)[2] if playing else None

    def keys_down(self) -> bool:
        """A key is down somewhere (a pedal holding notes does not count)."""
        return any(s.keys.any_down() for s in self.players.values())

    def take_phrase(self, ringing_at: int | None = None,
                    keys_down: bool = False) -> list[PhraseNote]:
        """Every player's notes since the last boundary, by onset; starts a new phrase. With
        `ringing_at`, the notes a pedal still holds (with `keys_down`, every note sounding: a
        phrase taken as it ends) belong to it too, as they are then (when they end, they are
        not counted again in the next phrase)."""
        notes = [n for s in self.players.values() for n in s.phrase]
        if ringing_at is not None:
            for s in self.players.values():
                ringing = [n for n in s.keys.ringing(ringing_at, keys_down)
                           if (n.channel, n.pitch, n.onset_ns) not in s.taken]
                s.taken.update((n.channel, n.pitch, n.onset_ns) for n in ringing)
                notes += ringing
        for s in self.players.values():
            s.phrase = []
        return sorted(notes, key=lambda n: (n.onset_ns, n.pitch))


def notes_heard(messages: Iterable[Heard], names: Iterable[str], end_ns: int) -> list[PhraseNote]:
    """Every note of a stream of messages as listening pairs them (pedals and odd MIDI as in
    keys.py); notes still sounding at `end_ns` end there. By onset."""
    names = list(names)
    listening = Listening.for_players(names)
    for ev in messages:
        listening.sound(ev)
    for name in names:
        listening.release_player(name, end_ns)
    return listening.take_phrase()
