"""A plain MIDI file gets a band member (auto mode, the shipped model), and `replay --mode` and
`--styles` (issue 13), through the command (agent.cli.main)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mido
import pytest

from agent import config as config_mod
from agent import midi
from agent.cli import main
from agent.events import Heard
from agent.record import replay
from agent.record.log import read_log
from agent.record.overrides import Overrides, parse_styles
from agent.record.replay import Control, Input, Recording
from agent.record.session import LOG_NAME

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "performances" / "demo"
# A jig-like line in G, eighth notes at 120 BPM, eight times round: a tune that never rests, so
# call-and-response alone never has a phrase end to answer.
TUNE = [67, 71, 74, 71, 72, 76, 74, 71, 69, 72, 71, 69, 67, 66, 67, 62] * 8


@pytest.fixture(scope="module")
def tune(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain MIDI file, as exported from a DAW: one named track, each note ending where the
    next starts."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000)]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="fiddle")])
    for pitch in TUNE:
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                  mido.Message("note_off", note=pitch, velocity=0, time=240)]
    mid.tracks.append(track)
    path = tmp_path_factory.mktemp("tune") / "tune.mid"
    mid.save(path)
    return path


def run(out: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert main(["replay", *args, "--out", str(out)]) == 0
    return read_log(out / LOG_NAME)


def agent_notes(records: list[dict[str, Any]]) -> int:
    return sum(1 for r in records if r["k"] == "emit" and midi.is_note_on(bytes.fromhex(r["data"])))


def decisions(records: list[dict[str, Any]]) -> list[str]:
    return [r["what"] for r in records if r["k"] == "decision"]


def test_a_plain_midi_file_without_a_config_plays_auto_with_the_shipped_model(
        tune: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header, records = run(tmp_path / "r", str(tune))
    assert header["config"]["agent"]["mode"] == "auto"
    assert Path(header["model"]["path"]) == replay.SHIPPED_MODEL
    assert header["model"]["sha256"]
    # All the model's styles, evenly: an unknown file favours none.
    model = header["config"]["model"]
    assert model["styles"] == ["bach-chorales", "oneill-1850"]
    assert model["style_weights"] == [0.5, 0.5]
    assert agent_notes(records) > 0
    assert "comp" in decisions(records)  # under the tune, which never leaves a gap to answer
    assert "auto mode with the shipped model demo.pt" in capsys.readouterr().err


def test_without_the_shipped_model_the_markov_memory_plays_and_it_says_so(
        tune: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "SHIPPED_MODEL", tmp_path / "models" / "demo.pt")
    header, records = run(tmp_path / "r", str(tune))
    assert "model" not in header and header["config"]["model"]["checkpoint"] == ""
    assert header["config"]["agent"]["mode"] == "auto"
    assert agent_notes(records) > 0
    err = capsys.readouterr().err
    assert "no shipped model" in err and "Markov memory" in err


def test_mode_accompany_comps_a_midi_file(tune: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    header, records = run(tmp_path / "r", str(tune), "--mode", "accompany")
    assert header["config"]["agent"]["mode"] == "accompany"
    assert set(decisions(records)) == {"comp"} and agent_notes(records) > 0
    assert "accompany mode" in capsys.readouterr().err  # the line says what finally plays


def test_styles_set_the_models_blend(tune: Path, tmp_path: Path) -> None:
    header, _ = run(tmp_path / "r", str(tune), "--styles", "oneill-1850:0.7,bach-chorales:0.3")
    assert header["config"]["model"]["styles"] == ["oneill-1850", "bach-chorales"]
    assert header["config"]["model"]["style_weights"] == [0.7, 0.3]


def test_mode_and_styles_override_a_config_and_its_sections(tmp_path: Path) -> None:
    """The demo trades, then comps in its canon section: --mode accompany comps throughout
    (the sections' modes go; their bars and controls stay), --styles replaces its blend."""
    header, records = run(tmp_path / "r", str(DEMO / "rehearsal.mid"), "--config",
                          str(DEMO / "performance.toml"), "--mode", "accompany",
                          "--styles", "oneill-1850")
    cfg = header["config"]
    assert cfg["agent"]["mode"] == "accompany"
    assert [s["mode"] for s in cfg["sections"]] == ["", ""]
    assert cfg["sections"][1]["controls"] == {"dynamics": -0.3}
    assert (cfg["model"]["styles"], cfg["model"]["style_weights"]) == (["oneill-1850"], [1.0])
    made = decisions(records)
    assert "section" in made  # the canon still comes after 32 bars
    assert "comp" in made and "answer" not in made


@pytest.mark.parametrize(("args", "says"), [
    (["--styles", "nope"], "--styles: unknown style nope; the model demo.pt knows "
                           "bach-chorales, oneill-1850"),
    (["--styles", "oneill-1850:x"], "argument --styles: oneill-1850:x: the weight is not"),
    (["--styles", "oneill-1850:-1"], "argument --styles: oneill-1850:-1: the weight must be"),
    (["--styles", "oneill-1850:0"], "argument --styles: 'oneill-1850:0': the weights must not"),
    (["--styles", "oneill-1850,oneill-1850"], "argument --styles: 'oneill-1850,oneill-1850': "
                                              "oneill-1850 is given twice"),
    (["--mode", "jazz"], "argument --mode: invalid choice: 'jazz'"),
])
def test_bad_values_exit_2_naming_the_option(tune: Path, tmp_path: Path, args: list[str],
                                             says: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["replay", str(tune), *args, "--out", str(tmp_path / "r")]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing started, nothing recorded


def exit_code(argv: list[str]) -> int:
    """main's exit code, also for the usage errors argparse exits with."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(str(e.code))


def test_styles_without_a_model_is_refused(tune: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "SHIPPED_MODEL", tmp_path / "missing.pt")
    assert main(["replay", str(tune), "--styles", "oneill-1850"]) == 2
    assert "--styles: <default for a MIDI file> plays without a model" in capsys.readouterr().err


def test_strict_refuses_mode_and_styles(tune: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path / "r", str(tune))
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "r"), "--strict", "--mode", "solo",
                 "--styles", "oneill-1850"]) == 2
    assert ("--strict replays the whole log with its own config and seed: it cannot be "
            "combined with --mode, --styles") in capsys.readouterr().err


def test_overrides_drop_the_recorded_changes_they_override() -> None:
    """A recorded mode command goes with --mode, a controls command loses its mode and styles
    (and goes if nothing is left); the recorded answers go (a re-improvisation)."""
    cfg = config_mod.from_dict({"players": [{"name": "p", "port": "virtual:p"}]})
    inputs: list[Input] = [
        Heard(1, "p", bytes([0x90, 60, 80])), Control(2, "mode", {"mode": "solo"}),
        Control(3, "controls", {"mode": "mirror", "density": 2.0}),
        Control(4, "controls", {"styles": {"x": 1.0}}), Control(5, "cue", {"section": "b"})]
    rec = Recording(cfg, inputs, ["p"], None, [{"k": "model"}])
    got, got_cfg = Overrides(mode="respond").apply(rec, cfg)
    assert got_cfg.agent.mode == "call-response"  # the config's old name is accepted
    assert got.inputs == [inputs[0], Control(3, "controls", {"density": 2.0}), inputs[3],
                          inputs[4]]
    assert got.model_answers == []
    assert Overrides(styles=(("x", 1.0),))._keep(inputs[3]) is None
    assert Overrides().apply(rec, cfg) == (rec, cfg)  # no option: the recording as it is


def test_parse_styles() -> None:
    assert parse_styles("a") == (("a", 1.0),)
    assert parse_styles(" a : 0.25 , b:0 ") == (("a", 0.25), ("b", 0.0))
    for bad in ("", "a:", "a:inf", "a:1001", ":1"):
        with pytest.raises(ValueError):
            parse_styles(bad)


def test_compare_takes_mode_and_styles_for_run_b(tune: Path, tmp_path: Path) -> None:
    run(tmp_path / "a", str(tune))
    out = tmp_path / "b"
    assert main(["compare", str(tmp_path / "a"), "--mode", "accompany", "--styles",
                 "oneill-1850", "--out", str(out)]) == 0
    header, records = read_log(out / "replay" / LOG_NAME)
    assert header["config"]["agent"]["mode"] == "accompany"
    assert header["config"]["model"]["styles"] == ["oneill-1850"]
    assert set(decisions(records)) == {"comp"}
    page = (out / "index.html").read_text()
    assert "agent.mode" in page and "model.styles" in page  # in "What differs"
