"""Standard MIDI Files: export a log (one track per player, one for the agent), import a band part.

Export uses a fixed 120 BPM tempo map at 960 ticks per beat, so one tick is 1/1920 s (~0.5 ms) and
the file's times are the log's real times (a DAW shows seconds correctly; bars are nominal). The
conductor track carries the tempo and the markers (`record mark`, take starts and stops).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import mido

from agent.errors import RecordingError
from agent.events import Heard
from agent.files import FileRefused, read_regular
from agent.record.schema import MAX_TIME_NS

TICKS_PER_BEAT = 960
TEMPO_US = 500_000  # 120 BPM
NS_PER_TICK = TEMPO_US * 1000 // TICKS_PER_BEAT
AGENT_TRACK = "stage-agent"
SUSTAIN = 64  # the sustain pedal's controller number
# A band part read as a recording: ~1.4 M messages at most, which mido holds in ~400 MB (a
# two-hour part played densely is well under 1 MiB).
MAX_MIDI_BYTES = 4 << 20


def export(header: dict[str, Any], records: list[dict[str, Any]], path: Path,
           start_ns: int | None = None, end_ns: int | None = None) -> None:
    """The log as a type-1 file: a conductor track (tempo, markers), then one track per player
    and one for the agent.

    `start_ns` is the file's time 0 (default: its first MIDI message); `end_ns` is when notes
    still sounding are released (default: the last record's time). A slice of a log (a take, a
    capture) can start inside a note or end inside one: a note-on whose note-off is not in the
    records gets one at `end_ns` (and a held sustain pedal is lifted there), so nothing hangs in
    a DAW; a note-off whose note-on came before the slice is kept (it silences nothing).
    Markers: `record mark` commands (their label, else "mark") and take starts and stops.
    """
    players = [p["name"] for p in header["config"]["players"]]
    timed: dict[str, list[tuple[int, bytes]]] = {name: [] for name in [*players, AGENT_TRACK]}
    markers: list[tuple[int, str]] = []
    for r in records:
        if r["k"] == "in":
            timed[r["player"]].append((r["t"], bytes.fromhex(r["data"])))
        elif r["k"] == "emit":
            timed[AGENT_TRACK].append((r["t"], bytes.fromhex(r["data"])))
        elif r["k"] == "ctl" and r.get("what") == "record":
            text = marker_text(r)
            if text is not None:
                markers.append((r["t"], text))
    t0 = start_ns if start_ns is not None else min(
        (t for events in timed.values() for t, _ in events), default=0)
    end = end_ns if end_ns is not None else max((r["t"] for r in records), default=t0)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0)])
    last_tick = 0
    for t, text in sorted(markers, key=lambda m: m[0]):
        tick = _tick(t, t0)
        conductor.append(mido.MetaMessage("marker", text=_latin1(text), time=tick - last_tick))
        last_tick = tick
    mid.tracks.append(conductor)
    for name, events in timed.items():
        mid.tracks.append(_track(name, events, t0, end))
    try:
        mid.save(path)
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


def _track(name: str, events: list[tuple[int, bytes]], t0: int, end_ns: int) -> mido.MidiTrack:
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=_latin1(name), time=0)])
    sounding: dict[tuple[int, int], int] = {}  # (channel, pitch) -> note-ons not yet released
    pedal: set[int] = set()  # channels whose sustain pedal is down
    last_tick = 0
    # Stable sort: a track's records are in time order already, give or take a reordering of
    # messages stamped a tick apart (a negative delta cannot be written).
    for t, data in sorted(events, key=lambda e: e[0]):
        # A file holds channel messages and SysEx; system common and real-time bytes
        # (song position, tune request, clock, ...) are timing, not music (and mido refuses
        # several): they stay in the log only.
        if not data or data[0] > 0xF0:
            continue
        tick = _tick(t, t0)
        track.append(mido.Message.from_bytes(data, time=tick - last_tick))
        last_tick = tick
        _follow(data, sounding, pedal)
    tick = max(_tick(end_ns, t0), last_tick)
    for (channel, pitch), count in sorted(sounding.items()):
        for _ in range(count):
            track.append(mido.Message("note_off", channel=channel, note=pitch,
                                      time=tick - last_tick))
            last_tick = tick
    for channel in sorted(pedal):
        track.append(mido.Message("control_change", channel=channel, control=SUSTAIN, value=0,
                                  time=tick - last_tick))
        last_tick = tick
    return track


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


def _latin1(text: str) -> str:
    """Text as a file can hold it: mido writes meta text as Latin-1, so anything else would
    fail the whole export; it becomes "?" here (the log keeps the text as it was)."""
    return text.encode("latin-1", "replace").decode("latin-1")


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
