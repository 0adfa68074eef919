"""Corpus import of real recordings (made here by replaying a band part through the agent): the
players' parts come in, the agent's own part never does, from the log or, when the log cannot
be read, from the recording's performance.mid."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import mido
import pytest

from agent.model.corpus import load_corpus
from agent.model.corpus_write import ImportSettings, import_corpus
from agent.record.corpus_recording import read_recording
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from tests.midi_files import melody, name, smf, tempo, write

BARS = 96  # in 4/4 at 120 bpm (the recording's beats: the log heard no other tempo)
GROUPS = BARS // 8  # the band plays 4 bars of every 8


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """performances/band/recordings/run-1 and run-2: the band part, answered by the agent."""
    root = tmp_path_factory.mktemp("performances")
    part = write(root / "band.mid", smf([
        [tempo(0, 120)],
        # Four bars played, four resting (the agent answers in the rests), and again.
        [name("melody"), *[e for k in range(0, BARS, 8)
                           for e in melody(16, low=60, start=k * 1920)]],
        [name("bass"), *[e for k in range(0, BARS, 8)
                         for e in melody(8, step=960, low=36, channel=1, start=k * 1920)]]]))
    rec = load_recording(part)
    cfg = fit_config(rec, None)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=""))
    for run in ("run-1", "run-2"):
        replay_fast(rec, cfg, root / "band" / "recordings" / run, str(part))
    return root


def test_a_recording_brings_its_players_parts_never_the_agents(recordings: Path,
                                                                tmp_path: Path) -> None:
    run = recordings / "band" / "recordings" / "run-1"
    _, records = read_log(run / "log.jsonl")
    emitted_ons = [r for r in records if r["k"] == "emit" and r["data"][0] == "9"
                   and r["data"][4:6] != "00"]
    assert len(emitted_ons) > 10, "the agent played: its part is in the log"
    # The run given twice (itself, and in its folder) is read once; run-2, a replay of the
    # same part with the same seed, wrote the same log.
    done = import_corpus([str(run), str(recordings / "band" / "recordings")],
                         ImportSettings("rec", tmp_path / "c"), read_recording)
    m = done.manifest
    assert m["split_unit"] == "segment"  # one work: cut into 8-bar segments
    assert {w["source"] for w in m["works"]} == {str(run)}
    assert [(s["source"], s["reason"]) for s in m["skipped"]] == [
        (str(recordings / "band" / "recordings" / "run-2"), f"duplicate of {run} (the same "
                                                            "bytes)")]
    assert {p["name"] for w in m["works"] for p in w["parts"]} == {"melody", "bass"}
    assert sum(w["notes"] for w in m["works"]) == GROUPS * (16 + 8)  # none of the agent's
    works = load_corpus(done.path).works
    assert len(works) == GROUPS
    first = next(w for w in works if w.id == "band-run-1.b0001")
    melody_part = first.voice == 0
    assert first.onset[melody_part].tolist() == [float(i) for i in range(16)]  # 120 bpm, from 0
    assert sorted(first.velocity[melody_part].tolist()) == sorted(
        40 + 7 * i % 80 for i in range(16))  # as played


def test_a_recording_whose_log_cannot_be_read_comes_from_its_performance_mid(
        recordings: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(recordings / "band" / "recordings" / "run-1", run)
    (run / "log.jsonl").write_text('{"format": "stage-agent-log", "version": 1}\n'
                                   "not json\n")
    agent_notes = sum(1 for m in mido.MidiFile(run / "performance.mid").tracks[-1]
                      if m.type == "note_on" and m.velocity > 0)
    assert agent_notes > 10
    piece = read_recording(run, "run")
    assert [p.name for p in piece.parts] == ["melody", "bass"]
    assert piece.notes == GROUPS * (16 + 8)
    [log, agent] = piece.left_out
    assert log[0] == "log.jsonl" and log[1].endswith("performance.mid read instead")
    assert agent == ("stage-agent", f"the agent's own part ({agent_notes} notes)")
