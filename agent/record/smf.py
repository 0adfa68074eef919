"""Standard MIDI Files: export a log (one track per player, one for the agent), import a band part.

Export uses a fixed 120 BPM tempo map at 960 ticks per beat, so one tick is 1/1920 s (~0.5 ms) and
the file's times are the log's real times (a DAW shows seconds correctly; bars are nominal). The
conductor track carries the tempo and the markers (`record mark`, take starts and stops).
"""

from __future__ import annotations

import contextlib
import io
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import mido

from agent.errors import RecordingError
from agent.events import Heard
from agent.files import FileRefused, read_regular
from agent.midi import SYSEX_START
from agent.model.smf_bytes import (
    META_MARKER,
    META_TEMPO,
    META_TRACK_NAME,
    meta,
    varlen_bytes,
    write_smf,
)
from agent.record.schema import MAX_TIME_NS

TICKS_PER_BEAT = 960
TEMPO_US = 500_000  # 120 BPM
NS_PER_TICK = TEMPO_US * 1000 // TICKS_PER_BEAT
AGENT_TRACK = "stage-agent"
SUSTAIN = 64  # the sustain pedal's controller number
# A band part read as a recording: ~1.4 M messages at most, which mido holds in ~400 MB (a
# two-hour part played densely is well under 1 MiB).
MAX_MIDI_BYTES = 4 << 20


def export(header: dict[str, Any], records: Iterable[dict[str, Any]], path: Path,
           start_ns: int | None = None, end_ns: int | None = None) -> None:
    """The log as a type-1 file: a conductor track (tempo, markers), then one track per player
    and one for the agent (Tracks, fed every record, then Tracks.write)."""
    tracks = Tracks([p["name"] for p in header["config"]["players"]])
    for r in records:
        tracks.add(r)
    tracks.write(path, start_ns, end_ns)


class _Messages:
    """One track's MIDI messages in the order they came: their bytes end to end in one
    bytearray, their times and ends in arrays. No object a message: a long show's messages cost
    ~17 bytes each to hold, and nothing to the garbage collector's passes."""

    def __init__(self) -> None:
        self.times = array("q")
        self.ends = array("q")
        self.data = bytearray()

    def append(self, t_ns: int, data: bytes) -> None:
        self.times.append(t_ns)
        self.data += data
        self.ends.append(len(self.data))

    def in_time_order(self) -> Iterator[tuple[int, bytes]]:
        """(time, message), by time. Stable: a track's records are in time order already, give
        or take a reordering of messages stamped a tick apart (a negative delta cannot be
        written)."""
        times, ends, data = self.times, self.ends, self.data
        for i in sorted(range(len(times)), key=times.__getitem__):
            yield times[i], bytes(data[ends[i - 1] if i else 0:ends[i]])


