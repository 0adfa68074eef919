"""The MQTT control plane against a real mosquitto: presence (online, offline, the Will), commands
and their replies, retained state across a broker restart, passwords and TLS.

Every wait is on a message or a condition with a timeout; nothing sleeps and hopes."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.config import Config, from_dict
from agent.errors import ConfigError, StageAgentError
from agent.io.mqtt import ControlPlane, make_control_plane
from agent.policy.commands import Command
from tests.integration.broker import MOSQUITTO, Broker

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed "
                                "(apt-get install mosquitto; scripts/setup.sh does)")

PREFIX = "stage/gig/keys-bot/"
NOW_S = 1_700_000_000  # the agent's wall clock in these tests, frozen
FAST = (0.05, 0.2)  # backoff_s: reconnect quickly, the tests wait for it
ROOT = Path(__file__).resolve().parents[2]


def table(port: int, **mqtt: Any) -> dict[str, Any]:
    return {"performance": {"name": "gig"}, "players": [{"name": "p", "port": "virtual:p"}],
            "sections": [{"name": "intro"}, {"name": "solo"}],
            "mqtt": {"host": "127.0.0.1", "port": port, "agent": "keys-bot", **mqtt}}


def config(folder: Path, port: int, **mqtt: Any) -> Config:
    return from_dict(table(port, **mqtt), str(folder / "performance.toml"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Director:
    """The test's side of the stage: watches everything under the agent's prefix, one queue per
    topic suffix, and sends commands."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.queues: defaultdict[str, asyncio.Queue[aiomqtt.Message]] = \
            defaultdict(asyncio.Queue)
        self.run = ""  # the agent's run, once known: its replies name it

    def reply(self, **fields: Any) -> tuple[dict[str, Any], bool]:
        """A reply of the agent's, as expect() returns it (never retained)."""
        return {**fields, "run": self.run}, False

    async def expect(self, suffix: str, timeout_s: float = 5.0) -> tuple[Any, bool]:
        """The next message on PREFIX + suffix: (its JSON, its retain flag)."""
        m = await asyncio.wait_for(self.queues[suffix].get(), timeout_s)
        return json.loads(m.payload), m.retain

    async def send(self, verb: str, payload: dict[str, Any] | bytes, retain: bool = False
                   ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.client.publish(PREFIX + "cmd/" + verb, body, qos=1, retain=retain)


@asynccontextmanager
async def director(port: int, **client: Any) -> AsyncIterator[Director]:
    async with aiomqtt.Client("127.0.0.1", port, **client) as c:
        d = Director(c)
        await c.subscribe(PREFIX + "#", qos=1)

        async def dispatch() -> None:
            async for m in c.messages:
                d.queues[m.topic.value.removeprefix(PREFIX)].put_nowait(m)

        task = asyncio.create_task(dispatch())
        try:
            yield d
        finally:
            task.cancel()


async def retained(port: int, suffix: str, **client: Any) -> Any:
    """What a subscriber arriving now is given on PREFIX + suffix (it must be retained)."""
    async with director(port, **client) as late:
        payload, retain = await late.expect(suffix)
        assert retain, f"{suffix} is not retained"
        return payload


@asynccontextmanager
async def serving(cp: ControlPlane) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(cp.run())
    try:
        yield task
    finally:
        await cp.close()
        await asyncio.wait_for(task, 5)  # run() returns after close(), raising nothing


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def said(cp: ControlPlane, state: str) -> dict[str, str]:
    """A status of `cp`'s: every status names the run that says it."""
    return {"state": state, "run": cp.presence.run}


# 1. Presence ---------------------------------------------------------------------------------

async def test_online_retained_then_offline_after_close(broker: Broker, tmp_path: Path) -> None:
    async with director(broker.port) as d:
        cp = ControlPlane(config(tmp_path, broker.port), lambda c: None)
        task = asyncio.create_task(cp.run())
        assert await d.expect("status") == (said(cp, "online"), False)
        assert cp.connected
        assert await retained(broker.port, "status") == said(cp, "online")
        await cp.close()
        assert await d.expect("status") == (said(cp, "offline"), False)
        await asyncio.wait_for(task, 5)
        assert await retained(broker.port, "status") == said(cp, "offline")
        assert d.queues["status"].empty()  # a clean goodbye: the Will "lost" was not sent


async def test_will_lost_when_the_agent_process_dies(broker: Broker, tmp_path: Path) -> None:
    script = ("import asyncio, json, sys\n"
              "from agent.config import from_dict\n"
              "from agent.io.mqtt import ControlPlane\n"
              "cp = ControlPlane(from_dict(json.loads(sys.argv[1])), lambda c: None)\n"
              "asyncio.run(cp.run())\n")
    async with director(broker.port) as d:
        proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(table(broker.port))],
                                cwd=ROOT)
        try:
            online, _ = await d.expect("status", timeout_s=15)
            assert online == {"state": "online", "run": online["run"]}
            proc.send_signal(signal.SIGKILL)  # no goodbye: the broker sees the socket close
        finally:
            proc.kill()
            proc.wait()
        lost = {"state": "lost", "run": online["run"]}  # the Will names the run too
        assert await d.expect("status") == (lost, False)
    assert await retained(broker.port, "status") == lost


