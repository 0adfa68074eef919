"""The note ledger: every agent note-on gets exactly one note-off on the same port/channel/pitch.

The ledger is pure bookkeeping: it says which bytes must be sent; the scheduler sends them. A note
is named by a serial, so a planned note-off for an older note never cuts a newer re-trigger of the
same pitch (the re-trigger released the older note already).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent import midi
from agent.events import NoteId

Key = tuple[str, int, int]  # (port, channel, pitch)


@dataclass
class NoteLedger:
    _sounding: dict[Key, NoteId] = field(default_factory=dict)
    _channels_used: dict[str, set[int]] = field(default_factory=dict)
    _next_serial: int = 0

    def new_id(self, port: str, channel: int, pitch: int) -> NoteId:
        self._next_serial += 1
        return NoteId(port, channel, pitch, self._next_serial)

    def note_on(self, note: NoteId) -> list[bytes]:
        """Mark `note` sounding; returns the note-off to send first if the pitch is re-triggered."""
        key = (note.port, note.channel, note.pitch)
        self._channels_used.setdefault(note.port, set()).add(note.channel)
        before = [midi.note_off(note.channel, note.pitch)] if key in self._sounding else []
        self._sounding[key] = note
        return before

    def note_off(self, note: NoteId) -> bytes | None:
        """The note-off to send, or None if this note is no longer sounding."""
        key = (note.port, note.channel, note.pitch)
        if self._sounding.get(key) != note:
            return None
        del self._sounding[key]
        return midi.note_off(note.channel, note.pitch)

    def sounding(self, port: str | None = None) -> list[NoteId]:
        return [n for n in self._sounding.values() if port is None or n.port == port]

    def in_order(self, port: str | None = None) -> list[NoteId]:
        """The notes sounding (on one port, or all), in the order they started. A snapshot:
        a release takes them one by one (note_off), each leaving only as its off is sent."""
        return sorted(self.sounding(port), key=lambda n: n.serial)

    def reset_messages(self, port: str | None = None) -> list[tuple[str, bytes]]:
        """After the ledger's note-offs, a panic's tail: CC64=0, CC123, CC120 on every channel
        used (on one port, or all), in midi.channel_reset's order."""
        out = []
        for used_port, channels in sorted(self._channels_used.items()):
            if port is not None and used_port != port:
                continue
            for ch in sorted(channels):
                out += [(used_port, data) for data in midi.channel_reset(ch)]
        return out
