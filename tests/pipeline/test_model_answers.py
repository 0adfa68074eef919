"""The agent answering with a model on the manual clock: constraints from the call, the model
hearing players and agent, logged answers, and a log replay that reproduces them exactly."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from agent import config as config_mod
from agent import midi
from agent.errors import ConfigError
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME, MIDI_NAME
from tests.model_fixtures import save_random_checkpoint

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "performances" / "demo"
MODEL = """
[model]
checkpoint = "m.pt"
deadline_ms = 50.0
styles = ["tune", "chorale"]
style_weights = [3.0, 1.0]
range_semitones = 2
"""


@pytest.fixture
def piece(tmp_path: Path) -> Path:
    """The demo piece with a model: performance.toml and the checkpoint beside it."""
    folder = tmp_path / "piece"
    folder.mkdir()
    shutil.copy(DEMO / "rehearsal.mid", folder)
    demo = (DEMO / "performance.toml").read_text()
    without_model = demo[:demo.index("[model]")] + demo[demo.index("[record]"):]
    (folder / "performance.toml").write_text(without_model + MODEL)
    save_random_checkpoint(folder / "m.pt")
    return folder


def run(piece: Path, out: Path, recording: Path | None = None) -> dict:  # type: ignore[type-arg]
    rec = load_recording(recording or piece / "rehearsal.mid")
    cfg = fit_config(rec, None if recording else config_mod.load(piece / "performance.toml"))
    return replay_fast(rec, cfg, out, "test")


def test_the_model_answers_each_call_within_its_range(piece: Path, tmp_path: Path) -> None:
    summary = run(piece, tmp_path / "r")
    _header, records = read_log(tmp_path / "r" / LOG_NAME)
    decisions = [r for r in records if r["k"] == "decision" and r["what"] == "answer"]
    answers = [r for r in records if r["k"] == "model" and r["what"] == "answer"]
    assert len(decisions) == len(answers) == summary["answers"] >= 8
    assert all(d["source"] == "model" for d in decisions)
    assert summary["model_answers"] == {"model": len(answers)}
    # Each answer keeps within the call's range widened by 2 semitones.
    calls = phrases(records)
    for decision, call in zip(decisions, calls, strict=False):
        low, high = min(call) - 2, max(call) + 2
        # The developed motif (policy/skeleton.py) moves at most 7 scale steps (an octave).
        motif = decision["motif"]
        assert all(low - 12 <= pitch <= high + 12 for _, pitch, _, _ in decision["plan"][:motif])
        assert all(low <= pitch <= high for _, pitch, _, _ in decision["plan"][motif:]), decision
        # ...and to the scale of the key heard (the demo is in C major: no black keys).
        assert all(pitch % 12 in C_MAJOR for _, pitch, _, _ in decision["plan"]), decision
    requests = [r for r in records if r["k"] == "model" and r["what"] == "request"]
    assert all(set(r["scale"]) == C_MAJOR for r in requests)
    assert 0 < summary["originality_notes"] <= 12


def phrases(records: list[dict]) -> list[list[int]]:  # type: ignore[type-arg]
    """The pitches the players played between two answers (each call)."""
    out: list[list[int]] = [[]]
    for r in records:
        if r["k"] == "in" and midi.is_note_on(bytes.fromhex(r["data"])):
            out[-1].append(bytes.fromhex(r["data"])[1])
        elif r["k"] == "model" and r["what"] == "request":
            out.append([])
    return out[:-1]


def test_replaying_the_log_gives_the_same_answers_without_running_the_model(
        piece: Path, tmp_path: Path) -> None:
    run(piece, tmp_path / "live")
    (piece / "m.pt").unlink()  # the recorded answers are replayed: the model is not needed
    (piece / "m.pt").write_bytes(b"")  # (the config still names it)
    run(piece, tmp_path / "again", recording=tmp_path / "live" / LOG_NAME)
    assert (tmp_path / "live" / MIDI_NAME).read_bytes() != b""
    emitted = [emits(tmp_path / d) for d in ("live", "again")]
    assert emitted[0] == emitted[1] and len(emitted[0]) > 50


def emits(out: Path) -> list[tuple[int, str]]:
    _header, records = read_log(out / LOG_NAME)
    return [(r["deadline"], r["data"]) for r in records if r["k"] == "emit"]


def test_a_different_style_blend_changes_the_answers(piece: Path, tmp_path: Path) -> None:
    a = run(piece, tmp_path / "a")
    cfg = config_mod.load(piece / "performance.toml")
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model,
                                                               style_weights=(0.0, 1.0)))
    rec = load_recording(piece / "rehearsal.mid")
    b = replay_fast(rec, other, tmp_path / "b", "test")
    assert a["answers"] == b["answers"]
    assert emits(tmp_path / "a") != emits(tmp_path / "b")


def test_model_config_errors_name_the_key(piece: Path) -> None:
    text = (piece / "performance.toml").read_text()
    bad = {
        'checkpoint = "m.pt"': ('checkpoint = "nope.pt"', "model.checkpoint: no such file"),
        "deadline_ms = 50.0": ("deadline_ms = 150.0", "model.deadline_ms: 150.0 exceeds"),
        "style_weights = [3.0, 1.0]": ("style_weights = [1.0]", "model.style_weights: 1 weights"),
    }
    for old, (new, message) in bad.items():
        (piece / "performance.toml").write_text(text.replace(old, new))
        with pytest.raises(ConfigError, match=message):
            config_mod.load(piece / "performance.toml")


def test_a_mirror_takes_the_models_pitches_for_its_varied_notes(piece: Path,
                                                                tmp_path: Path) -> None:
    rec = load_recording(piece / "rehearsal.mid")
    cfg = config_mod.load(piece / "performance.toml")
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, mode="mirror"))
    replay_fast(rec, fit_config(rec, cfg), tmp_path / "r", "test")
    _header, records = read_log(tmp_path / "r" / LOG_NAME)
    mirrors = [r for r in records if r["k"] == "decision" and r["what"] == "mirror"]
    requests = [r for r in records if r["k"] == "model" and r["what"] == "request"]
    assert len(mirrors) == len(requests) >= 8
    assert all(r["part"] == "mirror" for r in requests)
    assert {m["source"] for m in mirrors} == {"call+model"}
    assert all(p % 12 in C_MAJOR for m in mirrors for _, p, _, _ in m["plan"])


def test_a_style_named_alone_is_played_without_weights(piece: Path, tmp_path: Path) -> None:
    """`styles = ["tune"]` alone (no style_weights) was refused ("0 weights for 1 styles")."""
    text = (piece / "performance.toml").read_text()
    (piece / "performance.toml").write_text(text.replace(
        'styles = ["tune", "chorale"]\nstyle_weights = [3.0, 1.0]\n', 'styles = ["tune"]\n'))
    summary = run(piece, tmp_path / "r")
    header, _records = read_log(tmp_path / "r" / LOG_NAME)
    assert header["config"]["model"]["styles"] == ["tune"]
    assert header["config"]["model"]["style_weights"] == []
    assert summary["model_answers"]["model"] == summary["answers"] > 0
    # The same answers as the tune style weighed 1 of 1.
    cfg = config_mod.load(piece / "performance.toml")
    weighed = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, style_weights=(1.0,)))
    replay_fast(load_recording(piece / "rehearsal.mid"), weighed, tmp_path / "w", "test")
    assert emits(tmp_path / "w") == emits(tmp_path / "r")
    (piece / "performance.toml").write_text(text.replace(
        'styles = ["tune", "chorale"]', 'styles = ["tune", "jazz"]'))
    with pytest.raises(ConfigError, match=r"model\.styles\[1\]: no style 'jazz' in the model "
                                          r"m\.pt \(its styles: chorale, tune\)"):
        run(piece, tmp_path / "x")
