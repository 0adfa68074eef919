"""`stage-agent perform` with a model over real JACK ports: the model answers a call, and when its
worker process is killed mid-performance the agent keeps answering and reports the restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import midi
from agent.errors import EXIT_CONFIG
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME
from tests.model_fixtures import save_random_checkpoint

from .jackpeer import Peer, model_piece, running_agent, write_piece
from .test_config_errors import left_running

RESPOND = model_piece("m.pt") + "restart_after_ms = 300.0\n"


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path]]:
    name = "modeljack"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    save_random_checkpoint(tmp_path / "m.pt")
    config = write_piece(tmp_path, RESPOND, name)
    yield peer, config
    peer.close()


def call(peer: Peer, pitches: list[int]) -> None:
    for p in pitches:
        peer.send(0x90, p, 80)
        time.sleep(0.08)
        peer.send(0x80, p, 0)


def answer_pitches(peer: Peer, count: int, timeout: float = 10.0) -> list[int]:
    """The pitches of the next `count` agent note-ons at the synth port."""
    ons: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ons) < count:
        for _, message in peer.expect(1, timeout=max(0.1, deadline - time.monotonic())):
            if midi.is_note_on(bytes(message)):
                assert message[0] == 0x91
                ons.append(message[1])
    return ons


def log_records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    """What the running agent's log holds so far (it is flushed every 100 ms)."""
    lines = (path / LOG_NAME).read_text().splitlines()[1:]
    return [json.loads(line) for line in lines if line.endswith("}")]


def test_the_model_answers_and_survives_its_worker_being_killed(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        call(peer, [60, 62, 64, 65])
        first = answer_pitches(peer, 4)
        assert all(55 <= p <= 70 for p in first), first  # the call's range widened by 5
        peer.drain()
        recording = config.parent / agent.recording
        ready = [r for r in log_records(recording) if r["k"] == "model" and r["what"] == "ready"]
        os.kill(ready[0]["pid"], signal.SIGKILL)
        call(peer, [67, 65, 64])
        assert answer_pitches(peer, 1)  # answered all the same (by the model or the memory)
        assert agent.wait() == 0, agent.err
    _header, records = read_log(recording / LOG_NAME)
    sources = [r["source"] for r in records if r["k"] == "decision" and r["what"] == "answer"]
    assert sources[0] == "model" and len(sources) == 2
    restarts = [r for r in records if r["k"] == "model" and r["what"] == "restart"]
    assert len(restarts) == 1 and restarts[0]["reason"].startswith("worker exited (")
    assert "model m.pt:" in agent.out


@pytest.mark.parametrize(("extra", "key", "style"), [
    ('styles = ["tune", "jazz"]\n', "model.styles[1]", "jazz"),
    ('styles = ["tune"]\n[[sections]]\nname = "a"\n'
     'controls = {{ styles = {{ chorale = 1.0, reel = 2.0 }} }}\n',
     "sections[0].controls.styles", "reel"),
])
def test_a_style_the_model_lacks_refuses_the_run_naming_the_key(
        extra: str, key: str, style: str, stage: tuple[Peer, Path], jack: dict[str, str],
        tmp_path: Path) -> None:
    """Found once the model has loaded (its styles are in the checkpoint): exit 2, the last
    line names the key, nothing is left running. A section's blend would otherwise have been
    refused in the middle of the performance, when the section began."""
    config = write_piece(tmp_path, RESPOND + extra, "modeljack")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "perform", str(config)],
                            env={**os.environ, **jack}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, out, err)
    assert err.splitlines()[-1] == (
        f"stage-agent: error: {config}: {key}: no style {style!r} in the model m.pt (its "
        "styles: chorale, tune)")
    deadline = time.monotonic() + 10  # the model worker, let go at the exit, ends after it
    while left_running(proc.pid):
        assert time.monotonic() < deadline, f"left running: {left_running(proc.pid)}"
        time.sleep(0.05)


def model_workers(parent: int) -> list[int]:
    """The model worker processes `parent` has spawned (not multiprocessing's tracker)."""
    pids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    found = []
    for pid in pids:
        try:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
                found.append(int(pid))
        except OSError:
            continue  # ended meanwhile
    return found


def test_a_stop_while_the_model_loads_stops_the_run_without_a_style_error(
        stage: tuple[Peer, Path], jack: dict[str, str], tmp_path: Path) -> None:
    """The styles the piece names are checked once the model has loaded; a stop signal
    before that ends the run (exit 0), never "no style 'tune' in the model (its styles: )"."""
    peer, _config = stage
    config = write_piece(tmp_path, RESPOND + 'styles = ["tune"]\n', "modeljack")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "perform", str(config)],
                            env={**os.environ, **jack}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        peer.take_reset_unless_lost()  # the session has begun: its model worker is loading
        deadline = time.monotonic() + 30
        while not (worker := model_workers(proc.pid)):
            assert time.monotonic() < deadline, "no model worker started"
            time.sleep(0.01)
        for pid in worker:
            os.kill(pid, signal.SIGSTOP)  # it stays loading: never ready
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "no style" not in err and "written to" in out, err
