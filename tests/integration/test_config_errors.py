"""`stage-agent perform` (the CLI, as a process) with broken performance.toml files: exit 2, one
line on stderr naming the file and the key, no recording folder, nothing left running.

Errors the config's own checks find need no MIDI at all: those runs are given a JACK server name
that does not exist, so an error found too late would show as a MIDI error instead. Errors found
at the ports (a port reference nothing matches) run against the session's JACK server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.errors import EXIT_CONFIG
from tests.corpus_fixtures import Piece, melody, write_corpus

BASE = """
[performance]
name = "broken"
[[players]]
name = "keys"
port = "virtual:broken-keys"
[agent]
mode = "harmony"
outputs = ["virtual:broken-out"]
channel = 2
"""
NO_JACK = {"STAGE_AGENT_MIDI_API": "jack", "JACK_DEFAULT_SERVER": "stage-agent-no-such-server",
           "JACK_NO_START_SERVER": "1"}


@dataclass(frozen=True)
class Broken:
    toml: str  # the whole performance.toml
    key: str  # the key the error names ("-" for the file as a whole)
    problem: str  # how the problem is said (the start of it; {dir} is the config's folder)
    files: dict[str, bytes] = field(default_factory=dict)  # beside the config
    at_ports: bool = False  # found only when the ports are opened: needs JACK


# A checkpoint is a zip archive (torch.save): an empty one passes the file check at load.
EMPTY_ZIP = b"PK\x05\x06" + bytes(18)
CASES = {
    "toml-syntax": Broken(BASE.replace("[agent]", "[agent"), "-",
                          "not valid TOML: Expected ']' at the end of a table declaration "
                          "(at line 7, column 7)"),
    "no-file": Broken("", "-", "file not found"),
    "unknown-key": Broken(BASE + 'colour = "red"\n', "agent.colour",
                          "unknown key (known: mode, outputs, channel, "),
    "wrong-type": Broken(BASE.replace("channel = 2", 'channel = "2"'), "agent.channel",
                         "expected int, got a string"),
    "out-of-range": Broken(BASE.replace("channel = 2", "channel = 17"), "agent.channel",
                           "17 is out of range 1..16"),
    "bad-mode": Broken(BASE.replace('"harmony"', '"polka"'), "agent.mode",
                       "must be one of call-response, "),
    "no-player-port": Broken(BASE.replace('port = "virtual:broken-keys"\n', ""),
                             "players[0].port", "missing (required)"),
    "no-players": Broken(BASE.replace('[[players]]\nname = "keys"\nport = "virtual:broken-keys"',
                                      ""), "players", "missing (required)"),
    "bad-port-regex": Broken(BASE.replace("virtual:broken-keys", "re:(keys"), "players[0].port",
                             "bad regular expression: missing ), unterminated subpattern"),
    "no-checkpoint": Broken(BASE.replace('"harmony"', '"call-response"')
                            + '[model]\ncheckpoint = "models/none.pt"\n', "model.checkpoint",
                            "no such file: {dir}/models/none.pt"),
    "deadline-after-latency": Broken(
        BASE.replace('"harmony"', '"call-response"') + 'output_latency_ms = 20.0\n'
        '[model]\ncheckpoint = "m.pt"\ndeadline_ms = 50.0\n', "model.deadline_ms",
        "50.0 exceeds agent.output_latency_ms (20.0)", {"m.pt": EMPTY_ZIP}),
    "no-layout": Broken(BASE + '[spatial]\nlayout = "none.toml"\n', "spatial.layout",
                        "no such file: {dir}/none.toml"),
    "no-ca-file": Broken(BASE + '[mqtt]\nhost = "127.0.0.1"\ntls = true\nca_file = "ca.pem"\n',
                         "mqtt.ca_file", "no such file: {dir}/ca.pem"),
    "bad-osc-address": Broken(BASE + '[osc]\ncontrol = "localhost"\n', "osc.control",
                              "'localhost' is not host:port (port 1-65535)"),
    "no-such-input": Broken(BASE.replace("virtual:broken-keys", "no-such-keyboard"),
                            "players[0].port", "no MIDI input matches 'no-such-keyboard'",
                            at_ports=True),
    "no-such-output": Broken(BASE.replace("virtual:broken-out", "no-such-synth"),
                             "agent.outputs[0]", "no MIDI output matches 'no-such-synth'",
                             at_ports=True),
    # files that are there but are not what they should be: read when the config loads
    "ca-file-not-a-bundle": Broken(
        BASE + '[mqtt]\nhost = "127.0.0.1"\ntls = true\nca_file = "ca.pem"\n', "mqtt.ca_file",
        "not a CA bundle: ", {"ca.pem": b"not a certificate\n"}),
    "memory-from-missing": Broken(BASE + '[respond]\nmemory_from = ["corpora/none"]\n',
                                  "respond.memory_from[0]",
                                  "no such corpus folder: {dir}/corpora/none"),
    "memory-from-not-a-corpus": Broken(BASE + '[respond]\nmemory_from = ["mine"]\n',
                                       "respond.memory_from[0]",
                                       "{dir}/mine: corpus not built (no manifest.json)",
                                       {"mine/tune.mid": b"MThd"}),
    "checkpoint-not-a-model": Broken(
        BASE.replace('"harmony"', '"call-response"') + '[model]\ncheckpoint = "m.pt"\n',
        "model.checkpoint", "{dir}/m.pt: not a stage-agent model checkpoint",
        {"m.pt": b"not a model\n"}),
}
# A layout file that is not one: the error names that file and the key in it (the layout is
# read when the run starts, before any port is opened).
BAD_LAYOUT = Broken(BASE + '[spatial]\nlayout = "hall.toml"\n', "layout",
                    "missing [layout] table", {"hall.toml": b"speakers = 3\n"}, at_ports=True)
def left_running(group: int) -> list[str]:
    """The processes of a process group still running (zombies waiting to be reaped are not)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(stat.parent.name)
    return found


