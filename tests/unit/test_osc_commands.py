"""OSC commands without sockets: argument forms, the per-sender token bucket, refusals, and
OscOut's drop counting on send errors the loopback cannot produce (would-block, no route)."""

from __future__ import annotations

import errno
import logging
import struct
from typing import Any

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from agent.clock import ManualClock
from agent.errors import StageAgentError
from agent.io.osc import OscControlIn, OscError, OscOut
from agent.io.osc_command import command_fields
from agent.policy.commands import Command, CommandError

P = "/stage-agent/cmd/"


def test_argument_forms() -> None:
    assert command_fields(P + "cue", []) == ("cue", {})
    assert command_fields(P + "cue", ["intro"]) == ("cue", {"section": "intro"})
    assert command_fields(P + "mode", ["solo"]) == ("mode", {"mode": "solo"})
    assert command_fields(P + "panic", []) == ("panic", {})
    assert command_fields(P + "controls", ['{"density": 1.5, "id": "x7", "sent": 1.7e9}']) == (
        "controls", {"density": 1.5})
    assert command_fields(P + "mode", [' {"mode": "solo"}']) == ("mode", {"mode": "solo"})
    # 32-bit floats come back as the decimal that was sent; doubles and ints are untouched
    f32 = struct.unpack(">f", struct.pack(">f", 0.9))[0]
    assert command_fields(P + "controls", ["density", f32, "register", -3, "mute", True,
                                           "temperature", 0.1]) == (
        "controls", {"density": 0.9, "register": -3, "mute": True, "temperature": 0.1})


@pytest.mark.parametrize("address,args", [
    ("/elsewhere/cue", []),
    (P + "controls", ["density"]),
    (P + "controls", ["density", 1.0, "density", 2.0]),
    (P + "controls", [1.0, "density"]),
    (P + "mute", ["now"]),
    (P + "cue", ["a", "b"]),
    (P + "cue", [b"blob"]),
    (P + "cue", ["{not json"]),
    (P + "cue", ['{"a": ' + "[" * 5000 + "]" * 5000 + "}"]),  # too deep for json: no crash
])
def test_argument_forms_refused(address: str, args: list[Any]) -> None:
    with pytest.raises(CommandError):
        command_fields(address, args)


