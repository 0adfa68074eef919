"""Config validation: every error names the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent import config
from agent.cli import main
from agent.errors import ConfigError

GOOD = """
[performance]
name = "t"
[[players]]
name = "keys"
port = "virtual:keys"
channels = [1, 2]
[agent]
mode = "harmony"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "performance.toml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, GOOD))
    assert c.players[0].channels == (1, 2)
    assert c.agent.mode == "harmony"
    assert c.agent.output_latency_ms == 100.0
    assert config.from_dict(c.to_dict()) == c  # the recorded config loads back as itself


@pytest.mark.parametrize(("text", "key", "problem"), [
    (GOOD + "\n[agent2]\nx = 1\n", "agent2", "unknown key"),
    (GOOD.replace('mode = "harmony"', 'mode = "harmony"\nlatency = 3'), "agent.latency",
     "unknown key"),
    (GOOD.replace("channels = [1, 2]", 'channels = ["1"]'), "players[0].channels[0]",
     "expected int, got a string"),
    (GOOD.replace("channels = [1, 2]", "channels = [17]"), "players[0].channels[0]",
     "out of range"),
    (GOOD.replace('mode = "harmony"', 'mode = "jazz"'), "agent.mode", "must be one of"),
    (GOOD.replace('name = "keys"\n', ""), "players[0].name", "missing (required)"),
    (GOOD.replace('"virtual:keys"', '"re:[unclosed"'), "players[0].port", "bad regular"),
    (GOOD.replace('mode = "harmony"', "output_latency_ms = true"), "agent.output_latency_ms",
     "expected float, got a boolean"),
    ('[performance]\nname = "x"\n', "players", "missing (required)"),
    ("[[players]\n", "-", "not valid TOML"),
])
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, key: str,
                                          problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(path) in str(err.value)


