"""Replay on the manual clock: golden output, determinism, and log -> replay reproduction."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import mido
import pytest

from agent import config as config_mod
from agent import midi
from agent.errors import RecordingError
from agent.model.checkpoint import load
from agent.model.originality import longest_shared_run
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME, MIDI_NAME
from agent.record.summary import notes_of, summarise
from agent.spatial.runtime import picture
from tests.midi_files import mido_export

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "performances" / "demo"
GOLDEN = ROOT / "tests" / "golden" / "demo_emitted.txt"


def emitted(out_dir: Path) -> list[str]:
    """The agent's output as 'deadline port hex why' lines (deadline relative to the start)."""
    _header, records = read_log(out_dir / LOG_NAME)
    t0 = records[0]["t"]
    return [f"{r['deadline'] - t0} {r['port']} {r['data']} {r['why']}"
            for r in records if r["k"] == "emit"]


def demo(out: Path, seed: int | None = None,
         model: bool = True) -> dict:  # type: ignore[type-arg]
    """The demo replayed; model=False: the Markov memory alone answering every call, nothing
    timed by the tracked beat (no floating point involved: the same output on every machine)."""
    rec = load_recording(DEMO / "rehearsal.mid")
    cfg = fit_config(rec, config_mod.load(DEMO / "performance.toml"))
    if not model:  # and no beat lock or bar-counted sections: the tracker's grid is floating
        # point too
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=""),
                                  sections=(),
                                  respond=dataclasses.replace(cfg.respond, beat_lock=0.0,
                                                              phrase_gap_beats=0.0))
    if seed is not None:
        cfg = dataclasses.replace(cfg, performance=dataclasses.replace(cfg.performance, seed=seed))
    return replay_fast(rec, cfg, out, "demo")


def test_demo_replay_matches_the_golden_output(tmp_path: Path) -> None:
    """Regenerate after an intended change: UPDATE_GOLDEN=1 pytest tests/pipeline -k golden.

    Without the model: its sampling follows floating-point results, which may differ in the last
    bits between CPUs (the model's determinism is tested on one machine, below)."""
    demo(tmp_path / "r", model=False)
    lines = emitted(tmp_path / "r")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text("\n".join(lines) + "\n")
    assert lines == GOLDEN.read_text().splitlines()


def test_same_seed_is_byte_identical_and_another_seed_is_not(tmp_path: Path) -> None:
    s1 = demo(tmp_path / "a")
    demo(tmp_path / "b")
    demo(tmp_path / "c", seed=99)
    assert (tmp_path / "a" / MIDI_NAME).read_bytes() == (tmp_path / "b" / MIDI_NAME).read_bytes()
    assert emitted(tmp_path / "a") == emitted(tmp_path / "b")
    assert emitted(tmp_path / "a") != emitted(tmp_path / "c")
    assert s1["notes_heard"] == 128  # every note of the rehearsal
    assert s1["answers"] >= 8 and s1["notes_played"] > 0
    # The piece's sections: 32 bars of trading, then the canon, where the agent (auto) comps.
    _header, records = read_log(tmp_path / "a" / LOG_NAME)
    decisions = [r for r in records if r["k"] == "decision"]
    sections = [(r["name"], r["why"]) for r in decisions if r["what"] == "section"]
    assert sections == [("canon", "bars")]
    canon = next(r["t"] for r in decisions if r["what"] == "section")
    assert {r["what"] for r in decisions if r["t"] < canon} <= {"answer", "yield"}
    assert any(r["what"] == "comp" for r in decisions if r["t"] > canon)
    # Its voices on the 8-speaker ring: the summary draws their paths.
    assert Path(s1["trajectories"]).read_bytes()[:4] == b"\x89PNG"


def test_replaying_a_log_reproduces_its_emitted_midi(tmp_path: Path) -> None:
    demo(tmp_path / "first")
    again = replay_fast(load_recording(tmp_path / "first"), fit_config(
        load_recording(tmp_path / "first"), None), tmp_path / "second", "first")
    assert emitted(tmp_path / "second") == emitted(tmp_path / "first")
    assert again["notes_played"] > 0



