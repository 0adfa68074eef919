"""`stage-agent perform` against real JACK MIDI ports: answers, shutdown, ports, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .jackpeer import FIFTH_UP, Peer, on_stage, running_agent, short_name


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[tuple[Peer, Path]]:
    with on_stage(short_name(request.node.name), jack_server.xruns, tmp_path, FIFTH_UP) as stage:
        yield stage


def records(recording: str, config: Path) -> list[dict]:  # type: ignore[type-arg]
    return read_log(config.parent / recording / LOG_NAME)[1]


def test_harmony_answers_each_note_at_once_on_a_real_port(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        peer.send(0x90, 60, 100)
        assert [m for _, m in peer.expect(1)] == [[0x91, 67, 100]]
        peer.send(0x80, 60, 0)
        assert [m for _, m in peer.expect(1)] == [[0x81, 67, 0]]
        assert agent.wait() == 0, agent.err
    assert "notes heard  1" in agent.out and "notes played 1" in agent.out
    assert [r["data"] for r in records(agent.recording, config) if r["k"] == "in"] == [
        "903c64", "803c00"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_releases_every_sounding_note_at_the_real_port(
        stage: tuple[Peer, Path], jack: dict[str, str], sig: signal.Signals) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        for pitch in (60, 64, 67):  # three held notes: the agent holds three harmony notes
            peer.send(0x90, pitch, 90)
        assert sorted(m[1] for _, m in peer.expect(3)) == [67, 71, 74]
        t_signal = time.monotonic_ns()
        agent.signal(sig)
        got = peer.expect(6)
        assert agent.wait() == 0, agent.err
    offs = got[:3]
    assert sorted(m[1] for _, m in offs) == [67, 71, 74]
    assert all(midi.is_note_off(bytes(m)) for _, m in offs)
    assert [m for _, m in got[3:]] == [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]
    # Timing is measured in bench/, but a note-off that takes seconds is a hang, not noise.
    assert all(t - t_signal < 2_000_000_000 for t, _ in offs)
    kinds = [r.get("what") for r in records(agent.recording, config) if r["k"] == "ctl"]
    assert kinds == ["reset", "stop"]


def test_missing_port_is_a_config_error_naming_the_key(
        jack: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "performance.toml"
    config.write_text(FIFTH_UP.format(name="missing", player="no-such-keyboard",
                                      synth="virtual:out"))
    result = subprocess.run([sys.executable, "-m", "agent.cli", "perform", str(config)],
                            env={**os.environ, **jack}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}: players[0].port: no MIDI input matches 'no-such-keyboard'" in result.stderr
    # Nothing recorded: the folder for the recordings holds only the piece's lock (taken first).
    assert [p.name for p in (tmp_path / "recordings").iterdir()] == ["missing.lock"]


def test_a_vanished_player_port_releases_their_notes_and_is_reopened(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        peer.send(0x90, 62, 80)
        assert [m for _, m in peer.expect(1)] == [[0x91, 69, 80]]
        peer.unplug()  # the player's port vanishes while a note is held
        assert [m for _, m in peer.expect(1)] == [[0x81, 69, 0]]  # released by the agent
        peer.replug()  # and comes back: answered again once reopened (poll is 100 ms here)
        peer.ask([0x90, 65, 70], [0x91, 72, 70], timeout=5.0)
    ctl = [r["what"] for r in records(agent.recording, config) if r["k"] == "ctl"]
    assert ctl[:3] == ["reset", "port-lost", "port-back"]


def test_malformed_bytes_do_not_stop_the_listener(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    peer, config = stage
    with running_agent(config, jack, peer) as agent:
        for junk in ([0x90, 60], [0x45, 0x12], [0xF0, 1, 2, 3], [0xF4], [0xF7], [0x90],
                     [0xB0, 200, 300 % 256], [0xF2, 1]):
            peer.out.send_message(junk)
        peer.ask([0x90, 48, 64], [0x91, 55, 64])  # the listener survived and still answers
        assert agent.proc.poll() is None
        assert agent.wait() == 0
    notes = [r["text"] for r in records(agent.recording, config) if r["k"] == "note"]
    assert any(n.startswith("MIDI input malformed:") for n in notes)
    assert "MIDI input dropped: 0 on a full queue" in agent.out


def test_ports_lists_the_jack_ports(stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    _peer, _ = stage
    result = subprocess.run([sys.executable, "-m", "agent.cli", "ports"],
                            env={**os.environ, **jack}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "MIDI API: jack" in result.stdout
    inputs, outputs = result.stdout.split("outputs:")
    assert "-keys" in inputs and "-synth" in outputs


def test_realtime_replay_plays_the_agent_to_a_real_port(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """`replay --realtime`: a band part from a MIDI file, the agent's answer at a real port."""
    peer, config = stage
    part = mido.MidiFile(type=1)
    part.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="keys")]))
    for pitch in (60, 62, 64):
        part.tracks[0] += [mido.Message("note_on", note=pitch, velocity=70, time=0),
                           mido.Message("note_off", note=pitch, time=96)]
    part.save(config.parent / "part.mid")
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "replay", str(config.parent / "part.mid"),
         "--config", str(config), "--realtime", "--out", str(config.parent / "out")],
        env={**os.environ, **jack}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = [m for _, m in peer.expect(9)]
    assert got[:6] == [[0x91, 67, 70], [0x81, 67, 0], [0x91, 69, 70], [0x81, 69, 0],
                       [0x91, 71, 70], [0x81, 71, 0]]
    assert got[6:] == [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]  # the stop's panic
    assert "notes heard  3" in result.stdout



