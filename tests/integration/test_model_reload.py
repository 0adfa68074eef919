"""`model-reload` on real parts: real worker processes loading real (tiny) checkpoints while the
old worker answers, on a real clock; and `stage-agent perform` as a process, reloaded over a
real mosquitto broker while it plays at real JACK ports. The tests wait for what happens (the
swap, the failure, a process gone), never for how fast."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent import config as config_mod
from agent import midi
from agent.clock import MonotonicClock
from agent.io.jack_server import JackServer
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.live import MAX_CHECKPOINT_BYTES, ModelClient, ModelNote, PhraseRequest
from agent.model.originality import join_lines
from agent.model.proposals import Constraints
from agent.model.reload import ModelReload
from agent.model.worker import WorkerModel
from agent.policy.commands import CommandError, parse_command
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME, Session
from agent.service import _worker_factory
from agent.visuals.state import messages
from tests.model_fixtures import CORPUS_LINE, random_net, save_random_checkpoint, save_with_style

from .broker import MOSQUITTO, Broker
from .director import Director
from .jackpeer import Peer, model_piece, running_agent, write_piece
from .test_perform_model_jack import log_records

S = 1_000_000_000
MINE = [64, 66, 69, 71, 73, 71, 69, 66, 64, 61]  # the musician's own corpus, one line
REQUEST = PhraseRequest(4, Constraints(low=60, high=72, velocity_min=40, velocity_max=90))
Record = dict[str, Any]


def save_checkpoint(path: Path, styles: tuple[str, ...], seed: int = 1) -> Path:
    """A tiny random model with these corpus styles (model_fixtures' has two fixed ones)."""
    net = random_net(seed, n_styles=len(styles))
    checkpoint.save(path, net, styles,
                    [{"name": s, "hash": "0" * 64, "works": 1, "notes": 16} for s in styles],
                    {"epochs": 0, "best_epoch": 0, "best_valid_bits": 0.0, "seconds": 0.0,
                     "seconds_to_best": 0.0, "history": []}, join_lines([np.array(CORPUS_LINE)]))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def children() -> set[int]:
    """This process's live child processes (the model workers)."""
    return {p.pid for p in multiprocessing.active_children()}


def gone(pid: int) -> bool:
    """The process has ended and been reaped (a zombie still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass
class Stage:
    """A live session as `perform` builds it (the service's worker factory, the reload action),
    on the real clock, without ports: requests go straight to whichever model it holds."""

    session: Session
    reload: ModelReload
    records: list[Record] = field(default_factory=list)  # its `model` and `ctl` records
    states: list[dict[str, Any]] = field(default_factory=list)  # published `model` states

    def command(self, **fields: Any) -> None:
        self.session.command(parse_command("model-reload", fields),
                             self.session.clock.now_ns())

    def controls(self, **fields: Any) -> None:
        self.session.command(parse_command("controls", fields), self.session.clock.now_ns())

    def model(self) -> WorkerModel:
        assert isinstance(self.session.model, WorkerModel)
        return self.session.model

    def ask_later(self) -> tuple[ModelClient, asyncio.Future[tuple[list[ModelNote] | None, str]]]:
        """A request to the model the session holds now (generous deadline), and its answer."""
        model = self.model()
        got: asyncio.Future[tuple[list[ModelNote] | None, str]] = \
            asyncio.get_running_loop().create_future()
        now = self.session.clock.now_ns()
        model.request(now, REQUEST, now + 20 * S, lambda notes, why: got.set_result((notes, why)))
        return model, got

    async def ask(self) -> tuple[ModelClient, list[ModelNote] | None, str]:
        model, got = self.ask_later()
        notes, why = await asyncio.wait_for(got, 30)
        return model, notes, why

    def feed(self, pitches: list[int]) -> None:
        now = self.session.clock.now_ns()
        for i, p in enumerate(pitches):
            self.model().feed(now + i * 200_000_000, rep.PLAYER, p, 80, None, None)

    def model_records(self, *whats: str) -> list[Record]:
        return [r for r in self.records if r["k"] == "model" and r["what"] in whats]

    def pids(self) -> list[int]:
        """Every worker that got ready, in order."""
        return [r["pid"] for r in self.model_records("ready")]

    async def until(self, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.02)

    async def until_state(self, checkpoint: Path, status: str) -> dict[str, Any]:
        """The published model state, once it says `status` about `checkpoint`."""
        await self.until(lambda: (self.states[-1]["checkpoint"], self.states[-1]["status"])
                         == (str(checkpoint.resolve()), status))
        return self.states[-1]


def piece(folder: Path, mode: str, **model: Any) -> config_mod.Config:
    table = {"players": [{"name": "keys", "port": "virtual:keys"}],
             "agent": {"mode": mode, "outputs": ["virtual:out"], "output_latency_ms": 100.0},
             "model": {"checkpoint": "a.pt", "deadline_ms": 100.0, **model}}
    return config_mod.from_dict(table, str(folder / "performance.toml"))


@pytest.fixture
async def stages(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Makes a Stage whose first model (a.pt in tmp_path) is ready; cleans up after."""
    made: list[tuple[Stage, Any]] = []
    loop = asyncio.get_running_loop()

    async def make(mode: str = "call-response", **model: Any) -> Stage:
        if not (tmp_path / "a.pt").exists():
            save_random_checkpoint(tmp_path / "a.pt", seed=0)
        config = piece(tmp_path, mode, **model)
        session = Session(config, MonotonicClock(), lambda port, data: True,
                          tmp_path / f"rec{len(made)}", {"clock": "monotonic"},
                          _worker_factory(config, loop) if config.uses_model() else None)
        driver = session.drive_realtime(loop)
        stage = Stage(session, ModelReload(session, loop))
        session.actions["model-reload"] = stage.reload.command
        session.log.taps.append(lambda r: stage.records.append(r)
                                if r["k"] in ("model", "ctl") else None)
        session.agent.publish = lambda kind, payload: stage.states.append(payload) \
            if kind == "model" else None
        made.append((stage, driver))
        if isinstance(session.model, WorkerModel):
            await session.model.wait_ready(60)
            await stage.until(lambda: len(stage.states) == 1)  # the first model, announced
        return stage

    yield make
    for stage, driver in made:
        stage.reload.close()
        driver.stop()
        stage.session.stop(stage.session.clock.now_ns())
        stage.session.log.close()


async def test_a_reload_while_requests_flow_swaps_in_the_new_model(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    stage: Stage = await stages()
    a, b = tmp_path / "a.pt", save_checkpoint(tmp_path / "b.pt", ("chorale", "tune", "reel"))
    assert stage.states == [{"checkpoint": str(a.resolve()), "sha256": sha256(a),
                             "status": "ready"}]
    old = stage.model()
    [old_pid] = stage.pids()
    with pytest.raises(CommandError, match=r"styles \['reel'\] are not in the model"):
        stage.controls(styles={"reel": 1.0})
    stage.feed([60, 62, 64, 65])

    stage.command(checkpoint="b.pt")
    with pytest.raises(CommandError, match=r"b\.pt is still loading"):
        stage.command(checkpoint="a.pt")  # a second reload while the first loads: refused
    asked: list[tuple[ModelClient, list[ModelNote] | None, str]] = []
    b_ready = {"checkpoint": str(b.resolve()), "sha256": sha256(b), "status": "ready"}
    while stage.states[-1] != b_ready:  # requests flow while it loads...
        asked.append(await stage.ask())
    for _ in range(3):  # ...and after the swap
        asked.append(await stage.ask())

    # Every request was answered by a model, first the old one, then (from the swap) the new.
    assert all(why == "model" and notes for _, notes, why in asked)
    new = stage.model()
    askers = [model for model, _, _ in asked]
    switch = askers.index(new)
    assert askers[0] is old and switch > 0
    assert askers[:switch] == [old] * switch and askers[switch:] == [new] * (len(asked) - switch)
    assert new.path == b and new.styles == ("chorale", "tune", "reel")
    stage.controls(styles={"reel": 1.0})  # the new model's style: taken now
    # The old process is gone; the new one is another.
    await stage.until(lambda: gone(old_pid))
    assert not old.alive() and new.alive()
    new_pid = stage.pids()[1]
    assert new_pid != old_pid and not gone(new_pid)

    identity = {"path": str(b.resolve()), "sha256": sha256(b)}
    assert stage.states[1:] == [{"checkpoint": identity["path"], "sha256": identity["sha256"],
                                 "status": s} for s in ("loading", "ready")]
    log = [(r["k"], r["what"], {k: v for k, v in r.items() if k not in ("t", "k", "what")})
           for r in stage.records]
    reload_log = [entry for entry in log if entry[1] in (
        "model-reload", "reload-started", "reloaded", "reload-failed")]
    assert reload_log == [("ctl", "model-reload", {"checkpoint": "b.pt"}),
                          ("model", "reload-started", identity),
                          ("model", "reloaded", identity)]
    # The second reload was refused: nothing logged for it. The new worker got ready once.
    assert ("model", "ready", {"pid": new_pid, "refed": 0}) in log
    # It took over the music the old one had heard: a restart of it is fed those 4 notes again.
    os.kill(new_pid, signal.SIGKILL)
    await stage.until(lambda: len(stage.pids()) == 3)
    assert stage.model_records("ready")[-1]["refed"] == 4 and stage.model() is new
    assert (await stage.ask())[2] == "model"


async def test_a_request_the_old_worker_owes_at_the_swap_is_answered_by_it(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    """Reload of the configured file after training into it again ({}): a request pending on
    the old worker when the new one takes over is still answered, by the old one."""
    stage: Stage = await stages()
    old = stage.model()
    [old_pid] = stage.pids()
    before = sha256(tmp_path / "a.pt")
    save_random_checkpoint(tmp_path / "a.pt", seed=1)  # retrained in place
    os.kill(old_pid, signal.SIGSTOP)  # it cannot answer until SIGCONT
    try:
        asked_old, answer = stage.ask_later()
        stage.command()
        await stage.until_state(tmp_path / "a.pt", "loading")
        await stage.until_state(tmp_path / "a.pt", "ready")
        assert stage.model() is not old and asked_old is old
        assert not answer.done() and not gone(old_pid)  # still owed: the old worker waits
    finally:
        os.kill(old_pid, signal.SIGCONT)
    notes, why = await asyncio.wait_for(answer, 30)
    assert why == "model" and notes  # answered by the old worker...
    await stage.until(lambda: gone(old_pid))  # ...which then stopped
    assert (await stage.ask())[2] == "model"
    [reloaded] = stage.model_records("reloaded")
    assert reloaded["sha256"] == sha256(tmp_path / "a.pt") != before
    assert reloaded["path"] == str((tmp_path / "a.pt").resolve())


async def test_a_missing_checkpoint_is_refused_and_the_model_stays(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    stage: Stage = await stages()
    old = stage.model()
    with pytest.raises(CommandError, match=r"no such checkpoint file: .*missing\.pt"):
        stage.command(checkpoint="missing.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CommandError, match=r"no such checkpoint file: .*folder\.pt"):
        stage.command(checkpoint="folder.pt")
    assert stage.model() is old and (await stage.ask())[2] == "model"
    assert [r["what"] for r in stage.records] == ["ready"]  # nothing logged for the refusals
    assert len(stage.states) == 1


async def test_a_checkpoint_outside_the_piece_and_models_folders_is_refused(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    """A command names any path it likes: only a file in the piece's folder or the models
    folder (here both tmp_path) is loaded, symlinks and `..` resolved. Anything else is refused
    before the file is looked at: nothing logged, nothing published (the sha256 of
    /etc/passwd went retained to every MQTT reader), and the old model plays on. So are a
    FIFO (it would hang the hash) and a file larger than a checkpoint may be."""
    stage: Stage = await stages()
    old = stage.model()
    (tmp_path / "link.pt").symlink_to("/etc/passwd")
    for given in ("../../../../etc/passwd", "/etc/passwd", "link.pt"):
        with pytest.raises(CommandError) as refused:
            stage.command(checkpoint=given)
        assert str(refused.value) == (f"model-reload: {given!r} is outside the piece's folder "
                                      "and the models folder (model.models_dir): refused")
    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(CommandError, match=r"no such checkpoint file: .*/fifo\.pt$"):
        stage.command(checkpoint="fifo.pt")
    with (tmp_path / "huge.pt").open("wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(CommandError) as refused:
        stage.command(checkpoint="huge.pt")
    assert str(refused.value) == (f"model-reload: {(tmp_path / 'huge.pt').resolve()} is "
                                  f"{MAX_CHECKPOINT_BYTES + 1} bytes, more than the 1 GiB a "
                                  "checkpoint may be")
    assert stage.model() is old and (await stage.ask())[2] == "model"
    assert [r["what"] for r in stage.records] == ["ready"]  # nothing logged for the refusals
    assert len(stage.states) == 1  # nothing published but the first model


async def test_a_checkpoint_in_the_models_folder_is_loaded(
        stages: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    """model.models_dir names a folder outside the piece's: its checkpoints load."""
    shelf = tmp_path_factory.mktemp("shelf")
    c = save_checkpoint(shelf / "c.pt", ("chorale", "tune"), seed=3)
    stage: Stage = await stages(models_dir=str(shelf))
    stage.command(checkpoint=str(c))
    assert (await stage.until_state(c, "ready"))["sha256"] == sha256(c)
    assert stage.model().path == c


def test_a_checkpoint_is_hashed_a_chunk_at_a_time(tmp_path: Path) -> None:
    """model_identity (the log header's, and each reload's in a thread) reads a chunk at a time:
    hashing 512 MiB takes no more memory than a small file (read whole, a 3 GB checkpoint took
    the agent from 185 MB to 3.3 GB)."""
    big = tmp_path / "big.pt"
    with big.open("wb") as f:
        f.truncate(512 << 20)  # sparse: zeros, no disk used
    expected = hashlib.sha256()
    for _ in range(512):
        expected.update(bytes(1 << 20))
    code = ("import resource, sys\n"
            "from pathlib import Path\n"
            "from agent.record.session import model_identity\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "digest = model_identity(Path(sys.argv[1]))['sha256']\n"
            "print(digest, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True,
                          text=True, timeout=120, check=True)
    digest, grown_kb = done.stdout.split()
    assert digest == expected.hexdigest()
    assert int(grown_kb) < 16 << 10  # KB: a few chunks of 1 MiB at most, not 512 MiB


async def test_a_checkpoint_that_does_not_load_is_reported_and_the_old_model_plays_on(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    stage: Stage = await stages(styles=["tune"], style_weights=[1.0])
    old = stage.model()
    [old_pid] = stage.pids()
    before = children()
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    save_checkpoint(tmp_path / "other.pt", ("reel", "jig"))  # lacks the style played: "tune"
    for name, reason in (("bad.pt", "not a stage-agent model checkpoint"),
                         ("other.pt", "no style 'tune' in the model other.pt (its styles: reel, "
                                      "jig), which the piece names (model.styles[0])")):
        stage.command(checkpoint=name)
        failed = await stage.until_state(tmp_path / name, "failed")
        path = str((tmp_path / name).resolve())
        assert failed["checkpoint"] == path and failed["sha256"] == sha256(tmp_path / name)
        assert reason in failed["error"]
        [record] = [r for r in stage.model_records("reload-failed") if r["path"] == path]
        assert record["reason"] == failed["error"] and reason in record["reason"]
        assert stage.model() is old  # the old model answers on
        assert (await stage.ask())[2] == "model"
    assert not gone(old_pid) and old.alive() and stage.pids() == [old_pid]
    assert [r["what"] for r in stage.model_records("reload-started", "reloaded",
                                                   "reload-failed")] == \
        ["reload-started", "reload-failed"] * 2
    # The failed workers are gone: only the old one is left of this test's processes.
    await stage.until(lambda: children() <= before)


async def test_a_checkpoint_without_the_blend_played_now_is_refused_saying_so(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    """The piece names no style, but a command set one: the new model must have it too (a
    model without it would silently play another)."""
    stage: Stage = await stages()
    old = stage.model()
    stage.controls(styles={"chorale": 1.0})
    save_checkpoint(tmp_path / "c.pt", ("tune", "mine"))
    stage.command(checkpoint="c.pt")
    failed = await stage.until_state(tmp_path / "c.pt", "failed")
    assert failed["error"] == ("no style 'chorale' in the model c.pt (its styles: tune, mine), "
                               "which the blend played now names")
    assert stage.model() is old and (await stage.ask())[2] == "model"


async def test_a_worker_that_hangs_or_dies_while_loading_is_given_up(
        stages: Callable[..., Any], tmp_path: Path) -> None:
    stage: Stage = await stages(start_timeout_s=1.0)
    old = stage.model()
    shutil.copy(tmp_path / "a.pt", tmp_path / "copy.pt")
    for sig, reason in ((signal.SIGSTOP, "did not start within 1 s"),
                        (signal.SIGKILL, "loading the model failed: worker exited (code -9)")):
        known = children()
        stage.command(checkpoint="copy.pt")
        await stage.until(lambda known=known: bool(children() - known))
        [candidate] = children() - known  # the new worker, loading
        os.kill(candidate, sig)  # it hangs (and is killed after the timeout), or dies
        failed = await stage.until_state(tmp_path / "copy.pt", "failed")
        assert reason in failed["error"]
        await stage.until(partial(gone, candidate))
        assert stage.model() is old and (await stage.ask())[2] == "model"
    assert len(stage.pids()) == 1  # never respawned


async def test_a_run_without_a_model_refuses_a_reload(stages: Callable[..., Any]) -> None:
    stage: Stage = await stages(mode="harmony")  # the checkpoint is configured, never asked
    assert stage.session.model is None
    with pytest.raises(CommandError, match="runs no model"):
        stage.command(checkpoint="a.pt")
    del stage.session.actions["model-reload"]  # a replay registers no live actions
    with pytest.raises(CommandError, match="model-reload: not available in this run"):
        stage.command()


def test_the_model_state_goes_to_the_visuals_as_one_osc_message() -> None:
    ready = {"checkpoint": "/models/b.pt", "sha256": "ab12", "status": "ready"}
    failed = {"checkpoint": "/models/c.pt", "sha256": None, "status": "failed", "error": "bad"}
    assert [(m.address, m.params) for m in messages("model", ready) + messages("model", failed)] \
        == [("/stage-agent/model", ["/models/b.pt", "ab12", "ready", ""]),
            ("/stage-agent/model", ["/models/c.pt", "", "failed", "bad"])]


# -- stage-agent perform, reloaded over MQTT while it plays at JACK ports ---------------------

PIECE = model_piece("a.pt") + """styles = ["tune"]
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
agent = "keys-agent"
"""


class SynthPeer(Peer):
    """Keeps every message the synth port receives, to check what is left sounding."""

    def __init__(self, name: str, xruns: Callable[[], int]) -> None:
        super().__init__(name, f"{name}-keys", f"{name}-synth", xruns)
        self.got: list[list[int]] = []

    def _next(self, timeout: float) -> tuple[int, list[int]]:
        t, message = super()._next(timeout)
        self.got.append(message)
        return t, message

    def answer(self, pitches: list[int], notes: int, timeout: float = 10.0) -> list[int]:
        """Play a call; the pitches of the next `notes` agent note-ons."""
        for p in pitches:
            self.send(0x90, p, 80)
            time.sleep(0.08)
            self.send(0x80, p, 0)
        ons: list[int] = []
        deadline = time.monotonic() + timeout
        while len(ons) < notes:
            for _, m in self.expect(1, timeout=max(0.1, deadline - time.monotonic())):
                if midi.is_note_on(bytes(m)):
                    ons.append(m[1])
        return ons

    def sounding(self) -> set[tuple[int, int]]:
        keys: set[tuple[int, int]] = set()
        for m in self.got:
            data = bytes(m)
            if midi.is_note_on(data) or midi.is_note_off(data):
                (keys.add if midi.is_note_on(data) else keys.discard)((m[0] & 0x0F, m[1]))
        return keys


@pytest.fixture
def live(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[SynthPeer, Path, Broker]]:
    if MOSQUITTO is None:
        pytest.skip("needs mosquitto (scripts/setup.sh installs it)")
    name = "reload"
    peer = SynthPeer(name, jack_server.xruns)
    broker = Broker(tmp_path)
    broker.start()
    save_random_checkpoint(tmp_path / "a.pt", seed=0)
    save_with_style(tmp_path / "a.pt", tmp_path / "b.pt", "mine", MINE)  # a fine-tune's
    config = write_piece(tmp_path, PIECE, name, mqtt_port=broker.port)
    yield peer, config, broker
    broker.stop()
    peer.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def watchdog_pings(s: socket.socket, count: int) -> list[bytes]:
    """The next `count` notify datagrams after those already waiting."""
    s.setblocking(False)
    try:
        while True:
            s.recv(64)
    except BlockingIOError:
        pass
    s.settimeout(10.0)
    return [s.recv(64) for _ in range(count)]


@pytest.mark.jack
def test_perform_reloads_its_model_over_mqtt_and_plays_on(
        live: tuple[SynthPeer, Path, Broker], jack: dict[str, str], tmp_path: Path) -> None:
    """On stage: the piece plays the model's "tune" style (named alone, no weights); the
    model is reloaded to one fine-tuned with the musician's style "mine" besides, which is
    then played alone, then blended, over MQTT, without a restart, the notes coming on."""
    peer, config, broker = live
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    director = Director(broker.port, "stage/reload/keys-agent/")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    env = {**jack, "NOTIFY_SOCKET": notify.getsockname(), "WATCHDOG_USEC": "400000"}
    try:
        with running_agent(config, env, peer) as agent:
            assert director.wait_for("state/model") == {
                "checkpoint": str(a.resolve()), "sha256": sha256(a), "status": "ready"}
            director.wait_for("status", {"state": "online"})
            # A path outside the piece's folder: refused, and nothing published about it (the
            # next state/model below is b.pt's).
            assert director.ask("model-reload", "r0", checkpoint="../../../../etc/passwd") == {
                "reply": "evt/error", "id": "r0", "verb": "model-reload",
                "error": "model-reload: '../../../../etc/passwd' is outside the piece's folder "
                         "and the models folder (model.models_dir): refused"}
            assert len(peer.answer([60, 62, 64, 65], 4)) == 4
            peer.drain()
            assert director.ask("controls", "c0", styles={"mine": 1}) == {  # not yet: a.pt's
                "reply": "evt/error", "id": "c0", "verb": "controls",
                "error": "controls: styles ['mine'] are not in the model (it has chorale, tune)"}
            director.command("model-reload", id="r1", checkpoint="b.pt")
            director.wait_for("evt/ack", {"id": "r1", "verb": "model-reload"})
            identity = {"checkpoint": str(b.resolve()), "sha256": sha256(b)}
            assert director.wait_for("state/model") == {**identity, "status": "loading"}
            assert director.wait_for("state/model") == {**identity, "status": "ready"}
            recording = config.parent / agent.recording
            old_pid = next(r["pid"] for r in log_records(recording)
                           if r["k"] == "model" and r["what"] == "ready")
            wait_until(lambda: gone(old_pid))  # the old worker has stopped and been reaped
            director.command("controls", id="c1", styles={"mine": 1})  # the new model's
            director.wait_for("evt/ack", {"id": "c1", "verb": "controls"})
            # The watchdog's heartbeat follows the new worker (the old one has stopped).
            assert watchdog_pings(notify, 2) == [b"WATCHDOG=1"] * 2
            assert len(peer.answer([67, 65, 64, 62], 4)) == 4
            peer.drain()
            director.command("controls", id="c2", styles={"mine": 0.7, "tune": 0.3})  # a blend
            director.wait_for("evt/ack", {"id": "c2", "verb": "controls"})
            assert len(peer.answer([62, 64, 65, 67], 4)) == 4
            peer.drain()
            assert agent.wait() == 0, agent.err
        peer.drain(settle=0.2)
    finally:
        director.close()
        notify.close()
    assert peer.sounding() == set(), f"left sounding: {peer.sounding()}"
    header, records = read_log(recording / LOG_NAME)
    assert header["model"] == {"path": str(a.resolve()), "sha256": sha256(a)}
    reload_at = next(r["t"] for r in records if r["k"] == "ctl" and r["what"] == "model-reload")
    reloaded = [r for r in records if r["k"] == "model" and r["what"] == "reloaded"]
    assert [(r["path"], r["sha256"]) for r in reloaded] == [(str(b.resolve()), sha256(b))]
    assert reloaded[0]["t"] > reload_at
    answers = [r for r in records if r["k"] == "decision" and r["what"] == "answer"]
    assert len(answers) == 3 and answers[0]["t"] < reload_at < reloaded[0]["t"] < answers[1]["t"]
    assert [d["source"] for d in answers] == ["model"] * 3  # then: the new model's
    pids = [r["pid"] for r in records if r["k"] == "model" and r["what"] == "ready"]
    assert len(pids) == 2 and pids[0] == old_pid
    assert not [r for r in records if r["k"] == "model" and r["what"] in ("restart", "failed")]
    # What each worker said it plays with: the piece's "tune" (the old one at its start, the
    # new one taking over), then "mine" alone, then the blend, each after its command.
    styled = [(r["t"], r["weights"]) for r in records if r["k"] == "model"
              and r["what"] == "style"]
    assert [w for _, w in styled] == [{"tune": 1.0}, {"tune": 1.0}, {"mine": 1.0},
                                      {"mine": 0.7, "tune": 0.3}]
    commands = [r["t"] for r in records if r["k"] == "ctl" and r["what"] == "controls"]
    assert reload_at < styled[1][0] and commands[0] < styled[2][0] < answers[1]["t"] \
        < commands[1] < styled[3][0] < answers[2]["t"]
    # A replay of this log: the reload is not replayed; the recorded answers come in order.
    rec = load_recording(recording)
    replay_fast(rec, fit_config(rec, None), tmp_path / "replayed", "test")
    _, again = read_log(tmp_path / "replayed" / LOG_NAME)

    def said(rs: list[Record]) -> list[tuple[str, Any]]:
        return [(r["why"], r["notes"]) for r in rs if r["k"] == "model" and r["what"] == "answer"]
    assert said(again) == said(records) and len(said(records)) == 3
    assert not [r for r in again if r["k"] == "ctl" and r["what"] == "model-reload"]

    def emitted(rs: list[Record]) -> list[tuple[int | None, str]]:
        # The same messages at the same deadlines, but for the final panic's: it acts when the
        # run stops, which a replay knows only to the recorded stop's time.
        return [(None if r["why"] == "stop" else r["deadline"], r["data"])
                for r in rs if r["k"] == "emit"]
    assert emitted(again) == emitted(records)