# 2. Commands ---------------------------------------------------------------------------------

@asynccontextmanager
async def rig(broker: Broker, tmp_path: Path, on_command: Callable[[Command], None]
              ) -> AsyncIterator[Director]:
    cp = ControlPlane(config(tmp_path, broker.port), on_command, lambda: NOW_S * 10**9)
    async with director(broker.port) as d, serving(cp):
        assert await d.expect("status") == (said(cp, "online"), False)
        d.run = cp.presence.run
        yield d


async def test_valid_commands_are_applied_once_and_acked(broker: Broker, tmp_path: Path
                                                         ) -> None:
    applied: list[Command] = []
    async with rig(broker, tmp_path, applied.append) as d:
        await d.send("mode", {"id": "c1", "mode": "solo"})
        assert await d.expect("evt/ack") == d.reply(id="c1", verb="mode")
        await d.send("controls", {"id": "c2", "sent": NOW_S - 9.5, "density": 1.5,
                                  "styles": {"bach": 1}})
        assert await d.expect("evt/ack") == d.reply(id="c2", verb="controls")
        await d.send("cue", {"id": "c3"})
        assert await d.expect("evt/ack") == d.reply(id="c3", verb="cue")
        await d.send("cue", {"id": "c4", "section": "solo"})
        assert await d.expect("evt/ack") == d.reply(id="c4", verb="cue")
        await d.send("panic", {"id": "c5", "sent": NOW_S + 1})  # a clock a bit ahead is fine
        assert await d.expect("evt/ack") == d.reply(id="c5", verb="panic")
        await d.send("mode", {"id": "c1", "mode": "solo"})  # a retry: acked, not applied again
        assert await d.expect("evt/ack") == d.reply(id="c1", verb="mode")
        assert d.queues["evt/error"].empty()
    assert applied == [Command("mode", {"mode": "solo"}),
                       Command("controls", {"density": 1.5, "styles": {"bach": 1.0}}),
                       Command("cue", {"section": "next"}), Command("cue", {"section": "solo"}),
                       Command("panic", {})]