def _msg(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_token_bucket_refills_at_the_rate() -> None:
    clock = ManualClock(0)
    got: list[Command] = []
    c = OscControlIn("127.0.0.1", 0, ["127.0.0.1"], [], got.append, rate=10, clock=clock)
    for _ in range(15):
        c.datagram(_msg(P + "mute"), "127.0.0.1")
    assert len(got) == 10 and c.stats["refused_rate"] == 5
    clock.advance_to(250_000_000)  # a quarter second: 2.5 tokens
    for _ in range(5):
        c.datagram(_msg(P + "unmute"), "127.0.0.1")
    assert len(got) == 12 and c.stats["refused_rate"] == 8
    clock.advance_to(60_000_000_000)  # the bucket holds one second's worth, no more
    for _ in range(15):
        c.datagram(_msg(P + "panic"), "127.0.0.1")
    assert len(got) == 22 and c.stats["refused_rate"] == 13


def test_refusals_are_counted_and_logged_at_most_once_a_second(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(0)
    got: list[Command] = []
    c = OscControlIn("127.0.0.1", 0, ["127.0.0.1"], ["intro"], got.append, max_size=64,
                     clock=clock)
    with caplog.at_level(logging.WARNING, "agent.io.osc"):
        for _ in range(3):
            c.datagram(b"\x00garbage", "127.0.0.1")
            c.datagram(_msg(P + "mute"), "10.0.0.9")
            c.datagram(_msg(P + "cue", "x" * 80), "127.0.0.1")
            c.datagram(_msg(P + "cue", "nowhere"), "127.0.0.1")
        assert len(caplog.records) == 4  # one per reason
        clock.advance_to(1_000_000_000)
        c.datagram(b"", "127.0.0.1")
        assert "and 2 more" in caplog.records[-1].getMessage()
    assert {k: v for k, v in c.stats.items() if v} == {
        "packets": 13, "refused_decode": 4, "refused_sender": 3, "refused_size": 3,
        "bad_commands": 3}
    c.datagram(_msg(P + "cue", "intro"), "127.0.0.1")
    assert got == [Command("cue", {"section": "intro"})]


def test_a_failing_callback_is_counted_and_the_next_command_still_arrives() -> None:
    got: list[Command] = []

    def on_command(cmd: Command) -> None:
        if cmd.verb == "mute":
            raise StageAgentError("cannot mute now")
        if cmd.verb == "unmute":
            raise RuntimeError("a bug downstream")
        got.append(cmd)

    c = OscControlIn("127.0.0.1", 0, ["127.0.0.1"], [], on_command)
    for verb in ("mute", "unmute", "panic"):
        c.datagram(_msg(P + verb), "127.0.0.1")
    assert got == [Command("panic", {})]
    assert c.stats["command_errors"] == 2 and c.stats["commands"] == 3


def test_bad_settings_are_refused() -> None:
    with pytest.raises(OscError, match="not an IP address"):
        OscControlIn("127.0.0.1", 0, ["stage-laptop"], [], lambda c: None)
    with pytest.raises(OscError):
        OscControlIn("127.0.0.1", 0, [], [], lambda c: None, rate=0)
    with pytest.raises(OscError, match="OSC destination"):  # refused before any DNS query
        OscOut([("x" * 64 + ".example", 9000)])


class FailingSocket:
    def __init__(self, errors: list[OSError]) -> None:
        self.errors = errors

    def connect(self, addr: tuple[str, int]) -> None:
        pass

    def send(self, data: bytes) -> int:
        if self.errors:
            raise self.errors.pop(0)
        return len(data)

    def close(self) -> None:
        pass


def test_send_errors_are_dropped_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    out = OscOut([("127.0.0.1", 9), ("127.0.0.1", 10)])
    real = [d.sock for d in out._dests]
    out._dests[0].sock = FailingSocket([  # type: ignore[assignment]
        BlockingIOError(errno.EAGAIN, "would block"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),  # then the retry goes out
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused")])  # and this retry fails
    out._dests[1].sock = FailingSocket([])  # type: ignore[assignment]
    tempo = {"bpm": 100.0, "confidence": 1.0, "source": "clock"}
    with caplog.at_level(logging.WARNING, "agent.io.osc"):
        for _ in range(5):
            out.send_state("tempo", tempo)
    assert out.stats == {"127.0.0.1:9": {"sent": 2, "dropped": 5},
                         "127.0.0.1:10": {"sent": 5, "dropped": 0}}
    assert len(caplog.records) == 1 and "127.0.0.1:9" in caplog.records[0].getMessage()
    with pytest.raises(ValueError):
        out.send_state("tempo", {"bpm": 100.0})
    assert out.stats["127.0.0.1:10"]["sent"] == 5  # nothing sent for a malformed payload
    for sock in real:
        sock.close()


def test_refresh_resends_the_latest_state_but_not_the_plan() -> None:
    out = OscOut([("127.0.0.1", 9)])
    sent: list[bytes] = []
    out._dests[0].sock.close()
    out._dests[0].sock = type("S", (), {
        "send": lambda self, d: sent.append(d), "close": lambda self: None})()
    out.send_state("key", {"key": "C major", "chord": "C"})
    out.send_state("key", {"key": "A minor", "chord": "Am"})
    out.send_state("plan", {"mode": "solo", "t": 0, "notes": []})
    sent.clear()
    out.refresh()
    assert [d.split(b"\0")[0] for d in sent] == [b"/stage-agent/key"]
    assert b"A minor" in sent[0]
    out.close()


def test_a_destination_without_a_route_is_connected_again_on_each_send() -> None:
    class NoRouteYet(FailingSocket):
        def __init__(self) -> None:
            super().__init__([])
            self.connects = 0

        def connect(self, addr: tuple[str, int]) -> None:
            self.connects += 1
            if self.connects == 1:
                raise OSError(errno.ENETUNREACH, "Network is unreachable")

    out = OscOut([("127.0.0.1", 9)])
    out._dests[0].sock.close()
    sock = out._dests[0].sock = NoRouteYet()  # type: ignore[assignment]
    out._dests[0].connected = False  # as when the stage network was down at start-up
    for _ in range(3):
        out.send_state("key", {"key": None, "chord": None})
    assert out.stats == {"127.0.0.1:9": {"sent": 2, "dropped": 1}}
    assert sock.connects == 2
