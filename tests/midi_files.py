"""Real MIDI files made with mido for the corpus import tests: a few lines per kind of file."""

from __future__ import annotations

import io
from pathlib import Path

import mido

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