@pytest.mark.parametrize(("verb", "payload", "reply"), [
    ("mode", b"{mode: solo", {"id": None, "error": "invalid JSON: Expecting property name "
                              "enclosed in double quotes: line 1 column 2 (char 1)"}),
    ("mode", b"\xff", {"id": None, "error": "invalid JSON: 'utf-8' codec can't decode byte "
                       "0xff in position 0: invalid start byte"}),
    ("mode", b'["solo"]', {"id": None, "error": 'expected a JSON object with an "id", got list'}),
    ("mode", {"mode": "solo"}, {"id": None, "error": 'missing "id" (a non-empty string)'}),
    ("mode", {"id": 7, "mode": "solo"}, {"id": None,
                                         "error": 'missing "id" (a non-empty string)'}),
    ("dance", {"id": "b1"}, {"id": "b1", "error": "unknown command 'dance' "
                             "(known: mode, controls, cue, mute, unmute, panic, "
                             "record, capture-save, model-reload)"}),
    ("controls", {"id": "b2", "density": 9}, {"id": "b2", "error": "controls: density: 9 is "
                                              "out of range 0.25..4.0"}),
    ("mode", {"id": "b3", "mode": "polka"}, {"id": "b3", "error": "mode: 'polka' is not "
                                             "one of call-response, accompany, continue, mirror, "
                                             "solo, auto, harmony"}),
    ("cue", {"id": "b4", "section": "coda"}, {"id": "b4", "error": "cue: no section 'coda' "
                                              "(sections: intro, solo)"}),
    ("mute", {"id": "b5", "now": True}, {"id": "b5", "error": "mute: unknown field 'now' "
                                         "(allowed: none)"}),
    ("mode", {"id": "b6", "mode": "solo", "sent": NOW_S - 60}, {
        "id": "b6", "error": "stale command ignored: sent 60.0 s ago (max age 10 s)"}),
    ("cue", {"id": "b8", "sent": 4_102_444_800}, {  # 2100-01-01
        "id": "b8", "error": "command from the future ignored: dated 2402444800.0 s ahead of "
        "this agent's clock (at most 10 s; check the sender's clock)"}),
    ("panic", {"id": "b7", "sent": "now"}, {"id": "b7", "error": '"sent" must be a unix time '
                                            "in seconds, got 'now'"}),
])
async def test_bad_commands_get_an_error_and_change_nothing(
        broker: Broker, tmp_path: Path, verb: str, payload: dict[str, Any] | bytes,
        reply: dict[str, Any]) -> None:
    applied: list[Command] = []
    async with rig(broker, tmp_path, applied.append) as d:
        await d.send(verb, payload)
        assert await d.expect("evt/error") == d.reply(**reply, verb=verb)
        # the id of a refused command is not spent: sent again, good, it is applied
        await d.send("unmute", {"id": reply["id"] or "fixed"})
        assert await d.expect("evt/ack") == d.reply(id=reply["id"] or "fixed", verb="unmute")
    assert applied == [Command("unmute", {})]


