"""Small real corpus folders, in the manifest format `load_corpus` reads, made with mido."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import mido

from agent.model.corpus import CORPUS_FORMAT, CORPUS_VERSION, TICKS_PER_BEAT, corpus_hash


@dataclass(frozen=True)
class Piece:
    """A work: each voice a list of (pitch, beats long, velocity), played one after another."""

    id: str
    split: str
    voices: tuple[tuple[tuple[int, float, int], ...], ...]
    bpm: float = 120.0


def melody(pitches: list[int], beats: float = 0.5, velocity: int = 80
           ) -> tuple[tuple[int, float, int], ...]:
    return tuple((p, beats, velocity) for p in pitches)


def midi_bytes(piece: Piece) -> bytes:
    """Track 0 the conductor (tempo), then one track per voice, as the built corpora are."""
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo",
                                                       tempo=mido.bpm2tempo(piece.bpm))]))
    for voice in piece.voices:
        track = mido.MidiTrack()
        for pitch, beats, velocity in voice:
            ticks = round(beats * TICKS_PER_BEAT)
            track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks))
        mid.tracks.append(track)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def write_corpus(folder: Path, pieces: list[Piece]) -> Path:
    """folder/manifest.json and folder/midi/<id>.mid; the corpus is named after the folder."""
    (folder / "midi").mkdir(parents=True)
    files = {p.id: midi_bytes(p) for p in pieces}
    for work_id, data in files.items():
        (folder / "midi" / f"{work_id}.mid").write_bytes(data)
    manifest = {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "name": folder.name,
        "hash": corpus_hash(files.items()),
        "works": [{"id": p.id, "collection": folder.name, "split": p.split, "bpm": p.bpm,
                   "bar_beats": 4.0, "key": None,
                   "sha256": hashlib.sha256(files[p.id]).hexdigest()} for p in pieces]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
