"""The live monitor's server on a real socket (127.0.0.1, a port the system picks), talked to by a
raw asyncio client: the page, the event stream (the whole picture on connect, then each change),
the mailbox that makes a slow client skip to the latest state, the client cap, bad requests
answered and closed without disturbing anyone else; the [monitor] config; and the wiring through
Remote, with a real session, as `stage-agent perform` has it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent import config
from agent.clock import ManualClock
from agent.errors import ConfigError
from agent.events import Heard
from agent.io import monitor as monitor_mod
from agent.io.monitor import (
    MAX_KINDS,
    MAX_WAITING,
    Monitor,
    MonitorError,
    aged_plan,
    frame,
    loopback_host,
)
from agent.io.monitor_meters import Meters
from agent.io.monitor_page import PAGE
from agent.io.remote import Remote
from agent.record.session import Session
from tests.slowloris import SlowLoris

TIMEOUT = 5.0
STATUS = {"performance": "t", "recording": "recordings/t-1", "mqtt": "off"}


class Stream:
    """A page's event stream, read by hand: the HTTP head, then one event at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 head: str) -> None:
        self.reader, self.writer, self.head = reader, writer, head

    @classmethod
    async def open(cls, port: int) -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        return cls(reader, writer, head.decode())

    async def event(self) -> tuple[str, Any]:
        while True:
            block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), TIMEOUT)
            fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\n"))
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])
            assert fields == {"retry": "1000"}  # the only other line the stream sends

    async def events(self, count: int) -> list[tuple[str, Any]]:
        return [await self.event() for _ in range(count)]

    async def until(self, kind: str) -> Any:
        while True:
            got, payload = await self.event()
            if got == kind:
                return payload

    def close(self) -> None:
        self.writer.close()


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request` as it is; everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


@pytest.fixture
async def monitor() -> AsyncIterator[Monitor]:
    m = Monitor("127.0.0.1", 0, lambda: dict(STATUS), ["keys", "bass"], max_clients=2)
    await m.start()
    yield m
    await m.close()


async def test_the_page_is_one_self_contained_document(monitor: Monitor) -> None:
    port = monitor.address[1]
    answer = await exchange(port, f"GET / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    head, body = answer.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: text/html; charset=utf-8" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert any(line.startswith("Content-Security-Policy: default-src 'none'") for line in lines)
    page = body.decode()
    assert "<title>stage-agent monitor</title>" in page
    assert 'new EventSource("events")' in page
    for outside in ("http://", "https://", "src=", "@import", "url("):
        assert outside not in page  # nothing is fetched but the page and its stream


async def test_a_page_opened_mid_show_gets_the_whole_picture_at_once(monitor: Monitor) -> None:
    monitor.publish("mode", {"mode": "accompany", "section": None})
    monitor.publish("tempo", {"bpm": 120.0, "confidence": 0.9, "source": "onsets"})
    monitor.publish("plan", {"mode": "accompany", "t": 5, "notes": [[400, 60, 80, 200, 1]]})
    monitor.publish("tempo", {"bpm": 96.0, "confidence": 0.8, "source": "onsets"})
    monitor.telemetry({"emitted": 3})
    stream = await Stream.open(monitor.address[1])
    assert stream.head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Type: text/event-stream; charset=utf-8" in stream.head
    events = await stream.events(5)
    assert [kind for kind, _ in events] == ["status", "mode", "tempo", "plan", "telemetry"]
    status = events[0][1]
    assert {k: status[k] for k in STATUS} == STATUS
    assert status["state"] == "performing" and status["clients"] == 1
    assert events[1][1] == {"mode": "accompany", "section": None}
    assert events[2][1] == {"bpm": 96.0, "confidence": 0.8, "source": "onsets"}  # the latest
    plan = events[3][1]
    assert plan["mode"] == "accompany" and len(plan["notes"]) == 1
    start, *rest = plan["notes"][0]
    assert start <= 400 and rest == [60, 80, 200, 1]  # counted from now, not from its making
    assert events[4][1] == {"emitted": 3}
    kind, meters = await stream.event()
    assert kind == "meters"
    assert meters == {"players": {name: {"notes": 0, "rate": 0.0, "level": 0}
                                  for name in ("keys", "bass")},
                      "agent": {"notes": 0, "rate": 0.0, "level": 0}, "in": 0, "out": 0}
    stream.close()


async def test_changes_arrive_as_they_happen(monitor: Monitor) -> None:
    stream = await Stream.open(monitor.address[1])
    assert [k for k, _ in await stream.events(2)] == ["status", "meters"]  # nothing else yet
    monitor.publish("key", {"key": "G major", "chord": "D7"})
    assert await stream.event() == ("key", {"key": "G major", "chord": "D7"})
    monitor.telemetry({"emitted": 1})
    assert await stream.event() == ("telemetry", {"emitted": 1})
    assert (await stream.event())[0] == "status"
    # The log's records, through the tap: a player's note-on, its note-off, the agent's answer.
    monitor.meters.tap({"t": 1, "k": "in", "player": "keys", "data": "903c64"})
    monitor.meters.tap({"t": 2, "k": "in", "player": "keys", "data": "803c00"})
    monitor.meters.tap({"t": 3, "k": "emit", "data": "914364", "ok": True})
    meters = await stream.until("meters")
    assert meters["players"]["keys"]["notes"] == 1 and meters["players"]["keys"]["level"] == 100
    assert meters["players"]["bass"]["notes"] == 0
    assert meters["agent"]["notes"] == 1
    assert (meters["in"], meters["out"]) == (2, 1)
    stream.close()


async def test_a_slow_client_skips_to_the_latest_state(monitor: Monitor) -> None:
    stream = await Stream.open(monitor.address[1])
    await stream.events(2)
    for bpm in range(100):  # a burst: the page's task cannot run in between
        monitor.publish("tempo", {"bpm": float(bpm), "confidence": 1.0, "source": "clock"})
    monitor.publish("key", {"key": "C major", "chord": None})
    (client,) = monitor.clients
    assert len(client.pending) == 2  # one frame per kind, however many came
    assert client.skipped == 99
    assert await stream.events(2) == [
        ("tempo", {"bpm": 99.0, "confidence": 1.0, "source": "clock"}),
        ("key", {"key": "C major", "chord": None})]
    stream.close()


async def test_a_client_that_stops_reading_costs_a_bounded_mailbox(monitor: Monitor) -> None:
    """Its socket fills up and its task waits on it; meanwhile its mailbox keeps one frame per
    kind, and the other page gets every update."""
    port = monitor.address[1]
    stalled, live = await Stream.open(port), await Stream.open(port)
    seen: list[tuple[str, Any]] = []

    async def read_live() -> None:
        while True:
            seen.append(await live.event())

    reader = asyncio.create_task(read_live())
    notes = [[i, 60, 80, 100, 0] for i in range(2000)]  # ~40 KB a frame
    sent = 0
    while not any(c.skipped for c in monitor.clients):
        assert sent < 2000, "the stalled page's socket never filled"
        sent += 1
        plan = {"mode": "solo", "t": sent, "notes": notes}
        monitor.publish("plan", plan)
        await until(lambda plan=plan: seen[-1:] == [("plan", plan)])  # the live page has it
    (stalled_client,) = (c for c in monitor.clients if c.skipped)
    assert list(stalled_client.pending) == ["plan"]  # only the latest, however many came
    assert stalled_client.skipped == 1
    monitor.publish("roles", {"keys": "soloing"})
    await until(lambda: seen[-1:] == [("roles", {"keys": "soloing"})])
    assert [p["t"] for k, p in seen if k == "plan"] == list(range(1, sent + 1))  # every one
    assert len(stalled_client.pending) == 2 <= MAX_KINDS
    stalled.writer.transport.abort()  # the stalled page goes away: its place is freed
    await until(lambda: len(monitor.clients) == 1)
    reader.cancel()
    live.close()


async def test_at_most_max_clients_streams(monitor: Monitor) -> None:
    port = monitor.address[1]
    first, second = await Stream.open(port), await Stream.open(port)
    await first.event()
    await second.event()
    refused = await exchange(port, f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                             .encode())
    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 5\r\n" in refused and b"at most 2 monitors at once" in refused
    page = await exchange(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert page.startswith(b"HTTP/1.1 200 OK")  # the page still loads
    assert monitor.stats["refused"] == 1
    first.close()
    await until(lambda: len(monitor.clients) == 1)
    third = await Stream.open(port)
    assert (await third.event())[0] == "status"
    monitor.publish("mode", {"mode": "solo", "section": None})
    assert await second.until("mode") == await third.until("mode")
    second.close()
    third.close()


async def test_a_new_connection_cuts_the_one_that_waited_longest(monitor: Monitor) -> None:
    """Connections that send nothing fill the waiting room; each one more cuts the oldest, so a
    page still loads and a stream still opens, and the silent ones only cut each other."""
    port = monitor.address[1]
    idle = []
    for i in range(1, MAX_WAITING + 4):
        idle.append(await asyncio.open_connection("127.0.0.1", port))
        await until(lambda i=i: monitor.stats["cut"] == max(i - MAX_WAITING, 0)
                    and len(monitor._connections) == min(i, MAX_WAITING))
    assert monitor.stats["cut"] == 3
    for n, (reader, _writer) in enumerate(idle):  # the first three are gone, unanswered
        if n < 3:
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        else:
            assert not reader.at_eof()
    page = await exchange(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert page.startswith(b"HTTP/1.1 200 OK") and page.endswith(PAGE.encode())
    stream = await Stream.open(port)
    assert (await stream.event())[0] == "status"
    # The page's connection cut one; the stream's found the room the page's left.
    assert monitor.stats["cut"] == 4
    assert monitor.stats["refused"] == 0 and monitor.stats["errors"] == 0
    for _reader, writer in idle:
        writer.close()
    await until(lambda: len(monitor._connections) == 1)  # the stream's
    stream.close()


def get_page(port: int) -> tuple[int, bytes]:
    """GET / as a browser would (http.client, blocking): the status and the body; status 0 when
    the connection was closed or reset unanswered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


async def test_slow_loris_clients_do_not_keep_pages_from_loading() -> None:
    """Issue 14: 13 slow-loris connections made a third of page loads fail (they held every
    place the server had). With them all connected and dribbling, every page load and every
    event stream succeeds."""
    m = Monitor("127.0.0.1", 0, lambda: dict(STATUS), ["keys"])  # max_clients 8, as shipped
    await m.start()
    port = m.address[1]
    attack = SlowLoris(port, 13)
    try:
        # Every one has connected, and the server holds a dozen of them (the old limit).
        await until(lambda: min(attack.connects) >= 1 and len(m._connections) >= 12)
        loads = [await asyncio.to_thread(get_page, port) for _ in range(20)]
        assert [status for status, _ in loads] == [200] * 20
        assert all(body == PAGE.encode() for _, body in loads)
        stream = await Stream.open(port)
        assert (await stream.event())[0] == "status"
        stream.close()
        assert sum(attack.connects) >= 13
        assert m.stats["pages"] == 20 and m.stats["errors"] == 0
    finally:
        attack.close()
        await m.close()


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nmode", "405"),
    (b"HEAD / HTTP/1.1\r\n\r\n", "405"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", "431"),
    (b"hello there\r\n\r\n", "400"),
    (b"\x00\xff\xfe\x16\x03\x01 binary\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400"),
    (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n", "404"),
    (b"GET /events HTTP/1.1\r\nHost: attacker.example:8088\r\n\r\n", "403"),
])
async def test_a_bad_request_is_answered_and_closed_and_nobody_else_notices(
        monitor: Monitor, request_bytes: bytes, status: str) -> None:
    port = monitor.address[1]
    stream = await Stream.open(port)
    await stream.events(2)
    answer = await exchange(port, request_bytes)
    assert answer.split(b" ", 2)[1].decode() == status, answer[:200]
    assert b"Connection: close\r\n" in answer
    if status == "405":
        assert b"Allow: GET\r\n" in answer
    monitor.publish("mode", {"mode": "mirror", "section": None})
    assert await stream.event() == ("mode", {"mode": "mirror", "section": None})
    assert monitor.stats["bad"] == 1 and monitor.stats["errors"] == 0
    stream.close()


async def test_a_silent_or_vanishing_client_is_let_go(monitor: Monitor,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_mod, "REQUEST_TIMEOUT_S", 0.2)
    port = monitor.address[1]
    answer = await exchange(port, b"GET / HT")  # half a request, then nothing
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 12")
    writer.close()  # gone in the middle of its request
    await until(lambda: not monitor._connections)
    assert monitor.stats["errors"] == 0


async def test_closing_tells_every_page_the_agent_stopped() -> None:
    m = Monitor("127.0.0.1", 0, lambda: dict(STATUS), ["keys"])
    await m.start()
    stream = await Stream.open(m.address[1])
    await stream.events(2)
    await m.close()
    assert (await stream.until("status"))["state"] == "stopped"
    assert await asyncio.wait_for(stream.reader.read(), TIMEOUT) == b""  # and it is closed
    stream.close()


async def test_a_taken_port_is_an_error_naming_the_key(monitor: Monitor) -> None:
    other = Monitor("127.0.0.1", monitor.address[1], lambda: {}, [])
    with pytest.raises(MonitorError, match=r"monitor.listen: cannot listen on 127.0.0.1:"):
        await other.start()
    await other.close()  # closing one that never started is harmless


async def test_a_bad_state_is_not_shown_and_the_rest_plays_on(monitor: Monitor) -> None:
    stream = await Stream.open(monitor.address[1])
    await stream.events(2)
    monitor.publish("take", {"folder": {1, 2}})  # not JSON: logged, not raised
    monitor.publish("bad kind\ndata: x", {})  # would break the stream's framing: ignored
    monitor.publish("mode", {"mode": "solo", "section": None})
    assert await stream.event() == ("mode", {"mode": "solo", "section": None})
    stream.close()
    late = await Stream.open(monitor.address[1])  # its snapshot has what was shown
    assert [kind for kind, _ in await late.events(3)] == ["status", "mode", "meters"]
    late.close()


def test_meters_count_note_ons_per_player_and_the_agent() -> None:
    meters = Meters(["keys"])
    for player, data in (("keys", "903c40"), ("keys", "903e7f"), ("keys", "903c00"),  # vel 0
                         ("keys", "803c00"), ("keys", "f8"), ("stranger", "903c40"),
                         ("keys", "90zz40")):
        meters.tap({"t": 0, "k": "in", "player": player, "data": data})
    meters.tap({"t": 0, "k": "emit", "data": "924364", "ok": True})
    meters.tap({"t": 0, "k": "emit", "data": "924364", "ok": False})  # not delivered
    meters.tap({"t": 0, "k": "decision", "what": "respond"})
    first = meters.step(0.25)
    assert first["players"]["keys"] == {"notes": 3, "rate": 6.0, "level": 127}
    assert first["agent"] == {"notes": 1, "rate": 2.0, "level": 100}
    assert (first["in"], first["out"]) == (7, 1)
    later = meters.step(0.25)  # nothing new: the rate and the level fall
    assert later["players"]["keys"] == {"notes": 3, "rate": 3.0, "level": 76}


def test_helpers() -> None:
    assert frame("key", {"key": "a\nb"}) == b'event: key\ndata: {"key":"a\\nb"}\n\n'
    assert aged_plan({"t": 1, "notes": [[100, 60, 80, 50, 1]]}, 30) == {
        "t": 1, "notes": [[70, 60, 80, 50, 1]]}
    for host in ("127.0.0.1", "127.0.0.1:8088", "localhost:1", "LOCALHOST", "[::1]:8088", "::1",
                 "127.1.2.3", ""):
        assert loopback_host(host), host
    for host in ("10.0.0.1:8088", "attacker.example", "localhost.attacker.example:80",
                 "[2001:db8::1]:80"):
        assert not loopback_host(host), host


# -- [monitor] in performance.toml ----------------------------------------------------------

BASE = {"players": [{"name": "keys", "port": "virtual:keys"}]}


def monitor_config(**monitor: Any) -> config.Config:
    return config.from_dict({**BASE, "monitor": monitor}, "performance.toml")


def test_the_monitor_is_off_by_default() -> None:
    c = config.from_dict(BASE)
    assert c.monitor == config.MonitorSection(listen="", allow_remote=False, max_clients=8)


@pytest.mark.parametrize(("listen", "address"), [
    ("8088", ("127.0.0.1", 8088)),
    ("127.0.0.1:8088", ("127.0.0.1", 8088)),
    ("127.0.0.2:9000", ("127.0.0.2", 9000)),
    ("localhost:8088", ("localhost", 8088)),
    ("[::1]:8088", ("::1", 8088)),
])
def test_loopback_addresses_need_nothing_more(listen: str, address: tuple[str, int]) -> None:
    c = monitor_config(listen=listen)
    assert config.monitor_address(c) == address
    assert config.from_dict(c.to_dict()) == c  # as recorded in the log


@pytest.mark.parametrize("listen", ["0.0.0.0:8088", "192.168.1.20:8088", "stage.local:8088",
                                    "[::]:8088"])
def test_any_other_address_needs_allow_remote(listen: str) -> None:
    with pytest.raises(ConfigError) as e:
        monitor_config(listen=listen)
    assert e.value.key == "monitor.listen"
    assert "not a loopback address" in e.value.problem
    assert "monitor.allow_remote = true" in e.value.problem
    c = monitor_config(listen=listen, allow_remote=True)
    assert config.monitor_address(c)[1] == 8088


@pytest.mark.parametrize(("fields", "key", "problem"), [
    ({"listen": "nonsense"}, "monitor.listen", "is not host:port"),
    ({"listen": ":8088"}, "monitor.listen", "is not host:port"),
    ({"listen": "127.0.0.1:99999"}, "monitor.listen", "is not host:port"),
    ({"listen": "0"}, "monitor.listen", "is not host:port"),
    ({"listen": 8088}, "monitor.listen", "expected str, got int"),
    ({"listen": "8088", "max_clients": 0}, "monitor.max_clients", "out of range"),
    ({"listen": "8088", "allow_remote": "yes"}, "monitor.allow_remote", "expected bool"),
    ({"port": 8088}, "monitor.port", "unknown key"),
])
def test_bad_monitor_settings_name_the_key(fields: dict[str, Any], key: str,
                                           problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        monitor_config(**fields)
    assert e.value.key == key and problem in e.value.problem
    assert str(e.value).startswith("performance.toml: " + key)


# -- wired through Remote, as perform has it ------------------------------------------------

async def test_remote_feeds_the_monitor_what_the_agent_publishes_and_hears(
        tmp_path: Path) -> None:
    cfg = config.from_dict({
        "performance": {"name": "wired"},
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"mode": "harmony", "outputs": ["synth"], "channel": 2},
        "harmony": {"intervals": [7]},
        "monitor": {"listen": str(free_port())},
    }, str(tmp_path / "performance.toml"))
    clock = ManualClock(1_000_000_000)
    sent: list[bytes] = []
    session = Session(cfg, clock, lambda port, data: sent.append(data) or True,
                      tmp_path / "rec", {"clock": "manual"})
    remote = Remote(cfg, session)
    assert remote.monitor is not None
    await remote.start()
    try:
        stream = await Stream.open(remote.monitor.address[1])
        events = dict(await stream.events(5))
        assert events["status"]["performance"] == "wired"
        assert events["status"]["recording"] == str(tmp_path / "rec")
        assert events["status"]["mqtt"] == "off"
        assert events["mode"] == {"mode": "harmony", "section": None}
        assert events["controls"]["mode"] == "harmony"
        assert events["plan"]["notes"] == []
        session.hear(Heard(clock.now_ns(), "keys", bytes([0x90, 60, 90])))
        assert sent == [bytes([0x91, 67, 90])]  # the harmony, at once
        meters = await stream.until("meters")
        assert meters["players"]["keys"]["notes"] == 1 and meters["agent"]["notes"] == 1
        remote.telemetry({"emitted": 1})
        assert await stream.until("telemetry") == {"emitted": 1}
        stream.close()
    finally:
        await remote.close()
        session.stop(clock.now_ns())
        session.finish()