def perform(case: Broken, folder: Path, env: dict[str, str]) -> tuple[Path, str]:
    """Run `stage-agent perform` on the case's config: (the config's path, stderr)."""
    config = folder / "performance.toml"
    if case.toml:
        config.write_text(case.toml)
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    # Its own process group: whatever it starts (a model worker) is found by the group.
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "perform", str(config)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, out, err)
    assert "performing" not in out, out
    assert left_running(proc.pid) == [], "left running after the exit"
    return config, err


def check_refused(case: Broken, folder: Path, env: dict[str, str],
                  named: Path | None = None) -> None:
    config, err = perform(case, folder, env)
    line = f"stage-agent: error: {named or config}: {case.key}: " \
        f"{case.problem.format(dir=folder)}"
    assert len(err.splitlines()) == 1 and err.startswith(line), err  # one clear line
    # Nothing recorded: the folder for the recordings holds at most the piece's lock (the first
    # thing a run takes, agent/io/instance_lock.py).
    made = [p.name for p in (folder / "recordings").glob("*")]
    assert all(name.endswith(".lock") for name in made), f"a recording folder was made: {made}"


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.at_ports])
def test_a_config_error_refuses_the_run_before_any_port(name: str, tmp_path: Path) -> None:
    check_refused(CASES[name], tmp_path, NO_JACK)


def test_a_corpus_file_that_changed_refuses_the_run_before_any_port(tmp_path: Path) -> None:
    """respond.memory_from's corpora are read whole, each file checked against its manifest,
    before any port opens."""
    mine = write_corpus(tmp_path / "mine", [Piece("tune", "train", (melody([60, 62, 64]),))])
    (mine / "midi" / "tune.mid").write_bytes(b"MThd changed")
    check_refused(Broken(BASE + '[respond]\nmemory_from = ["mine"]\n', "respond.memory_from[0]",
                         "{dir}/mine/midi/tune.mid: sha256 differs from {dir}/mine/manifest.json"),
                  tmp_path, NO_JACK)


@pytest.mark.jack
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.at_ports])
def test_a_missing_port_refuses_the_run(name: str, tmp_path: Path, jack: dict[str, str]) -> None:
    check_refused(CASES[name], tmp_path, jack)


@pytest.mark.jack
def test_a_bad_layout_file_refuses_the_run(tmp_path: Path, jack: dict[str, str]) -> None:
    check_refused(BAD_LAYOUT, tmp_path, jack, named=tmp_path / "hall.toml")


@pytest.mark.jack
@pytest.mark.parametrize(("kind", "table", "key"), [
    (socket.SOCK_DGRAM, "[osc]\ncontrol = \"127.0.0.1:{port}\"\n", "osc.control"),
    (socket.SOCK_STREAM, "[monitor]\nlisten = \"127.0.0.1:{port}\"\n", "monitor.listen"),
])
def test_an_address_already_taken_refuses_the_run(kind: int, table: str, key: str,
                                                  tmp_path: Path, jack: dict[str, str]) -> None:
    """Another program listens where the agent would: refused before any port or recording."""
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        case = Broken(BASE + table.format(port=port), key,
                      f"cannot listen on 127.0.0.1:{port}: Address already in use", at_ports=True)
        check_refused(case, tmp_path, jack)
