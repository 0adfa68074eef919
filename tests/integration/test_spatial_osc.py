"""The spatial stream with a real peer written by others: liblo's `oscdump` receives 64 ADM
objects (split into bundles of at most 1400 bytes) and the visuals stream. Nothing sleeps
blindly: the fixture polls oscdump with a probe until it answers, and each wait reads lines."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from agent.io.osc_spatial import Destination, SpatialSender
from agent.spatial.adapters import adm, bundles
from agent.spatial.frame import Frame, Voice

from .oscpeer import LOCAL, oscdump_process

pytestmark = pytest.mark.skipif(
    not shutil.which("oscdump"),
    reason="needs oscdump (Debian package liblo-tools; scripts/setup.sh installs it)")


class Dump:
    """`oscdump -L PORT`: its lines, without the timetag it prints first."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    async def lines(self, n: int, timeout_s: float = 5.0) -> list[str]:
        assert self.proc.stdout is not None
        out: list[str] = []
        async with asyncio.timeout(timeout_s):
            while len(out) < n:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"oscdump ended after {out}")
                text = raw.decode().rstrip("\n").partition(" ")[2].rstrip()
                if not text.startswith("/probe"):  # late echoes of the readiness probe
                    out.append(text)
        return out


@pytest.fixture
async def dump() -> AsyncIterator[Dump]:
    async with oscdump_process() as (proc, port):
        yield Dump(proc, port)


def voice(n: int) -> Voice:
    """64 distinct places, exact in float32 (so oscdump's 6 decimals can be compared)."""
    return Voice(n, f"voice-{n}", (n % 8) / 8 - 0.5, (n // 8) / 8 - 0.5, n / 128,
                 gain=1 - n / 256)


async def test_64_adm_objects_arrive_once_each_in_bundles_of_1400_bytes(dump: Dump) -> None:
    voices = tuple(voice(n) for n in range(1, 65))
    packets = bundles(adm(voices, full=True))
    assert len(packets) > 1 and max(len(p) for p in packets) <= 1400
    out = SpatialSender([Destination(LOCAL, dump.port, "adm")])
    try:
        out.send(Frame(0, 0, voices))  # the first tick is a refresh: names too
        lines = await dump.lines(4 * 64)
        xyz = [line for line in lines if line.split(" ")[0].endswith("/xyz")]
        assert sorted(xyz) == sorted(
            f"/adm/obj/{v.number}/xyz fff {v.x:.6f} {v.y:.6f} {v.z:.6f}" for v in voices)
        assert len(set(xyz)) == 64  # each exactly once
        assert [line for line in lines if "/obj/7/" in line] == [
            '/adm/obj/7/name s "voice-7"', "/adm/obj/7/xyz fff 0.375000 -0.500000 0.054688",
            "/adm/obj/7/gain f 0.972656", "/adm/obj/7/mute i 0"]
        assert out.stats[f"{LOCAL}:{dump.port}/adm"]["sent"] == len(packets)
        # Next tick, one voice moved: only it goes out.
        moved = (*voices[:9], Voice(10, "voice-10", 0.25, 0.25, 0.25, voices[9].gain),
                 *voices[10:])
        out.send(Frame(1, 20_000_000, moved))
        assert await dump.lines(3) == ["/adm/obj/10/xyz fff 0.250000 0.250000 0.250000",
                                       "/adm/obj/10/gain f 0.960938", "/adm/obj/10/mute i 0"]
        assert out.stats[f"{LOCAL}:{dump.port}/adm"]["dropped"] == 0
    finally:
        out.close()


async def test_the_visuals_stream(dump: Dump) -> None:
    out = SpatialSender([Destination(LOCAL, dump.port, "visuals")])
    a, b = Voice(1, "lead", -0.5, 0.5, 0.25), Voice(2, "bass", 0.0, 1.0, 0.0, 0.5, True)
    try:
        out.send(Frame(41, 0, (a, b)))
        assert await dump.lines(4) == [
            "/stage-agent/voice/alive ii 1 2",
            '/stage-agent/voice/set isffffi 1 "lead" -0.500000 0.500000 0.250000 1.000000 0',
            '/stage-agent/voice/set isffffi 2 "bass" 0.000000 1.000000 0.000000 0.500000 1',
            "/stage-agent/voice/frame i 41"]
        out.send(Frame(42, 20_000_000, (a,)))  # bass left: alive says so
        out.event_onset(1, 67, 96, -0.5, 0.5, 0.25)
        out.event_scene("canon")
        assert await dump.lines(4) == [
            "/stage-agent/voice/alive i 1", "/stage-agent/voice/frame i 42",
            "/stage-agent/voice/onset iiifff 1 67 96 -0.500000 0.500000 0.250000",
            '/stage-agent/scene s "canon"']
        out.panic()
        assert await dump.lines(3) == [
            "/stage-agent/voice/alive i 1",
            '/stage-agent/voice/set isffffi 1 "lead" -0.500000 0.500000 0.250000 1.000000 1',
            "/stage-agent/voice/frame i 42"]
    finally:
        out.close()
