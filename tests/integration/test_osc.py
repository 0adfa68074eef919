"""OSC with real peers written by others: liblo's `oscdump` receives the state stream, liblo's
`oscsend` sends commands. Hostile traffic (garbage, oversize, strangers, floods) comes from
plain Python sockets. Nothing here sleeps blindly: each wait polls for what it waits for."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from agent.io.osc import OscControlIn, OscOut
from agent.policy.commands import Command
from agent.policy.controls import Controls

from .oscpeer import LOCAL, free_udp_port, oscdump_process

pytestmark = pytest.mark.skipif(
    not (shutil.which("oscdump") and shutil.which("oscsend")),
    reason="needs oscdump and oscsend (Debian package liblo-tools; scripts/setup.sh installs it)")

P = "/stage-agent/cmd/"


def closed_udp_port() -> int:
    return free_udp_port()  # bound, then closed: nobody listens there


def osc(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Oscdump:
    """`oscdump -L PORT`, its lines without the timetag it prints first."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    async def line(self, timeout_s: float = 5.0) -> str:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
            if not raw:
                raise AssertionError("oscdump ended")
            _timetag, _sp, text = raw.decode().rstrip("\n").partition(" ")
            if not text.startswith("/probe"):  # late echoes of the readiness probe
                return text.rstrip()

    async def lines(self, n: int) -> list[str]:
        return [await self.line() for _ in range(n)]


@pytest.fixture
async def oscdump() -> AsyncIterator[Oscdump]:
    async with oscdump_process() as (proc, port):
        yield Oscdump(proc, port)


