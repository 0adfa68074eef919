"""`[respond] memory_from` through the agent on the manual clock: a musician plays their own
piece to an agent whose live memory was primed with it; the memory carries it on, no more than
the originality bound; the log says which corpora, and replays it byte for byte."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mido
import pytest

from agent import config as config_mod
from agent.errors import RecordingError
from agent.model.memory_from import load_memory
from agent.record.evaluate import evaluate
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME
from tests.corpus_fixtures import Piece, melody, write_corpus

# The musician's own tune: every two notes lead on one way only, so a memory that walks it
# plays it on, note for note.
TUNE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 72, 71, 67, 64, 62, 60, 59, 57, 55, 57, 59, 62,
        66, 69, 68, 73, 76, 75, 70, 63, 58, 61, 54, 56, 65, 77, 79, 78, 80, 66, 53]
BOUND = 5
PIECE = f"""
[performance]
name = "mine"
[[players]]
name = "melody"
port = "virtual:melody"
[agent]
mode = "continue"
outputs = ["virtual:out"]
[respond]
memory_from = ["corpora/mine"]
max_order = 2
[model]
originality_bound = {BOUND}
"""


def rehearsal(path: Path, phrases: list[list[int]]) -> Path:
    """The player plays each phrase in eighths at 120 bpm, then rests 4 s for the answer."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="melody")])
    rest = 0
    for phrase in phrases:
        for i, pitch in enumerate(phrase):
            track.append(mido.Message("note_on", note=pitch, velocity=90,
                                      time=rest if i == 0 else 0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
        rest = 480 * 8
    mid.tracks.append(track)
    mid.save(path)
    return path


@pytest.fixture
def piece(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "corpora" / "mine",
                 [Piece("tune", "train", (melody(TUNE),)),
                  Piece("air", "test", (melody([50, 57, 55, 62, 61, 66, 71, 69, 76]),))])
    (tmp_path / "performance.toml").write_text(PIECE)
    rehearsal(tmp_path / "rehearsal.mid", [TUNE[0:8], TUNE[10:18], TUNE[20:28]])
    return tmp_path


def answers(folder: Path) -> list[list[int]]:
    _header, records = read_log(folder / LOG_NAME)
    return [[row[1] for row in r["plan"]] for r in records
            if r["k"] == "decision" and r["what"] == "continue"]


def emits(folder: Path) -> list[tuple[int, str]]:
    _header, records = read_log(folder / LOG_NAME)
    return [(r["deadline"], r["data"]) for r in records if r["k"] == "emit"]


def test_the_primed_memory_plays_the_tune_on_no_further_than_the_bound(
        piece: Path, tmp_path: Path) -> None:
    rec = load_recording(piece / "rehearsal.mid")
    cfg = fit_config(rec, config_mod.load(piece / "performance.toml"))
    corpora = load_memory(cfg)
    assert corpora is not None
    # Unguarded (as before the guard covered the memory): each answer is the tune, carried on.
    free = replay_fast(rec, cfg, tmp_path / "free", "test",
                       corpora=dataclasses.replace(corpora, guard=None))
    assert answers(tmp_path / "free") == [TUNE[8:16], TUNE[18:26], TUNE[28:36]]
    assert free["originality_notes"] >= 8  # (9: into the next answer, 59 57 is the tune's too)
    # Guarded: the tune's own notes go on for the bound, then the memory turns elsewhere.
    summary = replay_fast(rec, cfg, tmp_path / "r", "test")
    played = answers(tmp_path / "r")
    assert [a[:BOUND] for a in played] == [TUNE[8:13], TUNE[18:23], TUNE[28:33]]
    assert all(len(a) == 8 and a[BOUND:] != TUNE[13 + 10 * i:16 + 10 * i]
               for i, a in enumerate(played))
    assert summary["originality_notes"] == BOUND
    assert summary["answers"] == 3
    header, _records = read_log(tmp_path / "r" / LOG_NAME)
    assert header["memory_from"] == [{
        "path": str((piece / "corpora" / "mine").resolve()), "name": "mine",
        "hash": corpora.corpora[0]["hash"], "works": 1, "notes": len(TUNE)}]
    assert header["config"]["respond"]["memory_from"] == ["corpora/mine"]
    assert evaluate(tmp_path / "r")["copied_from_corpus_notes"] == BOUND


def test_a_log_replays_with_the_corpora_it_names_and_not_once_they_changed(
        piece: Path, tmp_path: Path) -> None:
    rec = load_recording(piece / "rehearsal.mid")
    replay_fast(rec, fit_config(rec, config_mod.load(piece / "performance.toml")),
                tmp_path / "live", "test")
    log = load_recording(tmp_path / "live")
    assert log.config is not None and log.config.respond.memory_from == (
        str((piece / "corpora" / "mine").resolve()),)
    replay_fast(log, fit_config(log, None), tmp_path / "again", "test")
    assert emits(tmp_path / "again") == emits(tmp_path / "live") != []
    # The musician adds a piece to the corpus: the memory would answer otherwise.
    (piece / "corpora" / "mine").rename(piece / "corpora" / "old")
    write_corpus(piece / "corpora" / "mine", [Piece("tune", "train", (melody(TUNE),)),
                                              Piece("new", "train", (melody([60, 67]),))])
    with pytest.raises(RecordingError, match=r"mine: the corpus has changed since the "
                                             r"recording \(its hash is [0-9a-f]{12}, recorded"):
        replay_fast(log, fit_config(log, None), tmp_path / "changed", "test")
