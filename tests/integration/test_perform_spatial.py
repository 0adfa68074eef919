"""`stage-agent perform` with a speaker layout: the agent's voices reach a real OSC peer (liblo's
`oscdump`) as ADM-OSC objects while it plays on real JACK ports, and stopping mutes them."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.io.jack_server import JackServer

from .broker import free_port
from .jackpeer import CALL_RESPONSE, Peer, running_agent, write_piece

pytestmark = [pytest.mark.jack, pytest.mark.skipif(
    shutil.which("oscdump") is None, reason="needs oscdump (liblo-tools; scripts/setup.sh)")]
LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"
PIECE = CALL_RESPONSE + """[spatial]
layout = "{layout}"
players = {{ keys = [60.0, 0.0] }}
[[spatial.destinations]]
host = "127.0.0.1"
port = {port}
protocol = "adm"
refresh_hz = 2.0
[[spatial.destinations]]
host = "127.0.0.1"
port = {port}
protocol = "visuals"
"""


class Dump:
    """oscdump's lines, collected by a thread (it prints one line per message)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.split(" ", 1)[1].strip() if " " in line else line.strip())

    def wait_for(self, predicate: object, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if predicate(line)]  # type: ignore[operator]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"not received within {timeout} s; got {self.lines[-10:]}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, Dump]]:
    name = "spatial"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    port = free_port()
    dump = Dump(port)
    config = write_piece(tmp_path, PIECE, name, layout=LAYOUTS / "hemisphere-16.toml", port=port)
    yield peer, config, dump
    dump.close()
    peer.close()


def test_the_voices_reach_an_adm_renderer_and_stopping_mutes_them(
        stage: tuple[Peer, Path, Dump], jack: dict[str, str]) -> None:
    peer, config, dump = stage
    with running_agent(config, jack, peer) as agent:
        # The full state arrives at once: both voices named, placed and unmuted.
        dump.wait_for(lambda s: s == '/adm/obj/1/name s "lead"')
        dump.wait_for(lambda s: s == '/adm/obj/2/name s "comp"')
        for p in (60, 62, 64, 65):
            peer.send(0x90, p, 90)
            time.sleep(0.08)
            peer.send(0x80, p, 0)
        peer.expect(1, timeout=10)  # the answer has started
        # The answer turns the lead toward the caller at +60 degrees: x < 0 (left), y > 0.
        def toward_caller(line: str) -> bool:
            if not line.startswith("/adm/obj/1/xyz fff"):
                return False
            x, y, _z = (float(v) for v in line.split()[2:])
            return x < -0.3 and y > 0 and abs(-x / y - 3 ** 0.5) < 0.2
        dump.wait_for(toward_caller)
        # The visuals stream on the same port: every voice each tick, the onsets, the plan.
        dump.wait_for(lambda s: s.startswith('/stage-agent/voice/set isffffi 1 "lead" '))
        dump.wait_for(lambda s: s.startswith("/stage-agent/voice/onset iiifff 1 "))
        dump.wait_for(lambda s: s.startswith('/stage-agent/plan siii "call-response" '))
        assert agent.wait() == 0, agent.err
    muted = dump.wait_for(lambda s: s in ("/adm/obj/1/mute i 1", "/adm/obj/2/mute i 1"))
    assert set(muted) == {"/adm/obj/1/mute i 1", "/adm/obj/2/mute i 1"}
    picture = config.parent / agent.recording / "trajectories.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the summary's picture
