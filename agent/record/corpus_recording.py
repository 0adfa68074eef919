"""A recording folder as a corpus piece: what its players played, never the agent's own part.

The log is the ground truth: its `in` records are the players' MIDI (one part per player and
channel); the agent's `emit` records are not read. Times become beats at the tempo the log
heard (its first MIDI clock `tempo` record, else the first tempo the agent heard, else 120)
and bars at the piece's metre (`performance.beats_per_bar`, `beat_division`). A log that cannot
be read falls back to the folder's `performance.mid`, without its `stage-agent` track.

`corpus import` is given `read_recording` by the command line: agent/model does not read logs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.errors import RecordingError
from agent.files import FileRefused, sha256_file
from agent.model.corpus_import import Piece, Skip, SourceTrack, piece_from_players, piece_from_smf
from agent.model.corpus_sources import LOG_NAME, read_midi_file
from agent.record.log import read_log
from agent.record.smf import AGENT_TRACK

DEFAULT_BPM = 120.0
MAX_LOG_BYTES = 1 << 40  # hashing reads a chunk at a time: any log read_log accepted


def read_recording(folder: Path, given: str) -> Piece:
    log = folder / LOG_NAME
    try:
        header, records = read_log(log)
        sha256 = sha256_file(log, MAX_LOG_BYTES)
    except (RecordingError, FileRefused, OSError) as e:
        return _from_performance_mid(folder, given, str(e))
    config: dict[str, Any] = header.get("config", {})
    messages: dict[str, list[tuple[int, bytes]]] = {
        str(p.get("name")): [] for p in config.get("players", [])}
    for r in records:
        if r["k"] == "in":
            messages.setdefault(r["player"], []).append((r["t"], bytes.fromhex(r["data"])))
    end = max((r["t"] for r in records), default=0)
    players = [SourceTrack(name, msgs, end) for name, msgs in messages.items() if msgs]
    performance = config.get("performance", {})
    return piece_from_players(players, given, sha256, title=_title(performance, folder),
                              bpm=_bpm(records), time_signature=_metre(performance))


def _bpm(records: list[dict[str, Any]]) -> float:
    clock = [r["bpm"] for r in records if r["k"] == "tempo"]
    heard = [r["bpm"] for r in records
             if r["k"] == "state" and r.get("what") == "tempo" and r.get("bpm")]
    return float((clock or heard or [DEFAULT_BPM])[0])


def _metre(performance: dict[str, Any]) -> tuple[int, int]:
    """The time signature a player counts in performance.beats_per_bar and beat_division
    (the inverse of agent.config.metre_of): 4 and 2 -> 4/4, 2 and 3 -> 6/8."""
    beats = int(performance.get("beats_per_bar", 4))
    return (beats * 3, 8) if performance.get("beat_division", 2) == 3 else (beats, 4)


def _title(performance: dict[str, Any], folder: Path) -> str:
    return f"{performance.get('name', 'untitled')}, {folder.name}"


def _from_performance_mid(folder: Path, given: str, problem: str) -> Piece:
    mid = folder / "performance.mid"
    if not mid.is_file():
        raise Skip(f"{problem} (and no performance.mid beside it)")
    try:
        piece = piece_from_smf(read_midi_file(mid), given, title=folder.name,
                               leave_out=lambda name: "the agent's own part"
                               if name == AGENT_TRACK else None)
    except Skip as e:
        raise Skip(f"{problem}; its performance.mid: {e}") from None
    return replace(piece, left_out=((LOG_NAME, f"{problem}: performance.mid read instead"),
                                    *piece.left_out))