def test_a_stop_signal_ends_a_realtime_replay_through_the_panic(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    """`replay --realtime` stopped by SIGHUP (its terminal closed) while the agent holds a
    harmony note: the note is released, the CC tail goes out, it exits 0 and its recording is
    written (before, the default action killed it with the note sounding)."""
    peer, config = stage
    part = mido.MidiFile(type=1)  # one note held for 20 s
    part.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="keys"),
                                       mido.Message("note_on", note=60, velocity=70, time=0),
                                       mido.Message("note_off", note=60, time=480 * 40)]))
    part.save(config.parent / "part.mid")
    replay = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "replay", str(config.parent / "part.mid"),
         "--config", str(config), "--realtime", "--out", str(config.parent / "out")],
        env={**os.environ, **jack}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert [m for _, m in peer.expect(1, timeout=20)] == [[0x91, 67, 70]]
        replay.send_signal(signal.SIGHUP)
        out, err = replay.communicate(timeout=30)
    finally:
        if replay.poll() is None:
            replay.kill()
    assert replay.returncode == 0, err
    assert [m for _, m in peer.expect(4)] == [[0x81, 67, 0], [0xB1, 64, 0], [0xB1, 123, 0],
                                               [0xB1, 120, 0]]
    assert "SIGHUP: stopping" in err and "notes heard  1" in out
    assert (config.parent / "out" / "performance.mid").is_file()

def test_midi_clock_is_followed_and_stop_silences_the_agent(
        stage: tuple[Peer, Path], jack: dict[str, str]) -> None:
    peer, config = stage
    config.write_text(config.read_text().replace('port = "', 'follow_clock = true\nport = "'))
    with running_agent(config, jack, peer) as agent:
        peer.send(0xFA)  # Start
        tick_ns = 60_000_000_000 // 120 // 24  # 120 BPM
        t0 = time.monotonic_ns()
        for i in range(1, 2 * 96 + 1):  # two bars of clock, paced on absolute deadlines
            time.sleep(max(0.0, (t0 + i * tick_ns - time.monotonic_ns()) / 1e9))
            peer.send(0xF8)
        peer.ask([0x90, 60, 90], [0x91, 67, 90])
        peer.send(0x90, 62, 90)  # held when the clock stops
        peer.wait_for([0x91, 69, 90])
        peer.send(0xFC)  # Stop: the agent's notes are released
        assert peer.wait_for([0x81, 69, 0])[-1] == [0x81, 69, 0]
        assert agent.wait() == 0, agent.err
    log = records(agent.recording, config)
    ctl = [r["what"] for r in log if r["k"] == "ctl"]
    assert ctl[:3] == ["reset", "clock-start", "clock-stop"]
    tempos = [r["bpm"] for r in log if r["k"] == "tempo"]
    # The estimate, not its timing: JACK delivers clock a period at a time (±5 ms here).
    assert tempos and abs(tempos[-1] - 120) < 1.0
