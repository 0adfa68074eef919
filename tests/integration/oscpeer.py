"""liblo's `oscdump` as a real OSC peer for the integration tests: started on a free UDP port
and waited for with a probe (never a blind sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

LOCAL = "127.0.0.1"
PROBE = b"/probe\0\0,\0\0\0"  # an OSC message without arguments, written out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def oscdump_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """`oscdump -L PORT` on a free port, once it listens: (the process, its port); killed on
    exit. Its stdout gives its lines; late echoes of the probe may still come (skip /probe)."""
    port = free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        "oscdump", "-L", str(port), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        # Listening once it prints a probe: send one every 20 ms until it does.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            async with asyncio.timeout(10):
                while True:
                    probe.sendto(PROBE, (LOCAL, port))
                    try:
                        raw = await asyncio.wait_for(proc.stdout.readline(), 0.02)
                    except TimeoutError:
                        continue
                    assert b"/probe" in raw, raw
                    break
        yield proc, port
    finally:
        proc.kill()
        await proc.wait()