async def test_panic_and_mute_are_never_refused_for_their_date(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A director whose clock is 11 s behind (or set to 2100) can still stop the sound; the
    agent says what was odd about it."""
    applied: list[Command] = []
    async with rig(broker, tmp_path, applied.append) as d:
        await d.send("panic", {"id": "p1", "sent": NOW_S - 11})
        assert await d.expect("evt/ack") == d.reply(id="p1", verb="panic")
        await d.send("mute", {"id": "m1", "sent": 4_102_444_800})
        assert await d.expect("evt/ack") == d.reply(id="m1", verb="mute")
        await d.send("controls", {"id": "c1", "density": 2, "sent": NOW_S + 11})
        assert await d.expect("evt/error") == d.reply(
            id="c1", verb="controls", error="command from the future ignored: dated 11.0 s "
            "ahead of this agent's clock (at most 10 s; check the sender's clock)")
    assert applied == [Command("panic", {}), Command("mute", {})]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "MQTT command 'panic' (id p1): panic applied although sent 11.0 s ago (max age " \
        "10 s)" in warnings


async def test_a_members_duplicate_is_not_taken_for_the_member(broker: Broker, tmp_path: Path
                                                                ) -> None:
    """bass is started twice: keys follows the first, and the second's goodbye does not make
    keys think bass has gone."""
    heard: list[tuple[str, str, dict[str, Any]]] = []

    def ensemble_config(me: str) -> Config:
        return from_dict({**table(broker.port), "mqtt": {"host": "127.0.0.1",
                                                         "port": broker.port, "agent": me},
                          "ensemble": {"members": ["keys", "bass"]}},
                         str(tmp_path / "performance.toml"))

    keys = ControlPlane(ensemble_config("keys"), lambda c: None,
                        on_peer=lambda name, kind, p, r: heard.append((name, kind, p)))
    bass, again = (ControlPlane(ensemble_config("bass"), lambda c: None) for _ in range(2))
    bass.publish_state("ensemble", {"role": "rest", "until": None, "can_lead": True,
                                    "grid": None})
    again.publish_state("ensemble", {"role": "lead", "until": None, "can_lead": True,
                                     "grid": None})
    def statuses() -> list[str]:
        return [p["state"] for _name, kind, p in heard if kind == "status"]

    async with serving(keys), serving(bass):
        await until(lambda: {k for _n, k, _p in heard} == {"status", "state/ensemble"})
        assert statuses() == ["online"]
        async with serving(again):
            await until(lambda: again.presence.duplicate_of == bass.presence.run)
        # the second's "online", the first's answer, and once the second has said goodbye,
        # the first's "online" again (the goodbye was not retained, but it says so anyway)
        await until(lambda: len(statuses()) == 4)
        assert statuses() == ["online"] * 4  # the second's goodbye was not bass's
        # bass's ensemble state, never the second's (which leads)
        assert {p["role"] for _n, kind, p in heard if kind == "state/ensemble"} == {"rest"}
        assert {name for name, _k, _p in heard} == {"bass"}


async def test_a_retained_command_is_not_applied(broker: Broker, tmp_path: Path) -> None:
    applied: list[Command] = []
    async with director(broker.port) as d:  # left on the broker before the agent connects
        await d.send("panic", {"id": "r1"}, retain=True)
    async with rig(broker, tmp_path, applied.append) as d:
        assert await d.expect("evt/error") == d.reply(
            id="r1", verb="panic", error="retained command ignored (commands are never retained)")
    assert applied == []


async def test_a_command_the_agent_refuses_gets_an_error(broker: Broker, tmp_path: Path
                                                         ) -> None:
    seen: list[Command] = []

    def on_command(cmd: Command) -> None:
        seen.append(cmd)
        if cmd.verb == "cue":
            raise StageAgentError("cue: the piece has ended")
        if cmd.verb == "mute":
            raise RuntimeError("a bug")

    async with rig(broker, tmp_path, on_command) as d:
        await d.send("cue", {"id": "x1"})
        assert await d.expect("evt/error") == d.reply(id="x1", verb="cue",
                                                      error="cue: the piece has ended")
        await d.send("mute", {"id": "x2"})  # the control plane outlives a bug in the agent
        assert await d.expect("evt/error") == d.reply(
            id="x2", verb="mute", error="internal error: RuntimeError('a bug')")
        await d.send("cue", {"id": "x1"})  # refused, so not remembered: tried again
        assert (await d.expect("evt/error"))[0]["id"] == "x1"
    assert [c.verb for c in seen] == ["cue", "mute", "cue"]


# 3. State ------------------------------------------------------------------------------------

async def test_state_is_retained_and_republished_after_a_broker_restart(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.io.mqtt")
    cp = ControlPlane(config(tmp_path, broker.port), lambda c: None, backoff_s=FAST)
    cp.publish_state("controls", {"density": 1.0})  # before connecting: sent on connect
    async with serving(cp):
        async with director(broker.port) as d:
            await until(lambda: cp.connected)
            cp.publish_state("controls", {"density": 2.0})
            cp.publish_state("controls", {"density": 3.0})  # only the latest matters
            cp.publish_state("section", {"name": "intro", "bar": 1})
            await until(lambda: d.queues["state/section"].qsize() > 0)
            for i in range(200):  # updates landing while the previous one is in flight
                cp.publish_state("beat", {"i": i})
                await asyncio.sleep(0)
            while (await d.expect("state/beat"))[0] != {"i": 199}:
                pass  # the latest always goes out (intermediate ones may be skipped)
        assert await retained(broker.port, "state/controls") == {"density": 3.0}
        assert await retained(broker.port, "state/section") == {"name": "intro", "bar": 1}

        broker.stop(signal.SIGKILL)  # every retained message is gone with it (no persistence)
        await until(lambda: not cp.connected)
        cp.publish_state("section", {"name": "solo", "bar": 9})  # during the outage
        broker.start()  # same port

        async with director(broker.port) as d:
            got: dict[str, Any] = {}
            for suffix in ("status", "state/controls", "state/section"):
                got[suffix] = (await d.expect(suffix))[0]
        assert got == {"status": said(cp, "online"), "state/controls": {"density": 3.0},
                       "state/section": {"name": "solo", "bar": 9}}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1, messages  # once per outage
    assert sum("reachable again" in m for m in messages) == 1, messages


async def test_publish_state_refuses_what_it_cannot_send(tmp_path: Path) -> None:
    cp = ControlPlane(config(tmp_path, 1883), lambda c: None)
    with pytest.raises(ValueError, match="cannot end an MQTT topic"):
        cp.publish_state("a/#", {})
    with pytest.raises(ValueError, match="Out of range float"):
        cp.publish_state("x", {"v": float("nan")})


# 4. Credentials, TLS, no broker --------------------------------------------------------------

USERS = {"keys-bot": "right", "director": "dpass"}
DIRECTOR = {"username": "director", "password": "dpass"}


async def test_right_password_connects(tmp_path: Path) -> None:
    broker = Broker(tmp_path, users=USERS)
    broker.start()
    try:
        cp = ControlPlane(config(tmp_path, broker.port, username="keys-bot", password="right"),
                          lambda c: None)
        async with director(broker.port, **DIRECTOR) as d, serving(cp):
            assert await d.expect("status") == (said(cp, "online"), False)
    finally:
        broker.stop()


async def test_wrong_password_keeps_retrying_and_logs_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(tmp_path, users=USERS)
    broker.start()
    try:
        cp = ControlPlane(config(tmp_path, broker.port, username="keys-bot", password="wrong"),
                          lambda c: None, backoff_s=FAST)
        async with serving(cp) as task:
            await until(lambda: cp.attempts >= 4)
            assert not task.done() and not cp.connected
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [f"MQTT broker 127.0.0.1:{broker.port} refused the connection "
                          "([code:135] Not authorized): check mqtt.username and mqtt.password; "
                          "retrying"]
    finally:
        broker.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    cert, key = folder / "ca.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_tls_with_the_configured_ca(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    broker = Broker(tmp_path, tls=(cert, key))
    broker.start()
    try:
        # ca_file is relative to the config file's folder
        cp = ControlPlane(config(tmp_path, broker.port, tls=True, ca_file="ca.pem"),
                          lambda c: None)
        tls = aiomqtt.TLSParameters(ca_certs=str(cert))
        async with director(broker.port, tls_params=tls) as d, serving(cp):
            assert await d.expect("status") == (said(cp, "online"), False)
    finally:
        broker.stop()


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file: no such file"):
        ControlPlane(config(tmp_path, 8883, tls=True, ca_file="nope.pem"), lambda c: None)


def test_no_host_no_control_plane(tmp_path: Path) -> None:
    c = from_dict({"players": [{"name": "p", "port": "virtual:p"}]})
    assert make_control_plane(c, lambda cmd: None) is None
    assert isinstance(make_control_plane(config(tmp_path, 1883), lambda cmd: None), ControlPlane)
