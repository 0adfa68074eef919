"""Real MIDI files made with mido for the corpus import tests: a few lines per kind of file; and
performance.mid as mido made it (mido_export: the oracle of agent/record/smf.py's bytes)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import mido

from agent.record.smf import (
    AGENT_TRACK,
    NS_PER_TICK,
    SUSTAIN,
    TEMPO_US,
    TICKS_PER_BEAT,
    marker_text,
)

Event = tuple[int, mido.Message | mido.MetaMessage]  # (absolute tick, message)


def smf(tracks: list[list[Event]], tpb: int = 480, fmt: int = 1) -> bytes:
    """The bytes of a file of these tracks (events at absolute ticks, sorted here)."""
    mid = mido.MidiFile(type=fmt, ticks_per_beat=tpb)
    for events in tracks:
        track = mido.MidiTrack()
        last = 0
        for tick, msg in sorted(events, key=lambda e: e[0]):
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def note(tick: int, length: int, pitch: int, velocity: int = 80, channel: int = 0,
         off_as_zero_on: bool = False) -> list[Event]:
    off = mido.Message("note_on", channel=channel, note=pitch, velocity=0) if off_as_zero_on \
        else mido.Message("note_off", channel=channel, note=pitch)
    return [(tick, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)),
            (tick + length, off)]


def melody(count: int, *, step: int = 480, channel: int = 0, low: int = 60,
           velocity: int | None = None, start: int = 0) -> list[Event]:
    """`count` notes a `step` apart, each half a step long, pitches walking up an octave;
    velocities 40 + 7i % 80 unless one is given."""
    out: list[Event] = []
    for i in range(count):
        out += note(start + i * step, step // 2, low + i % 12,
                    velocity if velocity is not None else 40 + 7 * i % 80, channel)
    return out


def name(text: str) -> Event:
    return (0, mido.MetaMessage("track_name", name=text))


def tempo(tick: int, bpm: float) -> Event:
    return (tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))


def metre(tick: int, numerator: int, denominator: int) -> Event:
    return (tick, mido.MetaMessage("time_signature", numerator=numerator,
                                   denominator=denominator))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tune(path: Path, count: int = 64, **kwargs: int) -> Path:
    """A one-part tune of `count` quarter notes in 4/4 at 100 bpm."""
    return write(path, smf([[name(path.stem), tempo(0, 100), metre(0, 4, 4)],
                            [name("melody"), *melody(count, **kwargs)]]))


def mido_export(header: dict[str, Any], records: list[dict[str, Any]],
                start_ns: int | None = None, end_ns: int | None = None) -> bytes:
    """performance.mid as agent/record/smf.py made it with mido before it wrote the bytes
    itself (the code as it was, but for returning the bytes): the oracle its bytes must equal."""
    def tick_of(t_ns: int, t0: int) -> int:
        return max(t_ns - t0, 0) // NS_PER_TICK

    def latin1(text: str) -> str:
        return text.encode("latin-1", "replace").decode("latin-1")

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
        tick = tick_of(t, t0)
        conductor.append(mido.MetaMessage("marker", text=latin1(text), time=tick - last_tick))
        last_tick = tick
    mid.tracks.append(conductor)
    for name, events in timed.items():
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=latin1(name), time=0)])
        sounding: dict[tuple[int, int], int] = {}
        pedal: set[int] = set()
        last_tick = 0
        for t, data in sorted(events, key=lambda e: e[0]):
            if not data or data[0] > 0xF0:
                continue
            tick = tick_of(t, t0)
            track.append(mido.Message.from_bytes(data, time=tick - last_tick))
            last_tick = tick
            if len(data) == 3:
                status, key = data[0] & 0xF0, (data[0] & 0x0F, data[1])
                if status == 0x90 and data[2] > 0:
                    sounding[key] = sounding.get(key, 0) + 1
                elif status in (0x80, 0x90) and sounding.get(key):
                    sounding[key] -= 1
                    if not sounding[key]:
                        del sounding[key]
                elif status == 0xB0 and data[1] == SUSTAIN:
                    (pedal.add if data[2] >= 64 else pedal.discard)(key[0])
        tick = max(tick_of(end, t0), last_tick)
        for (channel, pitch), count in sorted(sounding.items()):
            for _ in range(count):
                track.append(mido.Message("note_off", channel=channel, note=pitch,
                                          time=tick - last_tick))
                last_tick = tick
        for channel in sorted(pedal):
            track.append(mido.Message("control_change", channel=channel, control=SUSTAIN,
                                      value=0, time=tick - last_tick))
            last_tick = tick
        mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()
