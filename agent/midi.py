"""MIDI 1.0 messages as bytes: constructors, predicates, and a byte-stream parser.

The parser exists because mido's tokenizer does not handle running status, and a raw byte path
must survive anything (stage-requirements 13, 14): real-time bytes inside other messages,
truncated messages, stray data bytes, oversized SysEx. It never raises; what it drops is counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

NOTE_OFF = 0x80
NOTE_ON = 0x90
CONTROL_CHANGE = 0xB0
SYSEX_START = 0xF0
SYSEX_END = 0xF7
CLOCK = 0xF8
START = 0xFA
CONTINUE = 0xFB
STOP = 0xFC
SONG_POSITION = 0xF2

CC_SUSTAIN = 64
CC_SOSTENUTO = 66
CC_ALL_SOUND_OFF = 120
CC_RESET_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

# Data bytes that follow each status (channel voice by high nibble, system common by status).
_CHANNEL_DATA_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_COMMON_DATA_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}
_UNDEFINED = {0xF4, 0xF5, 0xF9, 0xFD}


def note_on(channel: int, pitch: int, velocity: int) -> bytes:
    return bytes((NOTE_ON | channel, pitch, velocity))


def note_off(channel: int, pitch: int) -> bytes:
    return bytes((NOTE_OFF | channel, pitch, 0))


def control_change(channel: int, control: int, value: int) -> bytes:
    return bytes((CONTROL_CHANGE | channel, control, value))


def channel_reset(channel: int) -> list[bytes]:
    """Sustain off, all notes off, all sound off on one channel, in that order: CC123 is ignored
    while sustain is held, and not every device honours it (CC120 cuts the sound itself)."""
    return [control_change(channel, CC_SUSTAIN, 0), control_change(channel, CC_ALL_NOTES_OFF, 0),
            control_change(channel, CC_ALL_SOUND_OFF, 0)]


def is_note_on(data: bytes | Sequence[int]) -> bool:
    """A note-on with velocity > 0 (velocity 0 means note-off by the MIDI spec); bytes, or a
    message as rtmidi's callback gets it (a list)."""
    return len(data) == 3 and data[0] & 0xF0 == NOTE_ON and data[2] > 0


def is_note_off(data: bytes) -> bool:
    return len(data) == 3 and (
        data[0] & 0xF0 == NOTE_OFF or (data[0] & 0xF0 == NOTE_ON and data[2] == 0)
    )


def is_message(data: bytes) -> bool:
    """Exactly one complete MIDI message, as MidiByteParser yields them (what a log's `data`
    holds): a status byte, then as many data bytes (< 0x80) as it takes; a SysEx from 0xF0 to
    0xF7."""
    if not data or data[0] < 0x80:
        return False
    status = data[0]
    if status == SYSEX_START:
        return len(data) >= 2 and data[-1] == SYSEX_END and max(data[1:-1], default=0) < 0x80
    if status >= 0xF8:
        return len(data) == 1 and status not in _UNDEFINED
    needed = _COMMON_DATA_LEN.get(status) if status >= 0xF0 else _CHANNEL_DATA_LEN[status & 0xF0]
    return needed is not None and len(data) == 1 + needed and max(data[1:], default=0) < 0x80


def channel_of(data: bytes) -> int | None:
    """0-based channel of a channel-voice message, None for system messages."""
    return data[0] & 0x0F if data and 0x80 <= data[0] < 0xF0 else None


@dataclass
class ParserStats:
    messages: int = 0
    stray_data_bytes: int = 0
    truncated: int = 0
    sysex_too_long: int = 0
    undefined_status: int = 0

    @property
    def dropped(self) -> int:
        return self.stray_data_bytes + self.truncated + self.sysex_too_long + self.undefined_status


@dataclass
class MidiByteParser:
    """Turns an arbitrary byte stream into complete MIDI messages.

    State survives across `feed` calls, so a message split over two reads is joined.
    """

    sysex_limit: int = 256
    stats: ParserStats = field(default_factory=ParserStats)
    _running: int | None = None  # running status (channel voice only)
    _partial: bytearray = field(default_factory=bytearray)
    _needed: int = 0  # data bytes still missing for _partial
    _sysex: bytearray | None = None
    _sysex_overflow: bool = False

    def feed(self, chunk: bytes | bytearray | list[int]) -> Iterator[bytes]:
        for raw in chunk:
            byte = raw & 0xFF
            if byte >= 0xF8:  # real-time: may appear anywhere, touches no state
                if byte in _UNDEFINED:
                    self.stats.undefined_status += 1
                    continue
                self.stats.messages += 1
                yield bytes((byte,))
            elif self._sysex is not None:
                yield from self._sysex_byte(byte)
            elif byte >= 0x80:
                yield from self._status_byte(byte)
            else:
                yield from self._data_byte(byte)

    def _status_byte(self, byte: int) -> Iterator[bytes]:
        if self._needed:  # a new status cuts short the message in progress
            self.stats.truncated += 1
        self._partial.clear()
        self._needed = 0
        if byte < 0xF0:
            self._running = byte
            self._start(byte, _CHANNEL_DATA_LEN[byte & 0xF0])
            return
        self._running = None  # system common cancels running status
        if byte == SYSEX_START:
            self._sysex = bytearray((byte,))
            self._sysex_overflow = False
        elif byte in _COMMON_DATA_LEN:
            needed = _COMMON_DATA_LEN[byte]
            if needed == 0:
                self.stats.messages += 1
                yield bytes((byte,))
            else:
                self._start(byte, needed)
        else:  # 0xF4, 0xF5, or a stray 0xF7
            self.stats.undefined_status += 1

    def _start(self, status: int, needed: int) -> None:
        self._partial.append(status)
        self._needed = needed

    def _data_byte(self, byte: int) -> Iterator[bytes]:
        if not self._needed:
            if self._running is None:
                self.stats.stray_data_bytes += 1
                return
            self._start(self._running, _CHANNEL_DATA_LEN[self._running & 0xF0])
        self._partial.append(byte)
        self._needed -= 1
        if not self._needed:
            self.stats.messages += 1
            message = bytes(self._partial)
            self._partial.clear()
            yield message

    def _sysex_byte(self, byte: int) -> Iterator[bytes]:
        assert self._sysex is not None
        if byte < 0x80:
            if len(self._sysex) >= self.sysex_limit:
                self._sysex_overflow = True
            else:
                self._sysex.append(byte)
            return
        message, overflow = self._sysex, self._sysex_overflow
        self._sysex = None
        if byte == SYSEX_END:
            if overflow:
                self.stats.sysex_too_long += 1
            else:
                self.stats.messages += 1
                yield bytes(message) + bytes((SYSEX_END,))
            return
        self.stats.truncated += 1  # any other status ends an unterminated SysEx
        yield from self._status_byte(byte)