async def test_oscdump_receives_the_state_stream(oscdump: Oscdump) -> None:
    out = OscOut([(LOCAL, oscdump.port)])
    try:
        out.send_state("tempo", {"bpm": 120.0, "confidence": 0.9, "source": "onsets"})
        out.send_state("key", {"key": "G major", "chord": None})
        out.send_state("mode", {"mode": "accompany", "section": "solo"})
        out.send_state("section", {"name": "solo", "index": 1, "bar": 9})
        out.send_state("roles", {"melody": "soloing", "bass": "resting"})
        out.send_state("controls", Controls(styles=(("bach", 1.0),)).to_dict())
        out.send_state("plan", {"mode": "accompany", "t": 7_000_000_000,
                                "notes": [[0, 60, 90, 250, 1], [500, 64, 70, 1000, 0]]})
        assert await oscdump.lines(16) == [
            '/stage-agent/tempo ffs 120.000000 0.900000 "onsets"',
            '/stage-agent/key ss "G major" ""',
            '/stage-agent/mode ss "accompany" "solo"',
            '/stage-agent/section sii "solo" 1 9',
            '/stage-agent/roles ssss "melody" "soloing" "bass" "resting"',
            '/stage-agent/controls/mode s "call-response"',
            "/stage-agent/controls/temperature f 0.900000",
            "/stage-agent/controls/density f 1.000000",
            "/stage-agent/controls/register i 0",
            "/stage-agent/controls/dynamics f 0.000000",
            "/stage-agent/controls/valence f 0.000000",
            "/stage-agent/controls/arousal f 0.000000",
            '/stage-agent/controls/styles sf "bach" 1.000000',
            "/stage-agent/controls/memory_weight f 0.000000",
            "/stage-agent/controls/mute i 0",
            '/stage-agent/plan siiifiififiifi "accompany" 7000 0 1 '
            "0.000000 60 90 0.250000 1 0.500000 64 70 1.000000 0",
        ]
        # 120 notes: three datagrams of at most 1400 bytes, every note once, in order
        notes = [[k * 10, 40 + k % 40, 1 + k, 100 + k, k % 2] for k in range(120)]
        out.send_state("plan", {"mode": "solo", "t": 0, "notes": notes})
        got: list[list[int]] = []
        for part, line in enumerate(await oscdump.lines(3)):
            address, tags, *args = line.split(" ")
            assert address == "/stage-agent/plan" and args[:4] == ['"solo"', "0", str(part), "3"]
            assert tags == "siii" + "fiifi" * ((len(args) - 4) // 5)
            for k in range(4, len(args), 5):
                got.append([round(float(args[k]) * 1000), int(args[k + 1]), int(args[k + 2]),
                            round(float(args[k + 3]) * 1000), int(args[k + 4])])
        assert got == notes
        assert out.stats == {f"{LOCAL}:{oscdump.port}": {"sent": 19, "dropped": 0}}
    finally:
        out.close()


async def test_a_closed_destination_counts_drops_and_the_others_still_receive(
        oscdump: Oscdump, caplog: pytest.LogCaptureFixture) -> None:
    dead = closed_udp_port()
    out = OscOut([(LOCAL, dead), (LOCAL, oscdump.port)])
    try:
        # The refusal (ICMP port unreachable) of one datagram shows on a later send: poll.
        async with asyncio.timeout(5):
            k = 0
            while out.stats[f"{LOCAL}:{dead}"]["dropped"] < 3:
                out.send_state("section", {"name": "a", "index": k, "bar": 0})
                k += 1
                await asyncio.sleep(0.005)
        lines = await oscdump.lines(k)
        assert lines == [f'/stage-agent/section sii "a" {j} 0' for j in range(k)]
        assert out.stats[f"{LOCAL}:{oscdump.port}"] == {"sent": k, "dropped": 0}
        warnings = [r for r in caplog.records if r.name == "agent.io.osc"]
        assert len(warnings) == 1 and f"{LOCAL}:{dead}" in warnings[0].getMessage()
    finally:
        out.close()


async def oscsend(port: int, address: str, types: str = "", *values: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "oscsend", LOCAL, str(port), address, *([types, *values] if types else []))
    assert await proc.wait() == 0


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def control() -> AsyncIterator[tuple[OscControlIn, list[Command]]]:
    got: list[Command] = []
    c = OscControlIn(LOCAL, 0, [LOCAL, "127.0.0.3"], ["intro", "solo"], got.append)
    await c.start()
    yield c, got
    c.close()


async def test_oscsend_commands_arrive_parsed(
        control: tuple[OscControlIn, list[Command]]) -> None:
    c, got = control
    port = c.address[1]
    await oscsend(port, P + "cue", "s", "intro")
    await oscsend(port, P + "cue")
    await oscsend(port, P + "mode", "s", "accompany")
    await oscsend(port, P + "controls", "sfsisT", "density", "1.5", "register", "-5", "mute")
    await oscsend(port, P + "controls", "s", '{"styles": {"bach": 2, "folk": 1}, "id": "c1"}')
    await oscsend(port, P + "panic")
    await until(lambda: len(got) == 6)
    assert got == [
        Command("cue", {"section": "intro"}),
        Command("cue", {"section": "next"}),
        Command("mode", {"mode": "accompany"}),
        Command("controls", {"density": 1.5, "register": -5, "mute": True}),
        Command("controls", {"styles": {"bach": 2.0, "folk": 1.0}}),
        Command("panic", {}),
    ]


async def test_hostile_traffic_is_refused_and_counted_and_commands_still_work(
        control: tuple[OscControlIn, list[Command]]) -> None:
    c, got = control
    port = c.address[1]
    far_future = OscBundleBuilder(int(time.time()) + 3600)  # an hour ahead: must not be waited on
    far_future.add_content(OscMessageBuilder(P + "mute").build())
    nested = b"".join(b"#bundle\0" + bytes(8) + struct.pack(">i", 8000 - 20 * k)
                      for k in range(400))  # 400 levels deep, then nothing: truncated
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        for data in (b"\xffgarbage", b"", b"/stage-agent/cmd/cue", nested,
                     osc(P + "cue", "x" * 9000), far_future.build().dgram):
            s.sendto(data, (LOCAL, port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))  # any 127/8 address is this machine's loopback
        stranger.sendto(osc(P + "panic"), (LOCAL, port))
    await oscsend(port, P + "cue", "s", "nowhere")
    await oscsend(port, P + "controls", "sf", "density", "99")
    await oscsend(port, P + "dance")
    await oscsend(port, P + "controls", "s", "{bad json")
    await oscsend(port, "/elsewhere")
    await until(lambda: c.stats["packets"] == 12)
    assert got == [Command("mute", {})]  # the far-future bundle, handled at once
    assert {k: v for k, v in c.stats.items() if v} == {
        "packets": 12, "commands": 1, "refused_decode": 4, "refused_size": 1,
        "refused_sender": 1, "bad_commands": 5}

    # A flood from another allowed sender: its bucket empties, 127.0.0.1's does not.
    got.clear()
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.bind(("127.0.0.3", 0))
        packet = osc(P + "unmute")
        for _ in range(5000):
            flood.sendto(packet, (LOCAL, port))
    # The kernel drops what overflows the receive buffer; a command lost to that is sent again.
    async with asyncio.timeout(5):
        while Command("cue", {"section": "solo"}) not in got:
            await oscsend(port, P + "cue", "s", "solo")
            await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    flooded = [g for g in got if g.verb == "unmute"]
    others = [g for g in got if g.verb != "unmute"]
    assert others and all(g == Command("cue", {"section": "solo"}) for g in others)
    assert 0 < len(flooded) <= 200 + 200 * elapsed + 1
    assert c.stats["refused_rate"] > 0
    assert c.stats["commands"] == 1 + len(got)
