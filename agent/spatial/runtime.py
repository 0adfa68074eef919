"""Spatialization on stage: the engine follows the performance, a timer pans and sends frames.

Live: the engine taps the event log (so it sees exactly what a replay of the log would show it);
every 1/tick_hz seconds (absolute deadlines, never accumulated sleeps) the timer asks for a
frame, pans it when a destination wants per-speaker gains, and sends it (change-only, with each
destination's rate cap and refresh). A panic in the log mutes every object at once. After a run,
`picture` draws the voices' paths from the log's records alone (`picture_of` from those a
Session kept as they came).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from agent.clock import Clock
from agent.config import Config
from agent.io.osc_spatial import Destination, SpatialSender
from agent.spatial.choreography import direction
from agent.spatial.engine import PathRecords, SpatialEngine
from agent.spatial.importers import import_layout
from agent.spatial.layout import Layout
from agent.spatial.panning import Vbap, dbap_gains
from agent.spatial.picture import draw
from agent.stats import Samples
from agent.visuals.state import messages as state_messages

log = logging.getLogger(__name__)
PICTURE_NAME = "trajectories.png"
DEFAULT_RADIUS_M = 5.0  # SATIE distances, when the layout does not give metres


def floor_of(layout: Layout) -> float:
    """How low a voice may go: a dome's lowest speaker; anywhere on a full sphere or a ring."""
    if layout.needs_nadir():
        return float(min(s.xyz[2] for s in layout.panning_speakers()))
    return -1.0


def make_engine(config: Config, layout: Layout) -> SpatialEngine:
    sp = config.spatial
    return SpatialEngine(
        floor_z=floor_of(layout),
        players={name: direction(az, el) for name, (az, el) in sp.player_positions().items()},
        style=sp.style, section_styles={s.name: s.spatial for s in config.sections if s.spatial},
        seed=config.performance.seed, output=config.agent.outputs[0])


def picture(config: Config, records: Iterable[dict[str, Any]], out_dir: Path) -> Path | None:
    """The voices' trajectories over a recorded run (None without a layout)."""
    kept = PathRecords()
    for r in records:
        kept.add(r)
    return picture_of(config, kept, out_dir)


def picture_of(config: Config, kept: PathRecords, out_dir: Path) -> Path | None:
    """picture, of a run's records as a PathRecords gathered them (a Session, as they came)."""
    if not config.spatial.layout:
        return None
    layout = import_layout(config.layout_path(), subwoofers=config.spatial.subwoofers)
    paths = kept.sample(make_engine(config, layout), config.spatial.tick_hz)
    speakers = [s.xyz for s in layout.panning_speakers()]
    times = [t for t, _ in next(iter(paths.values()), [])[:2]]
    apart_ns = times[1] - times[0] if len(times) == 2 else 0
    sparse = apart_ns > round(1e9 / config.spatial.tick_hz)
    return draw(paths, speakers, out_dir / PICTURE_NAME,
                f"{config.performance.name}: the agent's voices on {layout.name}",
                apart_ns / 1e9 if sparse else None)


class SpatialRuntime:
    def __init__(self, config: Config, clock: Clock) -> None:
        """Loads the layout (LayoutError, exit 2, before anything starts) and opens the
        destinations' sockets."""
        self.layout = import_layout(config.layout_path(), subwoofers=config.spatial.subwoofers)
        self.engine = make_engine(config, self.layout)
        self.clock = clock
        self.period_ns = round(1e9 / config.spatial.tick_hz)
        self.vbap = Vbap(self.layout.directions())
        self.dbap = config.spatial.panning == "dbap"
        self.speakers = np.array([s.xyz for s in self.layout.panning_speakers()])
        self.wants_gains = any(d.protocol == "gains" for d in config.spatial.destinations)
        radius = max((s.distance_m or 0.0 for s in self.layout.panning_speakers()),
                      default=0.0) or DEFAULT_RADIUS_M
        self.sender = SpatialSender([
            Destination(d.host, d.port, d.protocol, d.max_rate_hz, d.refresh_hz, aed=d.aed,
                        coords=d.coords, rig_radius_m=radius)
            for d in config.spatial.destinations])
        self.tick_ns = Samples()  # the cost of each tick, for the summary

    def follow(self, taps: list[Any]) -> None:
        """Follow a session's event log from now on."""
        taps.append(self._tap)

    def _tap(self, record: dict[str, Any]) -> None:
        self.engine.record(record)
        if record["k"] == "ctl" and record.get("what") in ("panic", "stop"):
            self.sender.panic()

    def state(self, kind: str, payload: dict[str, Any]) -> None:
        """The agent's plan goes to the visuals destinations too (the state stream's encoding),
        so one visuals patch sees the voices and what they are about to play."""
        if kind == "plan":
            for message in state_messages(kind, payload):
                self.sender.event(message.dgram)

    def tick(self, now_ns: int) -> None:
        frame = self.engine.frame(now_ns)
        gains = None
        if self.wants_gains:
            where = np.array([(v.x, v.y, v.z) for v in frame.voices])
            # VBAP places by direction only; DBAP by position (a voice inside the rig is
            # spread over the speakers near it, with no sweet spot).
            gains = dbap_gains(where, self.speakers) if self.dbap else self.vbap.gains(where)
        self.sender.send(frame, gains)
        onsets, scenes = self.engine.drain()
        for onset in onsets:
            self.sender.event_onset(onset.voice, onset.pitch, onset.velocity, *onset.where)
        for scene in scenes:
            self.sender.event_scene(scene)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick on absolute deadlines until stopped; a late tick is not made up twice."""
        next_ns = self.clock.now_ns()
        while not stop.is_set():
            start = self.clock.now_ns()
            try:
                self.tick(start)
            except Exception:  # the music goes on without the rig rather than stop
                log.exception("spatial tick failed")
            self.tick_ns.add(self.clock.now_ns() - start)
            next_ns = max(next_ns + self.period_ns, self.clock.now_ns())
            await asyncio.sleep(max(next_ns - self.clock.now_ns(), 0) / 1e9)

    def close(self) -> None:
        self.sender.close()
