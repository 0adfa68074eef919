"""One `perform` per piece (agent/io/instance_lock.py), on real files and real flock locks: a
second holder in this process stands for a second process (flock locks belong to each open
file, so two opens conflict as two processes would)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import config as config_mod
from agent.errors import EXIT_CONFIG, AlreadyPerforming
from agent.io.instance_lock import lock_path, one_instance


def piece(folder: Path, record_dir: str = "recordings") -> config_mod.Config:
    return config_mod.from_dict({
        "performance": {"name": "duo"},
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "record": {"dir": record_dir}}, str(folder / "performance.toml"))


def test_a_second_holder_is_refused_naming_the_first_until_it_lets_go(tmp_path: Path) -> None:
    cfg = piece(tmp_path)
    path = tmp_path / "recordings" / "duo.lock"
    assert lock_path(cfg) == path
    with one_instance(cfg):
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(AlreadyPerforming) as refused, one_instance(cfg):
            pass
        assert refused.value.exit_code == EXIT_CONFIG
        assert str(refused.value) == (
            f"{tmp_path / 'performance.toml'}: 'duo' is already being performed by process "
            f"{os.getpid()} (it holds {path}); stop that one first, or give this one another "
            f"[performance] name or [record] dir")
    with one_instance(cfg):  # let go: the next one holds it (the file stays)
        pass
    assert path.is_file()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (a tmpfs mounted ro): root may not write there either."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_lock_that_cannot_be_made_does_not_stop_the_show(
        tmp_path: Path, read_only: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = piece(tmp_path, str(read_only / "recordings"))
    entered = False
    with caplog.at_level(logging.WARNING), one_instance(cfg):
        entered = True
    assert entered
    assert f"cannot make the lock {read_only / 'recordings' / 'duo.lock'} (Read-only file " \
           f"system): performing without the guard against a second perform of 'duo'" \
        in caplog.text
