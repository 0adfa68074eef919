"""The agent's output patched into its own input on real JACK ports (jack_connect): the feedback
guard trips, the runaway stops, the agent says so and leaves nothing sounding, and answers the
player again once the patch is fixed."""

from __future__ import annotations

import http.client
import json
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .broker import free_port
from .jackpeer import Peer, RunningAgent, agent_piece, running_agent, write_piece
from .test_faults import live_records, unpaired
from .test_input_flood import peer, reaped, sounding_at_the_end, wait_until

pytestmark = pytest.mark.jack
__all__ = ["peer"]  # the fixture, shared with the flood tests


# Three harmony notes a note, some of them a fifth or a fourth apart: a loop fans out and comes
# round to the same pitches, for ever (today: 17,000 messages/s).
FAN_OUT = agent_piece("harmony") + """[harmony]
intervals = [-5, 4, 9]
[monitor]
listen = "127.0.0.1:{monitor_port}"
"""


def monitor_state(port: int, kind: str) -> Any:
    """The latest state of `kind` the live monitor holds (a page opening now gets it first)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        while True:
            line = response.readline().decode()
            assert line, f"the monitor's stream ended without a {kind!r} state"
            if line.strip() == f"event: {kind}":
                return json.loads(response.readline().decode().removeprefix("data: "))
    finally:
        connection.close()


def agent_ports(peer: Peer, server: str) -> tuple[str, str]:
    """The agent's JACK output port (connected to the peer's synth port) and its input port
    (connected from the peer's player port)."""
    import jack  # JACK-Client, a dev dependency (bench/listener.py)

    client = jack.Client("probe", no_start_server=True, servername=server)
    try:
        synth = client.get_ports(f"{peer.name}-synth:.*", is_midi=True)[0]
        player = client.get_ports(f"{peer.name}-player:.*", is_midi=True)[0]
        out = client.get_all_connections(synth)[0].name
        into = client.get_all_connections(player)[0].name
    finally:
        client.close()
    return out, into


def ctl_whats(config: Path, agent: RunningAgent) -> list[str]:
    return [r["what"] for r in live_records(config, agent) if r["k"] == "ctl"]


def quiet_within(peer: Peer, settle: float, timeout: float) -> list[tuple[int, bytes]]:
    """What arrives at the synth until nothing has for `settle` s; fails after `timeout` s."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            t, m = peer.received.get(timeout=settle)
        except queue.Empty:
            return got
        got.append((t, bytes(m)))
        if time.monotonic() > deadline:
            raise AssertionError(f"still playing after {timeout} s: {len(got)} messages, the "
                                 f"last {[d.hex() for _, d in got[-6:]]}")


def test_the_agent_patched_into_itself_stops_answering_says_so_and_leaves_nothing_sounding(
        peer: Peer, tmp_path: Path, jack: dict[str, str], jack_server: JackServer) -> None:
    monitor_port = free_port()
    config = write_piece(tmp_path, FAN_OUT, peer.name, monitor_port=monitor_port)
    xruns = jack_server.xruns()
    with running_agent(config, jack, peer) as agent, reaped(agent):
        out, into = agent_ports(peer, jack["JACK_DEFAULT_SERVER"])
        subprocess.run(["jack_connect", out, into], check=True)
        try:
            peer.send(0x90, 60, 90)  # one note, held: the loop runs away from it
            wait_until(lambda: "port-feedback" in ctl_whats(config, agent), 10,
                       "the guard tripping")
            got = quiet_within(peer, settle=0.5, timeout=10)
            assert monitor_state(monitor_port, "feedback") == {"players": ["keys"]}
        finally:
            subprocess.run(["jack_disconnect", out, into], check=True)
        peer.send(0x80, 60, 0)  # heard, not answered
        wait_until(lambda: "port-feedback-over" in ctl_whats(config, agent), 10,
                   "the player answered again")
        peer.send(0x90, 62, 80)  # the patch fixed: answered as before, once
        peer.send(0x80, 62, 0)
        again = peer.drain(settle=0.5)
        assert agent.wait() == 0, agent.err[-3000:]
    assert "the agent hears itself" in agent.err and "Not answering keys" in agent.err
    assert "Traceback" not in agent.err, agent.err[-3000:]
    records = read_log(config.parent / agent.recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl"] == [
        "reset", "port-feedback", "port-feedback-over", "stop"]
    assert [r["players"] for r in records if r["k"] == "state" and r["what"] == "feedback"] == [
        ["keys"], []]
    assert unpaired([bytes.fromhex(r["data"]) for r in records if r["k"] == "emit"]) == []
    played = [d for _, d in got]
    if jack_server.xruns() == xruns:  # a missed JACK cycle can lose a note-off on the way
        assert sounding_at_the_end(played) == set(), "the loop's notes left sounding"
    assert [bytes(m) for _, m in again] == [bytes((0x91, p, 80)) for p in (57, 66, 71)] + [
        bytes((0x81, p, 0)) for p in (57, 66, 71)]
    # A replay makes the same decisions (the guard's, from its recorded controls).
    strict = subprocess.run([sys.executable, "-m", "agent.cli", "replay",
                             str(config.parent / agent.recording), "--strict", "--out",
                             str(tmp_path / "strict")], capture_output=True, text=True)
    assert strict.returncode == 0, strict.stdout + strict.stderr
