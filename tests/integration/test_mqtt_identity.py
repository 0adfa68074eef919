"""Who may speak for an agent on the broker, and when a command is too old or too new: real
`stage-agent perform` processes on real JACK ports, a real mosquitto with the SHIPPED config and
ACL (systemd/mosquitto-stage.*), a director and a read-only monitor as real MQTT clients."""

from __future__ import annotations

import contextlib
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent import midi
from agent.io.jack_server import JackServer
from agent.record.log import read_log
from agent.record.session import LOG_NAME

from .broker import MOSQUITTO_PASSWD, SHIPPED_ACL, Broker, free_port, needs_mosquitto
from .director import TIMEOUT_S, Director
from .jackpeer import FIFTH_UP, Peer, running_agent
from .test_input_feedback import monitor_state

pytestmark = [
    pytest.mark.jack,
    needs_mosquitto,
    pytest.mark.skipif(MOSQUITTO_PASSWD is None or shutil.which("mosquitto") is None,
                       reason="needs mosquitto_passwd (scripts/setup.sh installs mosquitto)"),
]

AGENT = "keys-agent"
USERS = {AGENT: "a-pass", "director": "d-pass", "monitor": "m-pass"}
PIECE = FIFTH_UP + f"""[mqtt]
host = "127.0.0.1"
port = {{mqtt_port}}
agent = "{AGENT}"
username = "{AGENT}"
password = "{USERS[AGENT]}"
"""
DESK = {"username": "director", "password": USERS["director"]}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path, users=USERS, acl=SHIPPED_ACL, shipped=True)
    b.start()
    yield b
    b.stop()


def piece(folder: Path, performance: str, ports: str, broker: Broker,
          monitor_port: int | None = None) -> Path:
    """A performance.toml in `folder`: the agent on the JACK ports `ports`-keys/-synth (and its
    live monitor on `monitor_port`)."""
    folder.mkdir(exist_ok=True)
    config = folder / "performance.toml"
    monitor = "" if monitor_port is None else f'[monitor]\nlisten = "127.0.0.1:{monitor_port}"\n'
    config.write_text(PIECE.format(name=performance, player=f"{ports}-keys",
                                   synth=f"{ports}-synth", mqtt_port=broker.port) + monitor)
    return config


