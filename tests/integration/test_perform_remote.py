"""`stage-agent perform` with its control plane on real parts: commands from a director over a
real mosquitto broker change what the agent plays at a real JACK port, its state is retained on
the broker and streamed to liblo's `oscdump`, and every command is in the recording."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .broker import Broker, free_port, needs_mosquitto
from .director import Director
from .jackpeer import FIFTH_UP, Peer, running_agent, write_piece

pytestmark = [
    pytest.mark.jack,
    needs_mosquitto,
    pytest.mark.skipif(shutil.which("oscdump") is None,
                       reason="needs oscdump (liblo-tools; scripts/setup.sh installs it)"),
]

PIECE = FIFTH_UP + """[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
agent = "keys-agent"
[osc]
visuals = ["127.0.0.1:{osc_port}"]
"""


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, Broker, Any]]:
    name = "remote"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    broker = Broker(tmp_path)
    broker.start()
    osc_port = free_port()
    dump = subprocess.Popen(["oscdump", "-L", str(osc_port)], stdout=subprocess.PIPE, text=True)
    config = write_piece(tmp_path, PIECE, name, mqtt_port=broker.port, osc_port=osc_port)
    yield peer, config, broker, dump
    dump.kill()
    dump.wait()
    broker.stop()
    peer.close()


def test_commands_over_mqtt_change_the_playing_and_the_state_is_published(
        stage: tuple[Peer, Path, Broker, Any], jack: dict[str, str]) -> None:
    peer, config, broker, dump = stage
    director = Director(broker.port, "stage/remote/keys-agent/")
    try:
        with running_agent(config, jack, peer) as agent:
            # On connecting, the agent publishes its state first, then says it is online.
            assert director.wait_for("state/mode") == {"mode": "harmony", "section": None}
            director.wait_for("status", {"state": "online"})
            peer.send(0x90, 60, 90)  # harmony: a fifth above, at once
            assert peer.expect(1)[0][1] == [0x91, 67, 90]
            director.command("mute", id="m1")
            director.wait_for("evt/ack", {"id": "m1", "verb": "mute"})
            released = peer.expect(1)[0][1]  # muting releases the sounding harmony note at once
            assert midi.is_note_off(bytes(released)) and released[:2] == [0x81, 67]
            peer.send(0x80, 60, 0)
            peer.send(0x90, 62, 90)  # muted: no harmony note for this one
            peer.send(0x80, 62, 0)
            director.command("controls", id="bad", density=99)
            error = director.wait_for("evt/error")
            assert error["id"] == "bad" and "density" in error["error"]
            director.command("unmute", id="u1")
            director.wait_for("evt/ack", {"id": "u1", "verb": "unmute"})
            peer.send(0x90, 64, 90)
            # The next message at the synth is the harmony of 64: nothing came for 62.
            ons = [m for _, m in peer.expect(1) if midi.is_note_on(bytes(m))]
            assert ons == [[0x91, 71, 90]]
            peer.send(0x80, 64, 0)
            telemetry = director.wait_for("telemetry/agent")  # once a second, QoS 0
            assert set(telemetry) == {"reaction_ms", "model_wait_ms", "lateness_ms",
                                      "loop_lag_ms", "emitted", "dropped", "fallbacks"}
            assert telemetry["dropped"] == {"input": 0, "output": 0, "shed": 0}
            director.command("mode", id="md", mode="call-response")
            assert director.wait_for("state/mode") == {"mode": "call-response", "section": None}
            assert agent.wait() == 0, agent.err
        try:
            director.wait_for("status", {"state": "offline"})
        except queue.Empty:
            raise AssertionError(f"no goodbye; the agent said: {agent.err}; the last "
                                 f"messages: {director.seen[-8:]}") from None
    finally:
        director.close()
    # The visuals heard the mode change too (oscdump prints every message it receives).
    dump.kill()
    lines = dump.communicate()[0].splitlines()
    assert any(line.split(" ", 1)[1] == '/stage-agent/mode ss "call-response" ""'
               for line in lines if " " in line), lines
    _header, records = read_log(config.parent / agent.recording / LOG_NAME)
    commands = [(r["what"]) for r in records if r["k"] == "ctl" and r["what"] in
                ("mute", "unmute", "mode", "controls")]
    assert commands == ["mute", "unmute", "mode"]  # the refused one changed nothing


def test_a_broker_outage_changes_nothing_musically(
        stage: tuple[Peer, Path, Broker, Any], jack: dict[str, str]) -> None:
    """The broker is killed mid-performance and comes back: the agent plays on meanwhile,
    reconnects by itself, says it is online again with its state, and takes commands."""
    peer, config, broker, _dump = stage
    director = Director(broker.port, "stage/remote/keys-agent/")
    try:
        with running_agent(config, jack, peer) as agent:
            director.wait_for("status", {"state": "online"})
            broker.stop(signal.SIGKILL)  # no goodbye from the broker either
            for pitch in (60, 62, 64, 65, 67):  # harmony a fifth up, at once, as before
                peer.send(0x90, pitch, 80)
                assert peer.expect(1)[0][1] == [0x91, pitch + 7, 80]
                peer.send(0x80, pitch, 0)
                assert midi.is_note_off(bytes(peer.expect(1)[0][1]))
            director.close()
            broker.start()  # same port, no persistence: the retained messages are gone
            director = Director(broker.port, "stage/remote/keys-agent/")
            assert director.wait_for("state/mode") == {"mode": "harmony", "section": None}
            director.wait_for("status", {"state": "online"})
            director.command("mode", id="after", mode="call-response")
            director.wait_for("evt/ack", {"id": "after", "verb": "mode"})
            assert agent.wait() == 0, agent.err
        assert "MQTT broker unreachable" in agent.err
    finally:
        director.close()