def test_input_shed_live_is_recorded_and_not_answered_in_a_replay(tmp_path: Path) -> None:
    """A note the input shed (too old when its turn came) is in the log, marked `shed`: a
    replay does not hear it either, so it plays exactly what the live run played."""
    demo(tmp_path / "first")
    log = tmp_path / "first" / LOG_NAME
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    middle = records[len(records) // 2]["t"]
    shed = [json.dumps({"t": middle + k, "k": "in", "player": "melody", "data": data,
                        "shed": True}) for k, data in ((1, "904f70"), (2, "804f00"))]
    at = next(i for i, r in enumerate(records, 1) if r["t"] > middle + 2)
    log.write_text("\n".join([*lines[:at], *shed, *lines[at:]]) + "\n")
    rec = load_recording(log)
    assert bytes.fromhex("904f70") not in [getattr(i, "data", None) for i in rec.inputs]
    again = replay_fast(rec, fit_config(rec, None), tmp_path / "second", "first")
    assert emitted(tmp_path / "second") == emitted(tmp_path / "first")
    assert again["notes_heard"] == 128  # the shed note was played, not heard

def test_every_agent_note_is_released_by_the_end(tmp_path: Path) -> None:
    demo(tmp_path / "r")
    sounding: set[tuple[str, int, int]] = set()
    _, records = read_log(tmp_path / "r" / LOG_NAME)
    for r in records:
        if r["k"] != "emit":
            continue
        data = bytes.fromhex(r["data"])
        if midi.is_note_on(data):
            assert (r["port"], data[0] & 15, data[1]) not in sounding
            sounding.add((r["port"], data[0] & 15, data[1]))
        elif midi.is_note_off(data):
            sounding.remove((r["port"], data[0] & 15, data[1]))
    assert not sounding


def test_smf_export_has_a_track_per_player_and_one_for_the_agent(tmp_path: Path) -> None:
    demo(tmp_path / "r")
    # The bytes mido wrote for the same log (the export writes them itself now).
    assert (tmp_path / "r" / MIDI_NAME).read_bytes() == mido_export(*read_log(tmp_path / "r" /
                                                                               LOG_NAME))
    mid = mido.MidiFile(tmp_path / "r" / MIDI_NAME)
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == ["melody", "cello", "stage-agent"]
    source = mido.MidiFile(DEMO / "rehearsal.mid")
    out_notes = [notes_in_seconds(mid, i) for i in (1, 2)]
    src_notes = [notes_in_seconds(source, i) for i in (1, 2)]
    t0 = min(src_notes[0][0][0], src_notes[1][0][0])  # the export starts at the first event
    for exported, original in zip(out_notes, src_notes, strict=True):
        assert [n[1:] for n in exported] == [n[1:] for n in original]
        # Times survive the round trip to within a tick of either file (~1.1 ms).
        assert max(abs(e[0] + t0 - o[0]) for e, o in zip(exported, original, strict=True)) < 2e-3


def test_the_end_of_a_run_makes_what_its_log_file_makes(tmp_path: Path) -> None:
    """The demo (its model, its speaker layout) ends from what its session kept of each record,
    without reading its log back: the same figures, picture and copy figure as the log file's
    records make (its MIDI file: the test above)."""
    summary = demo(tmp_path / "r")
    header, records = read_log(tmp_path / "r" / LOG_NAME)
    expected = summarise(header, records)
    assert {k: summary[k] for k in expected} == expected
    config = load_recording(tmp_path / "r").config
    assert config is not None
    (tmp_path / "again").mkdir()
    again = picture(config, records, tmp_path / "again")
    assert again is not None and again.read_bytes() == Path(summary["trajectories"]).read_bytes()
    _players, notes = notes_of(records, config.agent.outputs[0])
    assert summary["originality_notes"] == longest_shared_run(
        [n.pitch for n in notes], load(config.model_path()).corpus_lines)


def notes_in_seconds(mid: mido.MidiFile, track: int) -> list[tuple[float, str, int]]:
    """(seconds, type, note) of one track's notes, through the file's tempo (one tempo here)."""
    tempo = next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")
    tick, out = 0, []
    for m in mid.tracks[track]:
        tick += m.time
        if m.type in ("note_on", "note_off"):
            kind = "on" if m.type == "note_on" and m.velocity else "off"
            out.append((mido.tick2second(tick, mid.ticks_per_beat, tempo), kind, m.note))
    return out


def test_a_torn_last_line_is_tolerated_but_a_broken_middle_is_an_error(tmp_path: Path) -> None:
    demo(tmp_path / "r")
    log = tmp_path / "r" / LOG_NAME
    text = log.read_text()
    log.write_text(text + '{"t": 1, "k": "in", "pla')
    assert load_recording(log).inputs
    lines = text.splitlines()
    lines[5] = "{broken"
    log.write_text("\n".join(lines))
    with pytest.raises(RecordingError, match="line 6: not JSON"):
        load_recording(log)


def test_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "x.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(RecordingError, match="not a readable MIDI file"):
        load_recording(bad)
    with pytest.raises(RecordingError, match="no such recording"):
        load_recording(tmp_path / "missing.jsonl")


def test_input_heard_after_the_stop_is_not_replayed(tmp_path: Path) -> None:
    """Live, the ports stay open a moment after the stop while the last messages leave; what is
    heard then is recorded but never answered, so a replay must not answer it either."""
    demo(tmp_path / "r")
    log = tmp_path / "r" / LOG_NAME
    before = load_recording(log)
    assert before.end_ns is not None
    late = {"t": before.end_ns + 1, "k": "in", "player": "melody", "data": "903c64"}
    log.write_text(log.read_text() + json.dumps(late) + "\n")
    after = load_recording(log)
    assert after.inputs == before.inputs and after.end_ns == before.end_ns