class Tracks:
    """A log's MIDI file, gathered record by record (`add`), then written (`write`): export
    feeds it a log's records; a Session keeps one as a tap on its log, so that the end of a run
    need not read the log back (record/session.py)."""

    def __init__(self, players: Sequence[str]) -> None:
        self._tracks = {name: _Messages() for name in [*players, AGENT_TRACK]}
        self._markers: list[tuple[int, str]] = []
        self._first_ns: int | None = None  # the earliest MIDI message, even one left out
        self._last_ns: int | None = None  # the latest record

    def add(self, r: dict[str, Any], data: bytes | None = None) -> None:
        """`data`: an `in` or `emit` record's message, when the caller decoded it already."""
        kind, t = r["k"], r["t"]
        if self._last_ns is None or t > self._last_ns:
            self._last_ns = t
        if kind == "in" or kind == "emit":
            if self._first_ns is None or t < self._first_ns:
                self._first_ns = t
            data = bytes.fromhex(r["data"]) if data is None else data
            # A file holds channel messages and SysEx; system common and real-time bytes
            # (song position, tune request, clock, ...) are timing, not music: they stay in
            # the log only.
            if data and data[0] <= 0xF0:
                self._tracks[r["player"] if kind == "in" else AGENT_TRACK].append(t, data)
        elif kind == "ctl" and r.get("what") == "record":
            text = marker_text(r)
            if text is not None:
                self._markers.append((t, text))

    def write(self, path: Path, start_ns: int | None = None, end_ns: int | None = None) -> None:
        """`start_ns` is the file's time 0 (default: its first MIDI message); `end_ns` is when
        notes still sounding are released (default: the last record's time). A slice of a log
        (a take, a capture) can start inside a note or end inside one: a note-on whose note-off
        is not in the records gets one at `end_ns` (and a held sustain pedal is lifted there),
        so nothing hangs in a DAW; a note-off whose note-on came before the slice is kept (it
        silences nothing). Markers: `record mark` commands (their label, else "mark") and take
        starts and stops.

        The bytes are mido's for the same file (running status and all: tests/unit/
        test_smf_export.py checks it), written here at ~1 us a message rather than mido's ~8
        (an object made and checked for each message, then encoded): 1.6 s of the end of a
        200,000-record show (bench/finish.py)."""
        t0 = start_ns if start_ns is not None else (
            self._first_ns if self._first_ns is not None else 0)
        end = end_ns if end_ns is not None else (
            self._last_ns if self._last_ns is not None else t0)
        conductor = [(0, meta(META_TEMPO, TEMPO_US.to_bytes(3, "big")))]
        for t, text in sorted(self._markers, key=lambda m: m[0]):
            conductor.append((_tick(t, t0), meta(META_MARKER, _latin1(text))))
        tracks = [conductor, *(_track(name, messages, t0, end)
                               for name, messages in self._tracks.items())]
        data = write_smf(tracks, TICKS_PER_BEAT, running_status=True)
        try:
            with path.open("wb") as f:
                f.write(data)
        except OSError:  # a disk full half-way: no file is better than a cut one
            with contextlib.suppress(OSError):
                path.unlink()
            raise


def marker_text(record: dict[str, Any]) -> str | None:
    """What a `record` command puts in the file as a marker (None: nothing)."""
    action = record.get("action")
    if action == "mark":
        return str(record.get("label") or "mark")
    if action == "start":
        return "take start" + (f": {record['name']}" if record.get("name") else "")
    if action == "stop":
        return "take stop"
    return None


def _track(name: str, messages: _Messages, t0: int, end_ns: int) -> list[tuple[int, bytes]]:
    """(tick, event) of a track: its name, its messages, then a release of what they leave on."""
    events = [(0, meta(META_TRACK_NAME, _latin1(name)))]
    sounding: dict[tuple[int, int], int] = {}  # (channel, pitch) -> note-ons not yet released
    pedal: set[int] = set()  # channels whose sustain pedal is down
    tick = 0
    for t, data in messages.in_time_order():
        tick = _tick(t, t0)
        if data[0] == SYSEX_START:  # in a file: F0, the length of the rest, then the rest
            events.append((tick, b"\xf0" + varlen_bytes(len(data) - 1) + data[1:]))
        else:
            events.append((tick, data))
            _follow(data, sounding, pedal)
    tick = max(_tick(end_ns, t0), tick)
    for (channel, pitch), count in sorted(sounding.items()):
        # mido's note_off, as the file had it: velocity 64
        events.extend([(tick, bytes((0x80 | channel, pitch, 64)))] * count)
    for channel in sorted(pedal):
        events.append((tick, bytes((0xB0 | channel, SUSTAIN, 0))))
    return events


def _follow(data: bytes, sounding: dict[tuple[int, int], int], pedal: set[int]) -> None:
    """Which notes (and sustain pedals) a track leaves on after this message."""
    if len(data) != 3:
        return
    status, channel = data[0] & 0xF0, data[0] & 0x0F
    key = (channel, data[1])
    if status == 0x90 and data[2] > 0:
        sounding[key] = sounding.get(key, 0) + 1
    elif status in (0x80, 0x90) and sounding.get(key):
        sounding[key] -= 1
        if not sounding[key]:
            del sounding[key]
    elif status == 0xB0 and data[1] == SUSTAIN:
        if data[2] >= 64:
            pedal.add(channel)
        else:
            pedal.discard(channel)


