"""Which notes sound on one instrument: its keys and pedals, and MIDI's odd cases paired one way.

The one place where MIDI messages become notes: live listening (players.py, and through it
replayed files and evaluation) and the corpus reader (model/corpus.py) all pair notes here, so a
file and the same messages played live give the same notes. Pure: every call takes the time, in
whatever unit the caller counts (nanoseconds live, ticks in a file); a note's `onset_ns` and
`duration_ns` are in that unit.

A note sounds from its note-on until its key is let go, or, while a pedal holds the key, until
the pedal lifts (or the key is struck again):
- sustain (CC64 >= 64): every key let go while it is down keeps sounding until it lifts;
- sostenuto (CC66 >= 64): the keys down at the moment it went down keep sounding until it lifts
  (a piano's middle pedal); keys struck after it went down are not held by it.
CC121 (reset all controllers) lifts both pedals, CC123 (all notes off) lets go of every key (a
pedal still holds them), CC120 (all sound off) ends everything at once.

Odd but common MIDI, one rule each:
- A grace note written by an exporter as a zero-length note, sorted note-off first (music21 does
  this): a note-off that finds its key up, then a note-on of that key at the same moment
  (within SAME_MOMENT_NS live; the same tick in a file). The note-on is that zero-length note: it
  ends where it starts. We keep the length the file gives rather than invent one: the main note
  starts at the same tick, and a made-up length would put a note in the chord the score does not
  have. Paired naively, the key would sound until its next note-off, often bars later.
- A key struck again while it is down (two overlapping notes of one key, or a DAW that writes
  the next note-on before the note-off at the same tick): one key sounds once, so the old note
  ends at the re-strike, and the note-off owed to the old note, the next one, is ignored (live,
  if it comes within OWED_WINDOW_NS: a later one was the new note's, the old one's lost); the
  note-off after that ends the new note. Paired first-in-first-out, the new note would end at
  the old note's note-off instead, often at once.
- Any other note-off of a key that is not down releases nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent import midi
from agent.events import PhraseNote

SAME_MOMENT_NS = 1_000_000  # live: a note-off and a note-on sent together arrive within this
OWED_WINDOW_NS = 500_000_000  # see Keys.owed_within
PEDAL_DOWN = 64  # a pedal value from this up is down (the MIDI 1.0 switch threshold)

Key = tuple[int, int]  # (channel, pitch)


@dataclass(frozen=True, slots=True)
class Sound:
    """What one message did to the sound.

    `ended`: the notes it ended (a key let go, a pedal lifted, the old note of a key struck
    again), before any note it starts. `grace`: the zero-length grace note it started and ended
    at once (none or one), after its start.
    """

    ended: tuple[PhraseNote, ...] = ()
    grace: tuple[PhraseNote, ...] = ()


SILENT = Sound()


@dataclass
class Keys:
    same_moment: int = SAME_MOMENT_NS
    down: dict[Key, tuple[int, int]] = field(default_factory=dict)  # -> (onset, velocity)
    pedalled: dict[Key, tuple[int, int]] = field(default_factory=dict)  # let go, a pedal holds it
    # Live, a note-off owed to a re-struck key is one that arrives within this of the re-strike
    # (an overlap, a DAW's legato); a later one ends the new note. A keyboard cannot strike a
    # key that is down, so live a re-strike is most often a lost note-off: owed without a limit,
    # every later note-off of the key would be skipped and the key held all night.
    owed_within: int = OWED_WINDOW_NS
    _owed: dict[Key, int] = field(default_factory=dict)  # re-struck key -> when
    _orphan_at: dict[Key, int] = field(default_factory=dict)  # a note-off that released nothing
    _sustain: set[int] = field(default_factory=set)  # channels whose CC64 is down
    _caught: dict[int, frozenset[int]] = field(default_factory=dict)  # channel -> CC66's pitches

    def sounding(self) -> bool:
        return bool(self.down or self.pedalled)

    def any_down(self) -> bool:
        """A key is down (not only a pedal holding a note)."""
        return bool(self.down)

    def ringing(self, t: int, keys_down: bool = False) -> list[PhraseNote]:
        """The notes a pedal holds (and with `keys_down`, those whose key is down too), as
        they are at t (they go on sounding)."""
        held = {**self.pedalled, **self.down} if keys_down else self.pedalled
        return [PhraseNote(onset, key[1], velocity, t - onset, key[0])
                for key, (onset, velocity) in held.items()]

    def hear(self, t: int, data: bytes) -> Sound:
        if len(data) != 3:
            return SILENT
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        key = (channel, data[1])
        if midi.is_note_on(data):
            if key in self.down:  # struck again: its next note-off was the old note's
                self._owed[key] = t
            ended = self._end(key, t)
            self.down[key] = (t, data[2])
            orphan = self._orphan_at.pop(key, None)
            if orphan is not None and 0 <= t - orphan <= self.same_moment:
                return Sound(ended, self._let_go(key, t))
            return Sound(ended)
        if midi.is_note_off(data):
            if key not in self.down:
                self._orphan_at[key] = t
                return SILENT
            struck = self._owed.pop(key, None)
            if struck is not None and t - struck <= self.owed_within:
                return SILENT
            return Sound(self._let_go(key, t))
        if status == midi.CONTROL_CHANGE:
            return Sound(self._control(channel, data[1], data[2], t))
        return SILENT

    def release_all(self, t: int) -> tuple[PhraseNote, ...]:
        """The instrument is gone (or the file ends): every sounding note ends now."""
        ended = tuple(n for key in [*self.down, *self.pedalled] for n in self._end(key, t))
        self._owed.clear()
        self._orphan_at.clear()
        self._sustain.clear()
        self._caught.clear()
        return ended

    def _control(self, channel: int, control: int, value: int, t: int) -> tuple[PhraseNote, ...]:
        if control == midi.CC_SUSTAIN:
            if value >= PEDAL_DOWN:
                self._sustain.add(channel)
            else:
                self._sustain.discard(channel)
        elif control == midi.CC_SOSTENUTO:
            if value < PEDAL_DOWN:
                self._caught.pop(channel, None)
            elif channel not in self._caught:  # caught as it goes down, not again while down
                self._caught[channel] = frozenset(p for c, p in self.down if c == channel)
        elif control == midi.CC_RESET_CONTROLLERS:
            self._sustain.discard(channel)
            self._caught.pop(channel, None)
        elif control == midi.CC_ALL_NOTES_OFF:
            return tuple(n for key in [k for k in self.down if k[0] == channel]
                         for n in self._let_go(key, t))
        elif control == midi.CC_ALL_SOUND_OFF:
            gone = [k for k in [*self.down, *self.pedalled] if k[0] == channel]
            for key in gone:
                self._owed.pop(key, None)
            return tuple(n for key in gone for n in self._end(key, t))
        else:
            return ()
        return tuple(n for key in [k for k in self.pedalled if k[0] == channel]
                     if not self._held_by_pedal(key) for n in self._end(key, t))

    def _held_by_pedal(self, key: Key) -> bool:
        return key[0] in self._sustain or key[1] in self._caught.get(key[0], ())

    def _let_go(self, key: Key, t: int) -> tuple[PhraseNote, ...]:
        """The key goes up: its note ends, unless a pedal holds it."""
        self._owed.pop(key, None)  # (owed only when all notes off lets go of a re-struck key)
        if self._held_by_pedal(key):
            self.pedalled[key] = self.down.pop(key)
            return ()
        return self._end(key, t)

    def _end(self, key: Key, t: int) -> tuple[PhraseNote, ...]:
        struck = self.down.pop(key, None) or self.pedalled.pop(key, None)
        if struck is None:
            return ()
        onset, velocity = struck
        return (PhraseNote(onset, key[1], velocity, t - onset, key[0]),)


def file_keys() -> Keys:
    """Keys for a MIDI file's ticks: its "same moment" is the same tick, and a key struck again
    owes its old note's note-off however late it comes (a file loses no message on the way)."""
    return Keys(same_moment=0, owed_within=1 << 62)
