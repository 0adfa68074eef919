"""Small real models, works and corpus folders for the model tests (no music21 build)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import numpy as np
import torch

from agent.model import checkpoint
from agent.model.corpus import CORPUS_FORMAT, CORPUS_VERSION, TICKS_PER_BEAT, corpus_hash, split_of
from agent.model.net import EventNet, NetConfig
from agent.model.originality import join_lines

STYLES = ("chorale", "tune")


@dataclass(frozen=True)
class TinyWork:
    """Satisfies representation.NoteArrays."""

    collection: str
    bpm: float
    bar_beats: float
    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    voice: np.ndarray


def tune(pitches: list[int], beats: float = 0.5, bpm: float = 120.0) -> TinyWork:
    n = len(pitches)
    return TinyWork("tune", bpm, 4.0, np.arange(n) * beats, np.full(n, beats),
                    np.array(pitches, dtype=np.int16), np.full(n, 80, dtype=np.int16),
                    np.zeros(n, dtype=np.int16))


def random_net(seed: int = 0, n_styles: int = 2) -> EventNet:
    torch.manual_seed(seed)
    net = EventNet(NetConfig(embed=32, hidden=48, head=32, n_styles=n_styles))
    with torch.no_grad():  # larger than init weights, so the logits differ between contexts
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


CORPUS_LINE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84, 86]


def save_random_checkpoint(path: Path, seed: int = 0) -> Path:
    net = random_net(seed)
    lines = join_lines([np.array(CORPUS_LINE)])
    checkpoint.save(path, net, STYLES, [{"name": s, "hash": "0" * 64, "works": 1, "notes": 16}
                                        for s in STYLES],
                    {"epochs": 0, "best_epoch": 0, "best_valid_bits": 0.0, "seconds": 0.0,
                     "seconds_to_best": 0.0, "history": []}, lines)
    return path


def save_with_style(parent: Path, path: Path, style: str, line: list[int],
                    seed: int = 5) -> Path:
    """A checkpoint as a fine-tune that adds a style leaves one: the parent's network and
    styles unchanged, one row more in the style table (`style`), its corpus (one `line`) in
    the copy guard's lines besides the parent's."""
    parent_ckpt = checkpoint.load(parent)
    cfg = parent_ckpt.net.cfg
    state = parent_ckpt.net.state_dict()
    torch.manual_seed(seed)
    state["style.weight"] = torch.cat([state["style.weight"], 3.0 * torch.randn(1, cfg.embed)])
    net = EventNet(NetConfig(**{**cfg.as_dict(), "n_styles": cfg.n_styles + 1}))
    net.load_state_dict(state)
    corpora = [*parent_ckpt.corpora, {"name": style, "hash": "1" * 64, "works": 1,
                                      "notes": len(line)}]
    lines = np.concatenate([parent_ckpt.corpus_lines, join_lines([np.array(line)])])
    checkpoint.save(path, net.eval(), (*parent_ckpt.styles, style), corpora, parent_ckpt.train,
                    lines)
    return path

def write_corpus(root: Path, name: str, works: dict[str, TinyWork], *,
                 provenance: str = "made by the tests", licence: str = "CC0") -> Path:
    """A corpus folder as `corpus build` or `corpus import` writes it (manifest.json and
    midi/<id>.mid, one track per voice), which load_corpus reads back note for note. The split
    of each work is its id's (corpus.split_of)."""
    folder = root / name
    (folder / "midi").mkdir(parents=True, exist_ok=True)
    entries, files = [], []
    for work_id, work in sorted(works.items()):
        data = _midi_bytes(work)
        (folder / "midi" / f"{work_id}.mid").write_bytes(data)
        files.append((work_id, data))
        entries.append({"id": work_id, "collection": name, "split": split_of(work_id),
                        "bpm": work.bpm, "bar_beats": work.bar_beats, "key": None,
                        "notes": len(work.pitch), "sha256": hashlib.sha256(data).hexdigest()})
    velocities = np.unique(np.concatenate([w.velocity for w in works.values()]))
    manifest = {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "name": name,
        "description": f"{name}: a corpus written by the tests",
        "collections": [{"name": name, "provenance": provenance, "licence": licence,
                         "works": len(works),
                         "notes": int(sum(len(w.pitch) for w in works.values()))}],
        "velocity": int(velocities[0]) if len(velocities) == 1 else None,
        "works": entries, "hash": corpus_hash(files)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                          encoding="utf-8")
    return folder


def _midi_bytes(work: TinyWork) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo",
                                                       tempo=mido.bpm2tempo(work.bpm))]))
    for voice in range(int(work.voice.max()) + 1):
        timed = []
        for i in np.flatnonzero(work.voice == voice):
            on = round(float(work.onset[i]) * TICKS_PER_BEAT)
            off = round(float(work.onset[i] + work.duration[i]) * TICKS_PER_BEAT)
            pitch, velocity = int(work.pitch[i]), int(work.velocity[i])
            timed += [(off, 0, mido.Message("note_off", channel=voice, note=pitch)),
                      (on, 1, mido.Message("note_on", channel=voice, note=pitch,
                                           velocity=velocity))]
        track = mido.MidiTrack()
        last = 0
        for tick, _, msg in sorted(timed, key=lambda t: (t[0], t[1])):
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def style_corpus(root: Path, name: str, scale: list[int], *, works: int = 30,
                 notes: int = 48, seed: int = 0, velocities: tuple[int, int] = (80, 80)) -> Path:
    """A tiny corpus in a style of its own: random steps and leaps within `scale` (MIDI
    pitches), eighth notes, velocities drawn from [low, high] (equal: a flat corpus)."""
    rng = np.random.default_rng(seed)
    made = {}
    for i in range(works):
        steps = np.cumsum(rng.choice([-2, -1, 1, 2], size=notes)) + len(scale) // 2
        pitches = [scale[int(s) % len(scale)] for s in steps]
        work = tune(pitches)
        made[f"{name}-{i:03d}"] = replace(work, velocity=rng.integers(
            velocities[0], velocities[1] + 1, size=notes).astype(np.int16))
    return write_corpus(root, name, made)