def heard(director: Director, wanted: Callable[[str, Any], bool], count: int = 1
          ) -> list[tuple[str, Any]]:
    """The next `count` (topic, payload) the director hears that are `wanted`, or as many as
    came within TIMEOUT_S in all (the agent's telemetry never lets the queue fall silent)."""
    got: list[tuple[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT_S
    with contextlib.suppress(queue.Empty):
        while len(got) < count:
            topic, payload, _retained = director.got.get(
                timeout=max(0.0, deadline - time.monotonic()))
            if wanted(topic, payload):
                got.append((topic, payload))
    return got


def status(director: Director, wanted: Callable[[Any], bool]) -> Any:
    """The next status that is `wanted` (None if none came within TIMEOUT_S)."""
    got = heard(director, lambda t, p: t == "status" and wanted(p))
    return got[0][1] if got else None


def replies(director: Director, cmd_id: str, count: int) -> list[dict[str, Any]]:
    """The next `count` replies (evt/ack, evt/error) to `cmd_id`, sorted by reply then run."""
    got = heard(director, lambda t, p: t in ("evt/ack", "evt/error") and p["id"] == cmd_id,
                count)
    return sorted(({"reply": t, **p} for t, p in got), key=lambda r: (r["reply"], r["run"]))


class Intruder:
    """The read-only `monitor` user connecting with a client id of its choice, and connecting
    again a second after the broker drops it, for as long as it lives."""

    def __init__(self, broker: Broker, client_id: str) -> None:
        self.connected = threading.Event()
        self.dropped = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set("monitor", USERS["monitor"])
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: rc == 0 and self.connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self._dropped()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _dropped(self) -> None:
        self.dropped += 1

    def close(self) -> None:
        self.client.on_disconnect = None
        self.client.disconnect()
        self.client.loop_stop()


def test_the_monitor_cannot_take_the_agents_session_over(
        jack_server: JackServer, jack: dict[str, str], broker: Broker, tmp_path: Path) -> None:
    """The monitor connects with every client id it could know for the agent: the one it
    used to have (`stage-agent-<performance>-<agent>`, with which it took the agent off the
    broker once a second: 10 of the 20 commands acked on that code), its name, and each with
    the run id the agent publishes. Meanwhile the director's 20 commands are all acked and the
    agent never reconnects. (The id it uses now is random and published nowhere.)"""
    peer = Peer("takeover", "takeover-keys", "takeover-synth", jack_server.xruns)
    director = Director(broker.port, f"stage/takeover/{AGENT}/", keep_run=True, **DESK)
    intruders: list[Intruder] = []
    try:
        with running_agent(piece(tmp_path, "takeover", "takeover", broker), jack, peer) as agent:
            run = director.wait_until("status", lambda p: p["state"] == "online").get("run", "")
            for guess in (f"stage-agent-takeover-{AGENT}", f"stage-agent-{AGENT}", AGENT,
                          f"stage-agent-takeover-{AGENT}-{run}", f"stage-agent-{AGENT}-{run}",
                          run or "-"):
                intruders.append(Intruder(broker, guess))
                assert intruders[-1].connected.wait(TIMEOUT_S), guess
            for k in range(20):  # over 2 s: more than one reconnection of the intruders
                director.command("controls", id=f"c{k}", density=1.0 + k / 20)
                time.sleep(0.1)  # a director's pace, not a wait for anything
            acked = heard(director, lambda t, p: t == "evt/ack", 20)
            assert sorted(p["id"] for _, p in acked) == sorted(f"c{k}" for k in range(20))
            assert [i.dropped for i in intruders] == [0] * len(intruders)
            assert agent.wait() == 0, agent.err
        assert "MQTT broker unreachable" not in agent.err
        statuses = [s for t, s in director.seen if t == "status"]
        assert len(statuses) == 2, statuses  # "online" once, then "offline": never dropped
    finally:
        for intruder in intruders:
            intruder.close()
        director.close()
        peer.close()


def test_two_agents_with_one_name_the_second_refuses_commands_until_the_first_goes(
        jack_server: JackServer, jack: dict[str, str], broker: Broker, tmp_path: Path) -> None:
    """A copy of the piece started on a second machine (here: other JACK ports), with the
    same [mqtt] agent: both say so, the first keeps the commands, the second answers each with
    an error naming the first (panic and mute: both apply them), until the first stops."""
    first_peer = Peer("dupa", "dupa-keys", "dupa-synth", jack_server.xruns)
    second_peer = Peer("dupb", "dupb-keys", "dupb-synth", jack_server.xruns)
    monitors = free_port(), free_port()
    first_config = piece(tmp_path / "a", "dup", "dupa", broker, monitors[0])
    second_config = piece(tmp_path / "b", "dup", "dupb", broker, monitors[1])
    director = Director(broker.port, f"stage/dup/{AGENT}/", keep_run=True, **DESK)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's, for the second
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(TIMEOUT_S)
    try:
        with running_agent(first_config, jack, first_peer) as first:
            first_online = director.wait_until("status", lambda p: p["state"] == "online")
            with running_agent(second_config, {**jack, "NOTIFY_SOCKET": notify.getsockname()},
                               second_peer) as second:
                answer = status(director, lambda p: "duplicate" in p)  # the first answers
                assert answer is not None, "two agents with one name, and neither noticed"
                a, b = answer["run"], answer["duplicate"]
                assert first_online == {"state": "online", "run": a}
                assert answer["state"] == "online"
                # Each stage's monitor says so (the duplicate publishes no MQTT state).
                assert monitor_state(monitors[0], "presence") == {
                    "run": a, "duplicate_of": None, "newer": [b], "text": (
                        f"another agent named '{AGENT}' started after this one (run {b}); it "
                        "refuses commands: stop one of them")}
                assert monitor_state(monitors[1], "presence") == {
                    "run": b, "duplicate_of": a, "newer": [], "text": (
                        f"DUPLICATE: another agent named '{AGENT}' (run {a}) was online "
                        "first; this one takes only panic and mute")}
                # The second heard that answer before the command: the broker keeps the order.
                director.command("mode", id="m1", mode="call-response")
                assert replies(director, "m1", 2) == [
                    {"reply": "evt/ack", "id": "m1", "verb": "mode", "run": a},
                    {"reply": "evt/error", "id": "m1", "verb": "mode", "run": b, "error": (
                        f"another agent named '{AGENT}' (run {a}) was online first: this one "
                        f"(run {b}) takes no commands but panic and mute while it is there")}]
                director.command("panic", id="p1")
                assert replies(director, "p1", 2) == [
                    {"reply": "evt/ack", "id": "p1", "verb": "panic", "run": run}
                    for run in sorted((a, b))]
                assert first.wait() == 0, first.err  # the first stops: the second takes over
                assert status(director, lambda p: p["run"] == b) == {"state": "online",
                                                                      "run": b}
                assert monitor_state(monitors[1], "presence") == {
                    "run": b, "duplicate_of": None, "newer": [], "text": ""}
                # systemd's status line: READY's never says "performing" over the duplicate's
                said = [notify.recv(512).decode() for _ in range(3)]
                statuses = [line.removeprefix("STATUS=") for d in said
                            for line in d.splitlines() if line.startswith("STATUS=")]
                assert sum(d.startswith("READY=1\n") for d in said) == 1, said
                assert statuses[-2:] == [
                    f"DUPLICATE: another agent named '{AGENT}' (run {a}) was online first; "
                    "this one takes only panic and mute", "performing dup"], said
                director.command("mode", id="m2", mode="call-response")
                assert replies(director, "m2", 1) == [
                    {"reply": "evt/ack", "id": "m2", "verb": "mode", "run": b}]
                assert second.wait() == 0, second.err
        assert status(director, lambda p: p["run"] == b) == {"state": "offline", "run": b}
    finally:
        notify.close()
        director.close()
        first_peer.close()
        second_peer.close()
    assert (f"MQTT: another agent named '{AGENT}' (run {b}) came online after this one "
            f"(run {a}): two agents with one name") in first.err
    assert (f"MQTT: another agent named '{AGENT}' (run {a}) was online before this one "
            f"(run {b}): two agents with one name") in second.err
    assert (f"MQTT: the other agent named '{AGENT}' (run {a}) has gone: this one (run {b}) "
            "takes commands now") in second.err
    modes = [[r["what"] for r in read_log(config.parent / agent.recording / LOG_NAME)[1]
              if r["k"] == "ctl" and r["what"] in ("mode", "panic")]
             for config, agent in ((first_config, first), (second_config, second))]
    assert modes == [["mode", "panic"], ["panic", "mode"]]


def test_panic_from_a_clock_behind_is_acted_on_and_a_command_from_2100_refused(
        jack_server: JackServer, jack: dict[str, str], broker: Broker, tmp_path: Path) -> None:
    """The director's clock is 11 s behind the agent's (max age 10 s): its panic and mute
    still act, with a warning; a command dated in the year 2100 is refused, saying why."""
    peer = Peer("dated", "dated-keys", "dated-synth", jack_server.xruns)
    director = Director(broker.port, f"stage/dated/{AGENT}/", **DESK)
    try:
        with running_agent(piece(tmp_path, "dated", "dated", broker), jack, peer) as agent:
            director.wait_until("status", lambda p: p["state"] == "online")
            peer.send(0x90, 60, 90)  # harmony: a fifth above, sounding until the key is up
            assert peer.expect(1)[0][1] == [0x91, 67, 90]
            assert director.ask("panic", "p1", sent=time.time() - 11) == {
                "reply": "evt/ack", "id": "p1", "verb": "panic"}
            released = peer.expect(1)[0][1]  # the panic releases the fifth at once
            assert midi.is_note_off(bytes(released)) and released[:2] == [0x81, 67]
            assert director.ask("mute", "m1", sent=time.time() - 11)["reply"] == "evt/ack"
            future = director.ask("controls", "c1", density=2.0, sent=4_102_444_800.0)
            assert future["reply"] == "evt/error"
            assert re.fullmatch(r"command from the future ignored: dated \d+\.\d s ahead of "
                                r"this agent's clock \(at most 10 s; check the sender's clock\)",
                                future["error"]), future
            stale = director.ask("controls", "c2", density=2.0, sent=time.time() - 11)
            assert stale["reply"] == "evt/error"  # only panic and mute are never too old
            assert re.fullmatch(r"stale command ignored: sent 11\.\d s ago \(max age 10 s\)",
                                stale["error"]), stale
            peer.send(0x80, 60, 0)
            assert agent.wait() == 0, agent.err
    finally:
        director.close()
        peer.close()
    assert re.search(r"MQTT command 'panic' \(id p1\): panic applied although sent 11\.\d s "
                     r"ago \(max age 10 s\)", agent.err), agent.err
    records = read_log(tmp_path / agent.recording / LOG_NAME)[1]
    assert [r["what"] for r in records if r["k"] == "ctl" and r["what"] in (
        "panic", "mute", "controls")] == ["panic", "mute"]
