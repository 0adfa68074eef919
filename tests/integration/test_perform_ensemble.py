"""Two `stage-agent perform` processes in one piece, meeting on a real mosquitto broker and
listening to the same player on a real JACK port: they see each other come and go, take turns
answering the player, and the one left takes every turn when the other dies."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .broker import MOSQUITTO, Broker
from .director import Director
from .jackpeer import Peer, RunningAgent, running_agent

pytestmark = [
    pytest.mark.jack,
    pytest.mark.skipif(MOSQUITTO is None or shutil.which("mosquitto") is None,
                       reason="needs mosquitto (scripts/setup.sh installs it)"),
]

PIECE = """
[performance]
name = "ens"
seed = 5
[midi]
poll_ports_ms = 100
client_name = "stage-agent-{me}"
[[players]]
name = "piano"
port = "ens-piano"
[agent]
mode = "call-response"
outputs = ["ens-synth-{me}"]
channel = 3
[respond]
phrase_gap_ms = 300.0
phrase_gap_beats = 0.0
beat_lock = 0.0
[mqtt]
host = "127.0.0.1"
port = {port}
agent = "{me}"
[ensemble]
members = ["keys", "bass"]
tempo_leader = "keys"
"""
TIMEOUT = 10.0
CALL = [60, 62, 64, 65, 67]


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Peer, Broker]]:
    keys = Peer("ens-k", "ens-piano", "ens-synth-keys", jack_server.xruns)  # the player too
    bass = Peer("ens-b", "ens-unused", "ens-synth-bass", jack_server.xruns)
    broker = Broker(tmp_path)
    broker.start()
    for me in ("keys", "bass"):
        (tmp_path / me).mkdir()
        (tmp_path / me / "performance.toml").write_text(PIECE.format(me=me, port=broker.port))
    yield keys, bass, broker
    broker.stop()
    keys.close()
    bass.close()


def play(player: Peer, pitches: list[int]) -> None:
    for p in pitches:
        player.send(0x90, p, 80)
        time.sleep(0.12)  # a player's pace (the answers are awaited, never slept for)
        player.send(0x80, p, 0)
        time.sleep(0.03)


def note_ons(messages: list[tuple[int, list[int]]]) -> list[int]:
    return [m[1] for _, m in messages if midi.is_note_on(bytes(m))]


def answered(synth: Peer) -> list[int]:
    """The pitches of an answer: its first note within TIMEOUT, then all until it is quiet."""
    first = synth.expect(1, timeout=TIMEOUT)
    return note_ons(first + synth.drain(settle=0.6))


def test_two_agents_take_turns_and_the_survivor_takes_every_turn(
        stage: tuple[Peer, Peer, Broker], tmp_path: Path, jack: dict[str, str]) -> None:
    keys_port, bass_port, broker = stage
    watcher = Director(broker.port, "stage/ens/")  # a dashboard
    try:
        with running_agent(tmp_path / "keys" / "performance.toml", jack, keys_port) as keys, \
                running_agent(tmp_path / "bass" / "performance.toml", jack, bass_port) as bass:
            for me in ("keys", "bass"):
                watcher.wait_until(f"{me}/status", lambda p: p == {"state": "online"})
            play(keys_port, CALL)  # first call: keys's turn (first in members order)
            assert answered(keys_port)
            assert bass_port.drain(settle=0.3) == []
            watcher.wait_until("keys/state/ensemble", lambda p: p["role"] == "rest")

            play(keys_port, CALL)  # second call: bass's turn
            assert answered(bass_port)
            assert keys_port.drain(settle=0.3) == []
            watcher.wait_until("bass/state/ensemble", lambda p: p["role"] == "rest")

            keys.proc.send_signal(signal.SIGKILL)  # keys dies: its Will says "lost"
            keys.proc.wait()
            watcher.wait_until("keys/status", lambda p: p == {"state": "lost"})
            play(keys_port, CALL)  # keys's turn, but keys is gone: bass answers
            assert answered(bass_port)
            assert bass.wait() == 0, bass.err
            assert "ensemble: keys is lost" in bass.err
    finally:
        watcher.close()
    records = read_log(tmp_path / "bass" / bass.recording / LOG_NAME)[1]
    peers = [(r["agent"], r.get("status"), r.get("role")) for r in records
             if r["k"] == "ctl" and r["what"] == "peer"]
    assert ("keys", "online", None) in peers and ("keys", "lost", None) in peers
    assert ("keys", None, "lead") in peers
    waits = [r["why"] for r in records if r["k"] == "decision" and r["what"] == "wait"]
    assert waits[0] == "keys's turn"
    answers = [r for r in records if r["k"] == "decision" and r["what"] == "answer"]
    assert len(answers) == 2
    # nothing left sounding at bass's synth: every note-on it sent has its note-off
    sent = [bytes.fromhex(r["data"]) for r in records if r["k"] == "emit"]
    held: set[int] = set()
    for data in sent:
        if midi.is_note_on(data):
            held.add(data[1])
        elif midi.is_note_off(data):
            held.discard(data[1])
    assert held == set()


def test_keys_alone_before_bass_arrives(
        stage: tuple[Peer, Peer, Broker], tmp_path: Path, jack: dict[str, str]) -> None:
    """A member that has not come yet takes no turn: keys answers every call on its own."""
    keys_port, _bass_port, broker = stage
    watcher = Director(broker.port, "stage/ens/")  # a dashboard
    try:
        agent: RunningAgent
        with running_agent(tmp_path / "keys" / "performance.toml", jack, keys_port) as agent:
            watcher.wait_until("keys/status", lambda p: p == {"state": "online"})
            for _ in range(2):
                play(keys_port, CALL)
                assert answered(keys_port)
                watcher.wait_until("keys/state/ensemble", lambda p: p["role"] == "rest")
            assert agent.wait() == 0, agent.err
    finally:
        watcher.close()
    records = read_log(tmp_path / "keys" / agent.recording / LOG_NAME)[1]
    assert [r for r in records if r["k"] == "decision" and r["what"] == "wait"] == []