def _tick(t_ns: int, t0: int) -> int:
    return max(t_ns - t0, 0) // NS_PER_TICK


def _latin1(text: str) -> bytes:
    """Text as a file holds it: meta text is Latin-1 (as mido reads and writes it), and a
    character outside it becomes "?" (the log keeps the text as it was)."""
    return text.encode("latin-1", "replace")


def read_players(path: Path) -> list[Heard]:
    """A band part from any DAW: each track with notes is a player named after the track.

    Times follow the file's own tempo map (tempo changes on any track apply to all, as in type-1
    files). Returns the messages of every player, in time order.
    """
    mid = read_midi(path)
    tempo_changes = sorted(
        (tick, msg.tempo) for tick, msg in _absolute(mid) if msg.type == "set_tempo")
    events: list[tuple[int, int, Heard]] = []
    for index, track in enumerate(mid.tracks):
        name = next((m.name for m in track if m.type == "track_name" and m.name.strip()),
                    f"track {index + 1}")
        tick = 0
        for msg in track:
            tick += msg.time
            if not msg.is_meta and msg.type not in ("sysex",):
                t_ns = _tick_to_ns(tick, tempo_changes, mid.ticks_per_beat)
                events.append((t_ns, index, Heard(t_ns, name, bytes(msg.bytes()))))
    if events and max(t for t, _, _ in events) > MAX_TIME_NS:
        raise RecordingError(f"{path}: its times run past {MAX_TIME_NS} ns (292 years): "
                             "not a band part")
    named = {h.player for _, _, h in events if _is_note(h.data)}
    # Keep the tracks that play notes; their other channel messages (pedal, CC) come along.
    return [h for _, _, h in sorted(events, key=lambda e: (e[0], e[1])) if h.player in named]


def time_signature(path: Path) -> tuple[int, int] | None:
    """The file's first time signature (numerator, denominator), None when it has none."""
    mid = read_midi(path)
    first = min(((tick, msg) for tick, msg in _absolute(mid) if msg.type == "time_signature"),
                key=lambda x: x[0], default=None)
    return None if first is None else (first[1].numerator, first[1].denominator)


def read_midi(path: Path) -> mido.MidiFile:
    """A Standard MIDI File, parsed: RecordingError for anything that is not one (and for a
    FIFO, a device or a file over MAX_MIDI_BYTES, refused before reading), or whose division
    (ticks per beat) is 0, where every time would divide by zero."""
    try:
        data = read_regular(path, MAX_MIDI_BYTES)
    except FileRefused as e:
        raise RecordingError(f"{path}: {e}") from None
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception as e:  # mido raises many types for a file that is not MIDI
        raise RecordingError(f"{path}: not a readable MIDI file: {e}") from None
    if mid.ticks_per_beat <= 0:
        raise RecordingError(f"{path}: not a readable MIDI file: its division (ticks per "
                             f"beat) is {mid.ticks_per_beat}")
    return mid


def _is_note(data: bytes) -> bool:
    return len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0


def _absolute(mid: mido.MidiFile) -> list[tuple[int, Any]]:
    out = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, msg))
    return out


def _tick_to_ns(tick: int, tempo_changes: list[tuple[int, int]], tpb: int) -> int:
    ns, last_tick, tempo = 0, 0, TEMPO_US
    for change_tick, change_tempo in tempo_changes:
        if change_tick >= tick:
            break
        ns += (change_tick - last_tick) * tempo * 1000 // tpb
        last_tick, tempo = change_tick, change_tempo
    return ns + (tick - last_tick) * tempo * 1000 // tpb
