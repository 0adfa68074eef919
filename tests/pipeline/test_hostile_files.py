"""Hostile or odd recordings through every command that reads one, as real files and the real
command (`python -m agent.cli` in its own process where the exit code and the message are the
point): each is refused at once with exit 2 and a message naming the file (and the line), or,
where it is a recording after all (a gap of days), read in bounded time and memory. Each process
runs under an address-space limit, so a reader that would fill the memory fails instead of
taking the machine with it; the timeouts are generous deadlines for a hang, not measurements."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.record.log import read_log
from agent.record.session import LOG_NAME

DEMO = Path(__file__).resolve().parents[2] / "performances" / "demo"
MEMORY_BYTES = 3 << 30
LINE = 10  # the record made bad, as the error names it (the header is line 1)
Record = dict[str, Any]


def cli(*args: str, cwd: Path | None = None,
        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python -m agent.cli ARGS` under MEMORY_BYTES of address space."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))

    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rehearsal replayed once (a spatial piece, with its model): the log to spoil."""
    out = tmp_path_factory.mktemp("hostile") / "demo"
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--config",
                 str(DEMO / "performance.toml"), "--out", str(out)]) == 0
    return out / LOG_NAME


def test_a_replay_writes_only_where_it_is_told(demo_log: Path, tmp_path: Path) -> None:
    """A log's header is not the user's: its record.dir and performance name cannot put the
    replay's folder anywhere (an absolute folder, or "../.." in the name)."""
    header, *lines = demo_log.read_text().splitlines()
    h = json.loads(header)
    h["config"]["record"]["dir"] = str(tmp_path / "a" / "b")
    h["config"]["performance"]["name"] = "../../escaped/x"
    folder = tmp_path / "from-elsewhere"
    folder.mkdir()
    (folder / LOG_NAME).write_text("\n".join([json.dumps(h), *lines]) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    for command in (["replay", str(folder)], ["replay", str(folder), "--strict"]):
        done = cli(*command, cwd=work)
        assert done.returncode == 0, done.stderr
    made = sorted((work / "recordings").iterdir())
    assert [p.name.split("-", 2)[:2] for p in made] == [["escaped", "x"]] * 2
    assert sorted(p.name.rsplit("-", 1)[1] for p in made) == ["replay", "strict"]
    assert all((p / LOG_NAME).is_file() for p in made)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["from-elsewhere", "work"]


def test_files_a_header_names_are_read_only_if_regular(demo_log: Path, tmp_path: Path) -> None:
    """The header says where the model and the speaker layout were: a replay reads them (the
    model's hash, the corpus for the originality figure, the layout for the picture). Pointed
    at /dev/zero, each is refused and the replay says so; nothing fills the memory."""
    header, *lines = demo_log.read_text().splitlines()
    h = json.loads(header)
    h["model"]["path"] = "/dev/zero"
    h["layout"] = "/dev/zero"
    folder = tmp_path / "pointing"
    folder.mkdir()
    (folder / LOG_NAME).write_text("\n".join([json.dumps(h), *lines]) + "\n")
    done = cli("replay", str(folder), "--json", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    refused = "not a regular file (a character device): refused"
    assert summary["trajectories_error"] == f"/dev/zero: -: {refused}"
    assert summary["originality_error"] == (
        f"/dev/zero: cannot read the model checkpoint: {refused}")
    replay_header, _ = read_log(tmp_path / "r" / LOG_NAME)
    assert replay_header["model"] == {"path": "/dev/zero", "sha256": None}
