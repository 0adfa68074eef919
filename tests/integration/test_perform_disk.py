"""`stage-agent perform` on real JACK ports, its recordings on a disk that fails (tests/disks.py):
full (a small tmpfs filled up), hung or slow (an LD_PRELOAD library holding up its writes), and
turned read-only by the kernel (ext4 errors=remount-ro). The music never waits on the disk, no
note is left sounding, the run stops with exit 0 and says what the recording lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME, MIDI_NAME
from tests.disks import failing_ext4, fill, make_read_only, slow_write_library, small_tmpfs
from tests.pipeline.test_bench_smoke import bench

from .broker import Broker, needs_mosquitto
from .director import Director
from .jackpeer import FIFTH_UP, Peer, agent_piece, on_stage, running_agent, short_name

pytestmark = pytest.mark.jack

# Every key held is answered by three harmony notes, no two alike over 40 keys: 120 sounding.
HELD = agent_piece("harmony") + """max_note_ms = 60000.0
[harmony]
intervals = [-40, 1, 42]
"""
KEYS = range(42, 82)
PANIC_TAIL = [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]
MQTT = """[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
agent = "agent"
"""
NO_SPACE = "[Errno 28] No space left on device"


@pytest.fixture
def stage_name(request: pytest.FixtureRequest) -> str:
    return short_name(request.node.name)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)


def hold_120(peer: Peer) -> list[list[int]]:
    """40 keys down and held: the agent's 120 harmony notes sound (their note-ons)."""
    for key in KEYS:
        peer.send(0x90, key, 80)
    ons = [m for _, m in peer.expect(120)]
    assert all(midi.is_note_on(bytes(m)) for m in ons)
    assert len({m[1] for m in ons}) == 120
    return ons


def test_a_full_disk_at_the_stop_releases_all_120_notes_and_exits_0(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path, stage_name: str) -> None:
    with small_tmpfs(tmp_path / "recordings", 512) as disk, \
            on_stage(stage_name, jack_server.xruns, tmp_path, HELD) as (peer, config), \
            running_agent(config, jack, peer) as agent:
        ons = hold_120(peer)
        log_file = Path(agent.recording) / LOG_NAME
        # The start's reset (3 messages) and the 120 notes.
        wait_until(lambda: log_file.read_text().count('"k":"emit"') == 123, "the notes on disk")
        fill(disk)  # the stop's records, and its panic's, find no room
        agent.signal(signal.SIGTERM)
        got = [m for _, m in peer.expect(123)]
        assert agent.wait() == 0, agent.err
        _header, records = read_log(log_file)  # whole lines: never a torn one
        midi_written = (Path(agent.recording) / MIDI_NAME).exists()
    assert sorted(m[1] for m in got[:120]) == sorted(m[1] for m in ons)
    assert all(midi.is_note_off(bytes(m)) for m in got[:120])
    assert got[120:] == PANIC_TAIL
    assert "Traceback" not in agent.err, agent.err
    assert "the recording in" in agent.err and "is incomplete" in agent.err
    assert "RECORDING INCOMPLETE: " in agent.out and f"({NO_SPACE})" in agent.out
    assert "notes played 120" in agent.out  # the summary, from what the log holds
    assert sum(r["k"] == "in" for r in records) == 40
    assert not midi_written
    assert f"performance.mid NOT written: cannot write {agent.recording}/{MIDI_NAME}: " \
           f"{NO_SPACE}" in agent.out


@needs_mosquitto
def test_a_start_on_a_full_disk_plays_without_a_recording_and_says_so(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path, stage_name: str) -> None:
    """As systemd's restart after the run above would: the disk still full."""
    broker = Broker(tmp_path)
    broker.start()
    director = Director(broker.port, f"stage/{stage_name}/agent/")
    try:
        with small_tmpfs(tmp_path / "recordings", 64) as disk, \
                on_stage(stage_name, jack_server.xruns, tmp_path, FIFTH_UP + MQTT,
                         mqtt_port=broker.port) as (peer, config):
            fill(disk)
            with running_agent(config, jack, peer) as agent:
                assert "; NOT RECORDING: cannot write " in agent.ready_line
                assert agent.ready_line.rstrip().endswith(NO_SPACE)
                state = director.wait_until("state/recording", lambda p: True)
                assert state["state"] == "off" and state["error"].endswith(NO_SPACE)
                peer.ask([0x90, 60, 90], [0x91, 67, 90])  # and it plays
                assert agent.wait() == 0, agent.err
    finally:
        director.client.loop_stop()
        director.client.disconnect()
        broker.stop()
    assert "Traceback" not in agent.err, agent.err
    assert "NOT RECORDING: cannot write" in agent.err  # stderr: the journal
    assert "NOT RECORDED: cannot write" in agent.out  # the summary at the stop


def test_a_hung_disk_does_not_hold_up_the_music_and_loses_nothing(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path, stage_name: str) -> None:
    """The recording's disk takes no write at all while 20 notes are answered (a USB stick
    hanging; the extreme of a slow one), then comes back: everything is in the log."""
    library = slow_write_library(tmp_path)
    gate = tmp_path / "disk-hangs"
    env = {**jack, "LD_PRELOAD": str(library), "SLOW_WRITE_DIR": str(tmp_path / "recordings"),
           "SLOW_WRITE_GATE": str(gate), "PYTHONDONTWRITEBYTECODE": "1"}
    with on_stage(stage_name, jack_server.xruns, tmp_path, FIFTH_UP) as (peer, config), \
            running_agent(config, env, peer) as agent:
        gate.touch()
        for pitch in range(50, 70):  # each answered at once, a fifth up
            peer.ask([0x90, pitch, 80], [0x91, pitch + 7, 80], timeout=5.0)
            peer.drain(settle=0.05)
        gate.unlink()
        assert agent.wait() == 0, agent.err
    records = read_log(Path(agent.recording) / LOG_NAME)[1]
    answered = {bytes.fromhex(r["data"])[1] for r in records
                if r["k"] == "emit" and midi.is_note_on(bytes.fromhex(r["data"]))}
    assert answered == set(range(57, 77))
    heard = {bytes.fromhex(r["data"])[1] for r in records
             if r["k"] == "in" and midi.is_note_on(bytes.fromhex(r["data"]))}
    assert heard == set(range(50, 70))
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["reset", "stop"]
    assert not any(r["k"] == "note" for r in records)  # nothing lost, nothing to say
    assert "RECORDING" not in agent.out and "Traceback" not in agent.err


def test_a_recording_disk_turned_read_only_before_the_stop(
        jack_server: JackServer, jack: dict[str, str], tmp_path: Path, stage_name: str) -> None:
    """The kernel remounts the disk read-only (an I/O error on a USB stick) mid-show: the stop
    releases the note, prints the summary, says what was not written, and exits 0."""
    with failing_ext4(tmp_path / "recordings", tmp_path / "disk.img") as disk, \
            on_stage(stage_name, jack_server.xruns, tmp_path, FIFTH_UP) as (peer, config), \
            running_agent(config, jack, peer) as agent:
        peer.send(0x90, 60, 90)
        assert [m for _, m in peer.expect(1)] == [[0x91, 67, 90]]
        # The start's reset (3 emits), then the answer.
        wait_until(lambda: (Path(agent.recording) / LOG_NAME).read_text().count('"k":"emit"')
                   == 4, "the answer on disk")
        make_read_only(disk)
        agent.signal(signal.SIGTERM)
        assert [m for _, m in peer.expect(4)] == [[0x81, 67, 0], *PANIC_TAIL]
        assert agent.wait() == 0, agent.err
    assert "Traceback" not in agent.err, agent.err
    read_only = "[Errno 30] Read-only file system"
    assert f"performance.mid NOT written: cannot write {agent.recording}/{MIDI_NAME}: " \
           f"{read_only}" in agent.out
    assert "notes heard  1" in agent.out  # the summary, from what the log holds
    assert "the recording in" in agent.err and read_only in agent.err


def test_bench_disk_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/disk.py, short, so that it cannot rot (its timing figures are its own to print)."""
    # 512 frames, as the other smoke runs: at 128 a loaded machine's xruns lose MIDI (a run
    # here heard 83 of the 40 keys' 120 notes, with 99 xruns).
    figures = bench("disk").main(["--seconds", "1", "--period", "512"])
    if len(figures) < 2:
        pytest.skip("bench/disk.py could not make its disks here (it says why)")
    full = figures["a full disk at SIGTERM, 120 notes sounding"]
    assert (full["sounding"], full["released"], full["tail"], full["exit"]) == (120, 120, True, 0)
    slow = figures["a slow disk (300 ms a write) against a normal one"]
    assert [run["notes"] for run in slow.values()] == [25, 25]
    assert "reaction" in capsys.readouterr().out
