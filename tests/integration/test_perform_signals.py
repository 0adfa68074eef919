"""The ways a live run ends, or nearly does, on real parts: `stage-agent perform` as a process on
real JACK ports, stopped by real signals (from a real terminal where a terminal sends them),
killed outright and started again, its stdout taken away, and started twice."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mido
import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME, MIDI_NAME
from tests.model_fixtures import save_random_checkpoint

from .broker import free_port
from .jackpeer import (
    FIFTH_UP,
    RESET_CONTROLS,
    Peer,
    model_piece,
    on_stage,
    running_agent,
    short_name,
)

pytestmark = pytest.mark.jack

HELD = [48, 50, 52, 53, 55, 57, 59, 60]  # keys held: the agent sounds their fifths (channel 2)
CC_TAIL = [[0xB1, *c] for c in RESET_CONTROLS]  # the panic's tail, after the note-offs
PERFORM = [sys.executable, "-m", "agent.cli", "perform"]


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[tuple[Peer, Path]]:
    with on_stage(short_name(request.node.name), jack_server.xruns, tmp_path, FIFTH_UP) as stage:
        yield stage


def hold_keys(peer: Peer) -> None:
    """Hold HELD until the agent's fifths all sound at the synth port. (A key JACK delivers to
    the agent twice, in a cycle missed on a loaded machine, is struck again: its fifth released
    first, then sounding again, as the ledger does it.)"""
    for pitch in HELD:
        peer.send(0x90, pitch, 90)
    sounding: set[int] = set()
    while sounding != {p + 7 for p in HELD}:
        ((_, message),) = peer.expect(1, timeout=10)
        assert message[0] & 0x0F == 1 and message[0] & 0xE0 == 0x80, message  # notes, ch. 2
        (sounding.add if midi.is_note_on(bytes(message)) else sounding.discard)(message[1])


def check_released(got: list[list[int]]) -> None:
    """Exactly one note-off for every fifth that sounded, then the CC tail, and nothing else."""
    assert sorted(got[:-3]) == [[0x81, p + 7, 0] for p in HELD], got
    assert got[-3:] == CC_TAIL, got


def check_recording(folder: Path) -> None:
    """The log ends with the stop and its panic; performance.mid holds the agent's notes, all
    of them ended."""
    records = read_log(folder / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]
    stop = next(i for i, r in enumerate(records) if r["k"] == "ctl" and r["what"] == "stop")
    panic = [r for r in records[stop + 1:] if r["k"] == "emit"]
    assert {r["why"] for r in panic} == {"stop"} and len(panic) == len(HELD) + 3
    assert [bytes.fromhex(r["data"]) for r in panic[-3:]] == [bytes(m) for m in CC_TAIL]
    agent_track = mido.MidiFile(folder / MIDI_NAME).tracks[-1]
    ons = sorted(m.note for m in agent_track if m.type == "note_on" and m.velocity)
    assert set(ons) == {p + 7 for p in HELD}  # (one struck again after a JACK re-delivery)
    offs = [m.note for m in agent_track
            if m.type == "note_off" or (m.type == "note_on" and not m.velocity)]
    assert sorted(offs) == ons


# -- a terminal -------------------------------------------------------------------------------

class Terminal:
    """The agent started from a real terminal (a pty that is its controlling terminal, as an SSH
    session's is): typing ^C or ^\\ signals it, closing the terminal hangs it up (SIGHUP)."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        # setsid -c: a session of its own with the pty as its controlling terminal; the agent
        # is the session's leader (setsid execs it, same pid).
        self.proc = subprocess.Popen(["setsid", "-c", *PERFORM, str(config)], stdin=slave,
                                     stdout=slave, stderr=subprocess.PIPE,
                                     env={**os.environ, **env}, text=True)
        os.close(slave)
        self.screen = b""
        line = self.read_line()
        assert line.startswith("stage-agent: performing"), line
        self.recording = Path(config.parent / line.rsplit("recording to ", 1)[1].strip())

    def read_line(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.screen:
            ready, _, _ = select.select([self.master], [], [],
                                        max(0.0, deadline - time.monotonic()))
            assert ready, f"nothing on the terminal; it shows {self.screen!r}"
            try:
                self.screen += os.read(self.master, 4096)
            except OSError:  # EIO: the agent has gone, and its end of the terminal with it
                break
        line, _, self.screen = self.screen.partition(b"\n")
        return line.decode(errors="replace").strip()

    def type(self, key: bytes) -> None:
        os.write(self.master, key)

    def rest(self) -> str:
        """Everything it showed until the agent's end of the terminal closed."""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: nobody has the terminal open any more
                break
            if not chunk:
                break
            self.screen += chunk
        return self.screen.decode(errors="replace")

    def hang_up(self) -> None:
        """The terminal window or SSH session closes."""
        os.close(self.master)
        self.master = -1

    def wait(self) -> tuple[int, str, str]:
        """Its exit status, what it said on stderr, and what the terminal showed meanwhile."""
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err, self.rest() if self.master >= 0 else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if self.master >= 0:
            os.close(self.master)


@contextmanager
def on_a_terminal(config: Path, env: dict[str, str], synth: Peer,
                  loads_model: bool = False) -> Iterator[Terminal]:
    terminal = Terminal(config, env)
    try:
        if loads_model:
            synth.take_reset_unless_lost()
        else:
            synth.take_reset()
        yield terminal
    finally:
        terminal.close()


@pytest.mark.parametrize("how", ["hang-up", "ctrl-backslash", "ctrl-c"])
def test_a_terminal_ending_the_run_releases_every_note_and_writes_the_recording(
        stage: tuple[Peer, Path], jack: dict[str, str], how: str) -> None:
    """Closing the terminal or SSH session (SIGHUP), Ctrl-\\ (SIGQUIT) and Ctrl-C (SIGINT) while
    the agent sounds eight notes: every one released, the CC tail, the recording written, exit
    0. After a hang-up the terminal is gone, so the summary cannot be shown: it goes to stderr."""
    peer, config = stage
    with on_a_terminal(config, jack, peer) as terminal:
        hold_keys(peer)
        if how == "hang-up":
            terminal.hang_up()
        else:
            terminal.type(b"\x1c" if how == "ctrl-backslash" else b"\x03")
        got = [m for _, m in peer.expect(len(HELD) + 3, timeout=10)]
        code, err, screen = terminal.wait()
        assert peer.drain(settle=0.3) == []
    check_released(got)
    assert code == 0, err
    assert "Traceback" not in err, err
    sig = {"hang-up": "SIGHUP", "ctrl-backslash": "SIGQUIT", "ctrl-c": "SIGINT"}[how]
    assert f"{sig}: stopping" in err, err
    if how == "hang-up":  # the summary had nowhere else to go
        assert "stdout is gone" in err and "notes played 8" in err, err
    else:
        assert "notes played 8" in screen, screen
    check_recording(terminal.recording)

def test_ctrl_c_at_the_terminal_leaves_the_model_worker_to_the_agent(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C at the terminal signals the whole foreground process group, the model's worker
    process too: the worker leaves its end to the agent (which stops it after the panic), so
    nothing dies, is restarted or prints a traceback in the middle of the stop."""
    save_random_checkpoint(tmp_path / "m.pt", seed=0)
    stage = on_stage("ctrlcmodel", jack_server.xruns, tmp_path, model_piece("m.pt"))
    with stage as (peer, config), \
            on_a_terminal(config, jack, peer, loads_model=True) as terminal:
        for pitch in (60, 62, 64):  # a call; its answer (the model's) arrives
            peer.send(0x90, pitch, 80)
            peer.send(0x80, pitch, 0)
        while not midi.is_note_on(bytes(peer.expect(1, timeout=15)[0][1])):
            pass
        terminal.type(b"\x03")  # while the answer plays
        code, err, screen = terminal.wait()
    assert code == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "notes heard  3" in screen and "model m.pt:" in screen, screen
    records = read_log(terminal.recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "model"
            and r["what"] in ("restart", "failed")] == []


def test_a_second_sigterm_while_stopping_cuts_the_drain_never_the_panic(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """SIGTERM, and SIGTERM again as soon as the first note-off is heard (the stop is under way,
    its ports draining): the run still ends through the panic, writes its recording, exits 0."""
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        hold_keys(peer)
        agent.signal(signal.SIGTERM)
        first = peer.expect(1, timeout=10)
        agent.signal(signal.SIGTERM)
        got = [m for _, m in first + peer.expect(len(HELD) + 2, timeout=10)]
        assert agent.wait() == 0, agent.err
    check_released(got)
    assert "SIGTERM: stopping" in agent.err and "SIGTERM again" in agent.err, agent.err
    assert "notes played 8" in agent.out
    check_recording(Path(config.parent / agent.recording))


def test_a_stop_signal_during_the_start_up_ends_it_at_once(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path) -> None:
    """SIGTERM while the start-up waits (here for an MQTT broker that is not there, up to a
    minute; a model loading waits likewise): the run stops then, through the panic, with its
    recording written and exit 0, long before the wait would have ended."""
    piece = FIFTH_UP + f"""[mqtt]
host = "127.0.0.1"
port = {free_port()}
agent = "keys-agent"
[service]
online_wait_s = 60.0
"""
    with on_stage("startupstop", jack_server.xruns, tmp_path, piece) as (peer, config):
        proc = subprocess.Popen([*PERFORM, str(config)], env={**os.environ, **jack},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            peer.take_reset()  # the session has begun: the start-up waits for the broker now
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)  # half the wait
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping" in err, err
    (recording,) = [p for p in (config.parent / "recordings").iterdir() if p.is_dir()]
    records = read_log(recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]
    assert (recording / MIDI_NAME).is_file() and "written to" in out


def test_a_restart_after_a_crash_first_silences_what_the_dead_run_left_sounding(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """SIGKILL (as the OOM killer or systemd's watchdog abort) while eight notes sound: nothing
    releases them. The next run's first messages, before it answers anything, are sustain off,
    all notes off and all sound off on its channel. (The piece's lock went with the dead
    process: the restart is not refused.)"""
    peer, config = stage
    with running_agent(config, jack, peer) as dead:
        hold_keys(peer)
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait()
        assert peer.drain(settle=0.3) == []  # nothing released them: they hang
        for pitch in HELD:
            peer.send(0x80, pitch, 0)
    with running_agent(config, jack) as restarted:
        assert [m for _, m in peer.expect(3)] == CC_TAIL  # before anything else
        peer.ask([0x90, 62, 70], [0x91, 69, 70])
        assert restarted.wait() == 0, restarted.err
    records = read_log(config.parent / restarted.recording / LOG_NAME)[1]
    assert records[0]["k"] == "ctl" and records[0]["what"] == "reset"
    resets = [r for r in records if r["k"] == "emit" and r["why"] == "reset"]
    assert [bytes.fromhex(r["data"]) for r in resets] == [bytes(m) for m in CC_TAIL]
    assert records.index(resets[-1]) < min(i for i, r in enumerate(records) if r["k"] == "in")


# -- stdout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("gone", ["stdout", "stdout and stderr"])
def test_a_closed_stdout_never_stops_the_run(stage: tuple[Peer, Path], jack: dict[str, str],
                                            tmp_path: Path, gone: str) -> None:
    """`stage-agent perform piece.toml | true` (or `|& true`, or a restarted journald: stderr
    gone too): the reader is gone before the agent prints a line. It plays on (READY, from
    systemd's notify protocol, says when it has started), answers, stops on SIGTERM with exit 0
    and writes its recording; what it would have printed is on stderr while there is one."""
    peer, config = stage
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30.0)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| true`: the reader has gone
    stderr = write_end if gone == "stdout and stderr" else subprocess.PIPE
    proc = subprocess.Popen([*PERFORM, str(config)], stdout=write_end, stderr=stderr,
                            env={**os.environ, **jack, "NOTIFY_SOCKET": str(tmp_path /
                                                                            "notify.sock")},
                            text=True)
    os.close(write_end)
    try:
        assert notify.recv(512).startswith(b"READY=1")
        assert peer.take_reset() == 1
        for pitch in (60, 62, 64):
            peer.ask([0x90, pitch, 70], [0x91, pitch + 7, 70])
        assert proc.poll() is None, "the agent stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    if gone == "stdout":
        assert "stdout is gone" in err and "stage-agent: performing" in err, err
        assert "notes played 3" in err, err
        assert "Traceback" not in err, err
    (recording,) = [p for p in (config.parent / "recordings").iterdir() if p.is_dir()]
    records = read_log(recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]
    assert (recording / MIDI_NAME).is_file()


# -- one instance per piece ---------------------------------------------------------------------

def test_a_second_perform_of_the_same_piece_is_refused_naming_the_first(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """Two `perform` of one piece would both answer every note: the second exits 2, naming the
    process that performs it, having sent nothing (the first plays on alone, undoubled)."""
    peer, config = stage
    with running_agent(config, jack, peer) as first:
        second = subprocess.run([*PERFORM, str(config)], env={**os.environ, **jack},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        name = tomllib.loads(config.read_text())["performance"]["name"]
        lock = config.parent / "recordings" / f"{name}.lock"
        assert second.stderr == (
            f"stage-agent: error: {config}: {name!r} is already being performed "
            f"by process {first.proc.pid} (it holds {lock}); stop that one first, or give this "
            f"one another [performance] name or [record] dir\n")
        assert second.stdout == ""
        peer.send(0x90, 60, 90)
        peer.send(0x80, 60, 0)
        assert [m for _, m in peer.expect(2)] == [[0x91, 67, 90], [0x81, 67, 0]]
        assert first.wait() == 0, first.err
    assert [m for _, m in peer.expect(3)] == CC_TAIL  # the first one's stop
    assert peer.drain(settle=0.3) == []  # nothing doubled, no second reset
    assert len([p for p in (config.parent / "recordings").iterdir() if p.is_dir()]) == 1
