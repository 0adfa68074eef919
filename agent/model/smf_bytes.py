"""Standard MIDI Files as bytes: a lean reader and writer for corpus import (the writer also
makes a performance's performance.mid: agent/record/smf.py).

mido reads every message into an object and checks it, which costs ~5.5 us a message: 33 ms for
a 3,000-note file of five voices, against 3.7 ms here (measured on the 2-core machine the
project runs on; bench/corpus_import.py measures both in one run). Importing a folder of a few
hundred files in seconds needs the lean walk, so the importer reads the file's chunks here and
hands each channel message on as the 1-3 bytes a MIDI port would deliver (agent/listen/keys.py
pairs them, as it pairs live input). tests/unit/test_smf_bytes.py checks the reader message for
message against mido, and that mido reads back what the writer writes.

The reader is stricter than mido where a file is broken (a chunk shorter than it says is
`truncated`, and named so) and more lenient where players' files are merely untidy: chunks of
unknown type are skipped (the SMF spec says to), running status survives meta events and SysEx,
a RIFF "RMID" wrapper is opened, and tracks beyond the header's count are read too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

# Data bytes after each channel status (high nibble), and after the system common messages a
# file should not hold but some do (ignored; F4, F5, F9 and FD are undefined: the file is broken).
_DATA_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}
META = 0xFF
META_TRACK_NAME = 0x03
META_MARKER = 0x06
META_END_OF_TRACK = 0x2F
META_TEMPO = 0x51
META_TIME_SIGNATURE = 0x58
META_KEY_SIGNATURE = 0x59


class SmfError(Exception):
    """The bytes are not a Standard MIDI File this reader takes; the message says why, in words
    a musician can act on (no path: the caller names the file)."""


@dataclass(frozen=True)
class SmfTrack:
    name: str | None  # its first track_name meta (latin-1, as mido reads it), None without one
    messages: list[tuple[int, bytes]]  # (tick, channel message), in file order
    metas: list[tuple[int, int, bytes]]  # (tick, meta type, data), in file order
    sysex: list[tuple[int, bytes]]  # (tick, data after the F0/F7 and the length)
    end: int  # tick of the track's last event (end of track, or its last message)


@dataclass(frozen=True)
class Smf:
    format: int  # 0 or 1
    ticks_per_beat: int | None  # metrical time; None for SMPTE time
    ticks_per_second: float | None  # SMPTE time (frames per second x ticks per frame)
    tracks: tuple[SmfTrack, ...]


def read_smf(data: bytes) -> Smf:
    """The file's tracks; SmfError naming what is wrong (empty, not MIDI, truncated, type 2)."""
    if not data:
        raise SmfError("empty file")
    data = _unwrap_riff(data)
    if data[:4] != b"MThd":
        raise SmfError("not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise SmfError("truncated: the header is cut short")
    header_len = int.from_bytes(data[4:8], "big")
    if header_len < 6:
        raise SmfError(f"not a MIDI file (a header of {header_len} bytes)")
    fmt, declared, division = struct.unpack(">HHH", data[8:14])
    if fmt == 2:
        raise SmfError("SMF type 2 (independent sequences, one pattern per track): not "
                       "supported; save it as type 1")
    if fmt > 2:
        raise SmfError(f"SMF type {fmt}: not a MIDI file type (0, 1)")
    tpb: int | None = None
    tps: float | None = None
    if division & 0x8000:  # SMPTE: -frames per second in the high byte, ticks per frame
        fps = 256 - (division >> 8)
        if fps not in (24, 25, 29, 30) or division & 0xFF == 0:
            raise SmfError(f"an SMPTE time division of {fps} frames a second and "
                           f"{division & 0xFF} ticks a frame: not a valid file")
        tps = (29.97 if fps == 29 else fps) * (division & 0xFF)
    elif division == 0:
        raise SmfError("its division (ticks per beat) is 0")
    else:
        tpb = division
    tracks: list[SmfTrack] = []
    pos = 8 + header_len
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        start, end = pos + 8, pos + 8 + size
        if end > len(data):
            if kind != b"MTrk":
                break  # a cut chunk of another kind after the tracks: nothing of ours lost
            raise SmfError(f"truncated: track {len(tracks) + 1} of {declared} has "
                           f"{len(data) - start} of its {size} bytes")
        if kind == b"MTrk":
            tracks.append(_track(data, start, end, len(tracks) + 1))
        pos = end
    if len(tracks) < declared:
        raise SmfError(f"truncated: {len(tracks)} of its {declared} tracks are there")
    return Smf(fmt, tpb, tps, tuple(tracks))


def _unwrap_riff(data: bytes) -> bytes:
    """The SMF inside a RIFF "RMID" file (Windows' .rmi), else the bytes as they are."""
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == b"data":
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise SmfError("a RIFF RMID file without its MIDI data")


def _varlen(data: bytes, i: int, end: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if i >= end:
            raise IndexError
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i
    raise ValueError("a variable-length number of more than 4 bytes")


def _track(data: bytes, i: int, end: int, number: int) -> SmfTrack:
    messages: list[tuple[int, bytes]] = []
    metas: list[tuple[int, int, bytes]] = []
    sysex: list[tuple[int, bytes]] = []
    name: str | None = None
    tick = 0
    running = 0
    try:
        while i < end:
            if data[i] < 0x80:  # most delta times are one byte: no call
                tick += data[i]
                i += 1
            else:
                delta, i = _varlen(data, i, end)
                tick += delta
            status = data[i]
            if status == META:
                if i + 2 > end:
                    raise IndexError
                kind = data[i + 1]
                length, i = _varlen(data, i + 2, end)
                body = data[i:i + length]
                i += length
                if i > end:
                    raise IndexError
                if kind == META_END_OF_TRACK:
                    break
                metas.append((tick, kind, body))
                if kind == META_TRACK_NAME and name is None:
                    name = body.decode("latin-1")
                continue
            if status in (0xF0, 0xF7):
                length, i = _varlen(data, i + 1, end)
                sysex.append((tick, data[i:i + length]))
                i += length
                if i > end:
                    raise IndexError
                continue
            if status >= 0xF0:
                if status not in _SYSTEM_LEN:
                    raise ValueError(f"undefined status byte {status:#04x}")
                i += 1 + _SYSTEM_LEN[status]
                if i > end:
                    raise IndexError
                continue
            if status >= 0x80:
                running = status
                i += 1
            elif not running:
                raise ValueError(f"a data byte {status:#04x} with no status before it")
            n = _DATA_LEN[running & 0xF0]
            if i + n > end:
                raise IndexError
            body = data[i:i + n]
            if (body[0] | body[-1]) & 0x80:
                raise ValueError(f"data byte {max(body):#04x} above 127")
            messages.append((tick, bytes((running, *body))))
            i += n
    except IndexError:
        raise SmfError(f"truncated: track {number} ends in the middle of a message") from None
    except ValueError as e:
        raise SmfError(f"corrupt: track {number}: {e}") from None
    return SmfTrack(name, messages, metas, sysex, tick)


# --- writing ---------------------------------------------------------------------------------

def meta(kind: int, body: bytes) -> bytes:
    """A meta event's bytes (after its delta time)."""
    return bytes((META, kind)) + varlen_bytes(len(body)) + body


def write_smf(tracks: Iterable[Iterable[tuple[int, bytes]]], ticks_per_beat: int,
              running_status: bool = False) -> bytes:
    """A type-1 file: each track's (tick, event bytes) in the order given (ticks must not go
    back), each ended by an end-of-track meta at its last tick. Without `running_status` every
    message is written whole; with it, a channel message's status byte is left out when it
    repeats the last one written, as mido writes (a meta event or a SysEx in between writes it
    again), so that a file mido wrote is written to the byte."""
    chunks = []
    for track in tracks:
        body = bytearray()
        last = 0
        running = -1  # the channel status a message may leave out (-1: none)
        for tick, event in track:
            body += varlen_bytes(tick - last)
            status = event[0]
            if status == running:
                body += event[1:]
            else:
                body += event
                if running_status:
                    running = status if status < 0xF0 else -1
            last = tick
        body += b"\x00" + meta(META_END_OF_TRACK, b"")
        chunks.append(b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))
    header = b"MThd" + struct.pack(">LHHH", 6, 1, len(chunks), ticks_per_beat)
    return header + b"".join(chunks)


def varlen_bytes(value: int) -> bytes:
    if value < len(_SHORT_VARLEN):
        return _SHORT_VARLEN[value]
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


# Delta times of one or two bytes, looked up (most of a file's events).
_SHORT_VARLEN = [bytes((v,)) if v < 0x80 else bytes(((v >> 7) | 0x80, v & 0x7F))
                 for v in range(1 << 14)]
