"""The spatial runtime's tick: a frame panned for a "gains" destination (VBAP or DBAP) and sent
as OSC to a socket, decoded here with python-osc (not our encoder)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from agent import config as config_mod
from agent.clock import ManualClock
from agent.spatial.panning import Vbap, dbap_gains
from agent.spatial.runtime import PICTURE_NAME, SpatialRuntime, picture

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    yield s
    s.close()


def runtime(port: int, panning: str) -> SpatialRuntime:
    cfg = config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "spatial": {"layout": str(LAYOUTS / "quad.toml"), "panning": panning,
                    "destinations": [{"host": "127.0.0.1", "port": port,
                                      "protocol": "gains"}]},
    })
    return SpatialRuntime(cfg, ManualClock())


def received_gains(s: socket.socket) -> dict[str, list[float]]:
    bundle = OscBundle(s.recv(2048))
    return {m.address: list(m.params) for m in bundle}


@pytest.mark.parametrize("panning", ["vbap", "dbap"])
def test_a_tick_sends_each_voices_gains_on_every_speaker(receiver: socket.socket,
                                                         panning: str) -> None:
    rt = runtime(receiver.getsockname()[1], panning)
    rt.tick(1_000_000_000)
    got = received_gains(receiver)
    frame = rt.engine.frame(1_000_000_000)
    where = np.array([(v.x, v.y, v.z) for v in frame.voices])
    speakers = np.array([s.xyz for s in rt.layout.panning_speakers()])
    expected = (dbap_gains(where, speakers) if panning == "dbap"
                else Vbap(rt.layout.directions()).gains(where))
    assert sorted(got) == ["/stage-agent/gains/1", "/stage-agent/gains/2"]
    for i in range(2):
        row = got[f"/stage-agent/gains/{i + 1}"]
        assert row == pytest.approx(expected[i].astype(np.float32).tolist(), abs=1e-7)
        assert len(row) == 4 and sum(g * g for g in row) == pytest.approx(1.0, abs=1e-5)
    rt.close()


def test_dbap_is_refused_unless_named_right() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"spatial\.panning: must be vbap or dbap"):
        config_mod.from_dict({"players": [{"name": "k", "port": "virtual:k"}],
                              "spatial": {"panning": "wfs"}})


def test_the_picture_of_a_four_hour_run_is_drawn(tmp_path: Path) -> None:
    """From at most MAX_SAMPLES a voice (tests/unit/test_trajectory.py), shown as dots: lines
    between samples 1.44 s apart would cut across the room where no voice went."""
    cfg = config_mod.from_dict({"players": [{"name": "keys", "port": "virtual:keys"}],
                                "spatial": {"layout": str(LAYOUTS / "quad.toml")}})
    hours = 4 * 3600 * 1_000_000_000
    records = [{"t": 0, "k": "in"}, {"t": 10**9, "k": "decision", "what": "solo",
                                     "plan": [[10**9, 60, 80, 10**9]]}, {"t": hours, "k": "in"}]
    assert picture(cfg, records, tmp_path) == tmp_path / PICTURE_NAME
    assert (tmp_path / PICTURE_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

