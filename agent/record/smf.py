"""Standard MIDI Files: export a log (one track per player, one for the agent), import a band part.

Export uses a fixed 120 BPM tempo map at 960 ticks per beat, so one tick is 1/1920 s (~0.5 ms) and
the file's times are the log's real times (a DAW shows seconds correctly; bars are nominal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mido

from agent.errors import RecordingError
from agent.events import Heard

TICKS_PER_BEAT = 960
TEMPO_US = 500_000  # 120 BPM
NS_PER_TICK = TEMPO_US * 1000 // TICKS_PER_BEAT
AGENT_TRACK = "stage-agent"


def export(header: dict[str, Any], records: list[dict[str, Any]], path: Path) -> None:
    players = [p["name"] for p in header["config"]["players"]]
    timed: dict[str, list[tuple[int, bytes]]] = {name: [] for name in [*players, AGENT_TRACK]}
    for r in records:
        if r["k"] == "in":
            timed[r["player"]].append((r["t"], bytes.fromhex(r["data"])))
        elif r["k"] == "emit":
            timed[AGENT_TRACK].append((r["t"], bytes.fromhex(r["data"])))
    t0 = min((t for events in timed.values() for t, _ in events), default=0)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0)])
    mid.tracks.append(conductor)
    for name, events in timed.items():
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last_tick = 0
        for t, data in events:
            # A file holds channel messages and SysEx; system common and real-time bytes
            # (song position, tune request, clock, ...) are timing, not music (and mido refuses
            # several): they stay in the log only.
            if not data or data[0] > 0xF0:
                continue
            tick = (t - t0) // NS_PER_TICK
            track.append(mido.Message.from_bytes(data, time=tick - last_tick))
            last_tick = tick
        mid.tracks.append(track)
    mid.save(path)


def read_players(path: Path) -> list[Heard]:
    """A band part from any DAW: each track with notes is a player named after the track.

    Times follow the file's own tempo map (tempo changes on any track apply to all, as in type-1
    files). Returns the messages of every player, in time order.
    """
    try:
        mid = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise RecordingError(f"{path}: not a readable MIDI file: {e}") from None
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
    named = {h.player for _, _, h in events if _is_note(h.data)}
    # Keep the tracks that play notes; their other channel messages (pedal, CC) come along.
    return [h for _, _, h in sorted(events, key=lambda e: (e[0], e[1])) if h.player in named]


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
