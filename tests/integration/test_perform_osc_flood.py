"""An OSC flood at 50,000 messages a second at the agent's command port while a player plays:
the music goes on at the real JACK port, and a real command (liblo's `oscsend`) still works."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import midi
from agent.io.jack_server import JackServer

from .broker import free_port
from .jackpeer import STAGE_HEAD, Peer, running_agent

pytestmark = [pytest.mark.jack, pytest.mark.skipif(
    shutil.which("oscsend") is None, reason="needs oscsend (liblo-tools; scripts/setup.sh)")]
PIECE = STAGE_HEAD + """
[agent]
mode = "harmony"
outputs = ["{synth}"]
channel = 2
[osc]
control = "127.0.0.1:{port}"
"""
RATE = 50_000  # messages a second
SECONDS = 1.0


def flood(port: int, done: threading.Event) -> int:
    """Well-formed but refused commands, garbage and oversize packets, paced at RATE."""
    bad_mode = b"/stage-agent/cmd/mode\x00\x00\x00,s\x00\x00nonsense\x00\x00\x00\x00"
    packets = [bad_mode, b"\xff" * 37, b"x" * 9000]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            for _ in range(500):  # a burst, then catch up with the clock
                # A full send buffer drops a packet: the flood is the point, not each packet.
                with contextlib.suppress(OSError):
                    s.sendto(packets[sent % 3], ("127.0.0.1", port))
                sent += 1
            while sent / RATE > time.monotonic() - start:
                time.sleep(0.001)
    done.set()
    return sent


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, int]]:
    name = "flood"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    port = free_port()
    config = tmp_path / "performance.toml"
    config.write_text(PIECE.format(name=name, player=f"{name}-keys", synth=f"{name}-synth",
                                   port=port))
    yield peer, config, port
    peer.close()


def test_the_agent_plays_on_through_an_osc_flood(stage: tuple[Peer, Path, int],
                                                 jack: dict[str, str]) -> None:
    peer, config, port = stage
    with running_agent(config, jack, peer) as agent:
        done = threading.Event()
        result: list[int] = []
        sender = threading.Thread(target=lambda: result.append(flood(port, done)))
        sender.start()
        played = 0
        while not done.is_set():  # the player plays through the flood
            peer.send(0x90, 60, 90)
            (_, answer), = peer.expect(1)  # its harmony, at once, flood or not
            assert answer == [0x91, 55, 90]
            played += 1
            peer.send(0x80, 60, 0)
            assert midi.is_note_off(bytes(peer.expect(1)[0][1]))
        sender.join()
        assert result[0] >= RATE * SECONDS * 0.9 and played >= 5
        # A real command after the flood still acts: mute, and the harmony stops.
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/stage-agent/cmd/mute"], check=True)
        deadline = time.monotonic() + 10
        muted = False
        while not muted and time.monotonic() < deadline:
            peer.send(0x90, 64, 90)
            muted = not any(midi.is_note_on(bytes(m)) for _, m in peer.drain(settle=0.2))
            peer.send(0x80, 64, 0)
        assert muted, agent.err[-2000:]
        assert agent.wait() == 0, agent.err[-2000:]
    assert "refused" in agent.err  # the flood was noticed and said (at most once a second)
