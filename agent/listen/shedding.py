"""Shedding input that cannot be handled in time, without leaving a note hanging.

Under a flood on a busy machine, input waits in the queue (io/midi_in.py) longer than it takes
to arrive: handled anyway, every harmony note comes as late as the queue is long (0.5-0.7 s on a
loaded 2-core machine). A performer expects the agent never to lag behind the music, so a
note-on that has waited too long when its turn comes is shed: not heard, not answered, counted.
Only note-ons are shed. Note-offs, pedals, all-notes-off, clock and every other message are kept
whatever their age: they end sounds, and cost little.

Pairing: a shed note-on's own note-off is shed too (the next note-off of that key), so the notes
heard stay whole, and no note-off comes for a note the agent did not hear (one that came within
a millisecond of the key's next note-on would make that a zero-length grace note:
listen/keys.py). Unless the key is held by a note-on that was kept: the shed note-on was then a
re-strike, and the next note-off must pass to end the held note. So a note-off is shed only
when its note-on was; the worst a mistake here can do is let a note-off pass for a note that was
not heard, which releases nothing.

One instance sees one stream, in order, on one thread: the input queue uses one per port on the
loop (age), and one per port on rtmidi's thread (a full queue refuses note-ons first, with the
same pairing). Pure: times and bytes are given; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence


def _key(data: Sequence[int]) -> int:
    """(channel, pitch) as one int: cheaper to hash than a tuple, on a path taken per message."""
    return (data[0] & 0x0F) << 7 | data[1]


class PortShedding:
    """One stream's keys held by note-ons kept, and keys whose next note-off is to be shed
    (their note-on was). Each set holds at most 16 x 128 keys."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._unpaired: set[int] = set()

    def admit(self, data: Sequence[int], shed_note_on: bool) -> bool:
        """Every message of the stream, in order: True to keep it, False to shed it.
        `shed_note_on`: a note-on is to be shed now (too old; the queue full)."""
        if len(data) != 3:
            return True
        kind = data[0] & 0xF0
        if kind == 0x90 and data[2] > 0:
            key = _key(data)
            if shed_note_on:
                if key not in self._held:  # else a re-strike: the next note-off is the held one's
                    self._unpaired.add(key)
                return False
            self._held.add(key)
            self._unpaired.discard(key)  # this note-on owns the key's next note-off
            return True
        if kind == 0x80 or kind == 0x90:  # a note-off, in either form
            key = _key(data)
            if key in self._unpaired:
                self._unpaired.discard(key)
                return False
            self._held.discard(key)
        return True