def test_cli_exits_2_on_a_bad_config_and_starts_nothing(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace('mode = "harmony"', 'mode = "jazz"'))
    assert main(["perform", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: agent.mode: must be one of" in err
    assert not (tmp_path / "recordings").exists()  # nothing started, nothing recorded


def test_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["perform", str(tmp_path / "nope.toml")]) == 2


@pytest.mark.timeout(30)
def test_a_config_that_is_no_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO (nobody writing) hung the start for ever; a device or a huge file is refused
    before it is read, and bytes that are not UTF-8 are no TOML."""
    fifo = tmp_path / "performance.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as err:
        config.load(fifo)
    assert (err.value.key, err.value.problem) == ("-", "not a regular file (a FIFO): refused")
    with pytest.raises(ConfigError) as err:
        config.load("/dev/zero")
    assert "not a regular file" in err.value.problem
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as f:
        f.truncate(config.MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError) as err:
        config.load(huge)
    assert err.value.problem == f"{config.MAX_CONFIG_BYTES + 1} bytes, more than the 4 MiB allowed"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(GOOD.replace('"keys"', '"cl\u00e9"').encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        config.load(latin)
    assert err.value.problem.startswith("not valid TOML: not UTF-8")


MQTT = '\n[mqtt]\nhost = "127.0.0.1"\nagent = "keys"\n'


@pytest.mark.parametrize(("text", "key", "problem"), [
    (GOOD + '[ensemble]\nmembers = ["keys", "bass"]\n', "ensemble.members", "set mqtt.host"),
    (GOOD + MQTT + '[ensemble]\nmembers = ["bass", "drums"]\n', "ensemble.members",
     "this agent ('keys', mqtt.agent) is not a member"),
    (GOOD + MQTT + '[ensemble]\nmembers = ["keys", "keys"]\n', "ensemble.members",
     "a member is named twice"),
    (GOOD + MQTT + '[ensemble]\nmembers = ["keys", "b/x"]\n', "ensemble.members[1]",
     "cannot be part of an MQTT topic"),
    (GOOD + MQTT + '[ensemble]\nmembers = ["keys"]\ntempo_leader = "bass"\n',
     "ensemble.tempo_leader", "'bass' is not a member"),
    (GOOD + '[ensemble]\ntempo_leader = "bass"\n', "ensemble.tempo_leader",
     "set ensemble.members first"),
    (GOOD + MQTT + "max_command_age_s = 0.1\n", "mqtt.max_command_age_s", "out of range"),
    (GOOD + "[record]\ncapture_s = 5\n", "record.capture_s", "out of range"),
])
def test_ensemble_and_control_plane_errors(tmp_path: Path, text: str, key: str,
                                           problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text))
    assert (err.value.key, problem in err.value.problem) == (key, True), err.value.problem


def test_an_ensemble_loads(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, GOOD + MQTT + '[ensemble]\nmembers = ["keys", "bass"]\n'
                          'tempo_leader = "bass"\n'))
    assert (c.ensemble.members, c.ensemble.tempo_leader) == (("keys", "bass"), "bass")


def test_the_models_folder_is_the_checkpoints_unless_named(tmp_path: Path) -> None:
    """model.models_dir: where model-reload may load from besides the piece's folder."""
    (tmp_path / "shelf").mkdir()
    table = config.load(write(tmp_path, GOOD)).to_dict()
    table["model"]["checkpoint"] = "../models/demo.pt"  # (not there: files are not checked)
    c = config.from_dict(table, str(tmp_path / "performance.toml"), check_files=False)
    assert c.models_path() == tmp_path / "../models"
    table["model"]["checkpoint"] = ""
    table["model"]["models_dir"] = "shelf"
    c = config.from_dict(table, str(tmp_path / "performance.toml"))
    assert c.models_path() == tmp_path / "shelf"
    table["model"]["models_dir"] = "nowhere"
    with pytest.raises(ConfigError) as err:
        config.from_dict(table, str(tmp_path / "performance.toml"))
    assert (err.value.key, err.value.problem) == (
        "model.models_dir", f"no such folder: {tmp_path / 'nowhere'}")


def styled(tmp_path: Path, model: str, sections: str = "") -> config.Config:
    return config.load(write(tmp_path, GOOD + "[model]\n" + model + sections))


def test_styles_without_weights_weigh_the_same(tmp_path: Path) -> None:
    c = styled(tmp_path, 'styles = ["mine"]\n')
    assert c.style() == {"mine": 1.0}
    assert c.initial_controls().styles == (("mine", 1.0),)
    both = styled(tmp_path, 'styles = ["mine", "oneill-1850"]\n')
    assert both.style() == {"mine": 1.0, "oneill-1850": 1.0}
    weighed = styled(tmp_path, 'styles = ["mine", "oneill-1850"]\nstyle_weights = [3, 1]\n')
    assert weighed.style() == {"mine": 3.0, "oneill-1850": 1.0}
    assert styled(tmp_path, "").style() == {}  # none named: the model's first style


@pytest.mark.parametrize(("model", "key", "problem"), [
    ('styles = ["mine", "tune", "mine"]\n', "model.styles[2]", "'mine' is named twice"),
    ('styles = ["mine", "tune"]\nstyle_weights = [1.0]\n', "model.style_weights",
     "1 weights for 2 styles: give one weight per style, or none (the styles then weigh the "
     "same)"),
    ("style_weights = [1.0]\n", "model.style_weights", "1 weights for 0 styles"),
])
def test_style_errors_name_the_key(tmp_path: Path, model: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        styled(tmp_path, model)
    assert (e.value.key, e.value.problem[:len(problem)]) == (key, problem)


def test_a_style_the_model_lacks_is_named_with_its_key(tmp_path: Path) -> None:
    sections = ('[[sections]]\nname = "a"\n[[sections]]\nname = "b"\n'
                'controls = { styles = { mine = 1.0, jig = 0.5 } }\n')
    c = styled(tmp_path, 'styles = ["tune"]\n', sections)
    assert config.style_problem(c, ("tune", "mine", "jig"), "m.pt") is None
    assert config.style_problem(c, ("chorale", "tune", "mine"), "m.pt") == (
        "sections[1].controls.styles", "no style 'jig' in the model m.pt (its styles: chorale, "
        "tune, mine)")
    with pytest.raises(ConfigError) as e:
        config.check_styles(c, ("chorale", "mine", "jig"), "m.pt")
    assert str(e.value) == (f"{tmp_path / 'performance.toml'}: model.styles[0]: no style 'tune' "
                            "in the model m.pt (its styles: chorale, mine, jig)")
