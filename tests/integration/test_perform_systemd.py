"""`stage-agent perform` under systemd's notify protocol, with a real datagram socket standing in
for systemd: READY once ports are open, watchdog pings while it runs, STOPPING at the end."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.io.jack_server import JackServer

from .jackpeer import STAGE_HEAD, Peer, running_agent

pytestmark = pytest.mark.jack
HARMONY = STAGE_HEAD + """
[agent]
mode = "harmony"
outputs = ["{synth}"]
channel = 2
"""


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, socket.socket]]:
    name = "notify"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    config = tmp_path / "performance.toml"
    config.write_text(HARMONY.format(name=name, player=f"{name}-keys", synth=f"{name}-synth"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify.sock"))
    s.settimeout(10.0)
    yield peer, config, s
    s.close()
    peer.close()


def test_ready_then_watchdog_pings_then_stopping(stage: tuple[Peer, Path, socket.socket],
                                                 jack: dict[str, str]) -> None:
    peer, config, s = stage
    env = {**jack, "NOTIFY_SOCKET": s.getsockname(), "WATCHDOG_USEC": "400000"}
    with running_agent(config, env, peer) as agent:
        ready = s.recv(512).decode()
        assert ready.startswith("READY=1\nSTATUS=performing notify; scheduler normal"), ready
        pings = []
        start = time.monotonic()
        while len(pings) < 3:  # every 200 ms: half the watchdog interval
            pings.append((s.recv(64), time.monotonic() - start))
        assert {p for p, _ in pings} == {b"WATCHDOG=1"}
        peer.send(0x90, 60, 90)  # and it plays meanwhile
        assert peer.expect(1)[0][1][:2] == [0x91, 55]
        assert agent.wait() == 0, agent.err
    rest = []
    s.settimeout(1.0)
    try:
        while True:
            rest.append(s.recv(64))
    except TimeoutError:
        pass
    assert b"STOPPING=1\nSTATUS=stopping" in rest
