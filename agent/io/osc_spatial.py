"""The voices' positions out to spatial renderers and visuals: rate-capped, change-only OSC.

`SpatialSender(destinations)` sends each tick's Frame (agent/spatial/frame.py) to every
destination in its protocol (agent/spatial/adapters.py, agent/visuals/spatial.py):

- rate cap, per destination: at most `max_rate_hz` ticks a second (ADM-OSC asks for at most
  50), on a regular grid of frame times (frame.time_ns, so replays and tests decide exactly as
  the stage does); a tick between two slots is skipped for that destination (counted as
  "capped") and its news goes with the next slot: a skipped tick is never queued.
- change-only: a voice goes out when any value differs by more than TOLERANCE from what this
  destination last got (compared with what was sent, so a slow drift still goes out), or its
  name, mute or per-speaker gains changed. A voice gone from the frame is muted once (ADM mute,
  SpatGRIS clr, SATIE at MUTE_DB, zero gains; visuals see it leave `alive`).
- refresh: every 1/`refresh_hz` s (and on the first tick) everything goes, names too: UDP loses
  packets and a renderer restarted mid-show must converge. 0 = only the first tick.
- packets: OSC bundles of at most 1400 bytes, timetag "immediately": renderers such as SpatGRIS
  ignore timetags, so the time that counts is when this sends, i.e. the tick.

Never blocks, never raises on the network (agent/io/udp.py: one connected non-blocking socket
per destination; drops counted per destination, the first logged once). When a send fails
here, the voices of that tick are sent again on the next slot rather than waiting for a change.
An adapter error (e.g. a voice number SpatGRIS cannot take) is logged once and counted for its
destination; the others still get the tick. `panic()` mutes every voice a destination knows,
at once, ignoring the caps; it never mutes by wildcard (`/adm/obj/*/mute`), which would also
silence objects a renderer takes from other senders (the band's). Not thread-safe: call
everything from the loop that ticks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.clock import NS_PER_S
from agent.io.osc import OscError
from agent.io.udp import UdpError, UdpPeer, open_peer
from agent.spatial import adapters
from agent.spatial.frame import Frame, Voice
from agent.visuals import spatial as visual

log = logging.getLogger(__name__)

PROTOCOLS = ("adm", "spatgris", "satie", "gains", "visuals", "visuals-floats")
TOLERANCE = 1e-4  # normalised units / linear gain: far below what a listener hears


@dataclass(frozen=True, slots=True)
class Destination:
    """One renderer or visuals machine. `aed`: ADM also sends /aed; `coords`: SpatGRIS "car" or
    "deg"; `rig_radius_m`: SATIE's metres at distance 1."""

    host: str
    port: int
    protocol: str
    max_rate_hz: float = 50.0
    refresh_hz: float = 1.0
    aed: bool = False
    coords: str = "car"
    rig_radius_m: float = 5.0

    def __post_init__(self) -> None:
        where = f"OSC spatial destination {self.host}:{self.port}"
        if self.protocol not in PROTOCOLS:
            raise OscError(f"{where}: protocol {self.protocol!r} (one of {', '.join(PROTOCOLS)})")
        if isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise OscError(f"{where}: port must be 1..65535")
        if not self.max_rate_hz > 0 or not 0 <= self.refresh_hz < math.inf:
            raise OscError(f"{where}: max_rate_hz {self.max_rate_hz} must be > 0 and "
                           f"refresh_hz {self.refresh_hz} finite and >= 0")
        if self.coords not in adapters.SPATGRIS_COORDS:
            raise OscError(f"{where}: coords {self.coords!r} (car or deg)")
        if not 0 < self.rig_radius_m < math.inf:
            raise OscError(f"{where}: rig_radius_m {self.rig_radius_m} must be > 0")

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}/{self.protocol}"


@dataclass
class _Dest:
    spec: Destination
    peer: UdpPeer
    period_ns: int
    refresh_ns: int | None
    next_ns: int | None = None  # the next slot of the rate cap's grid
    refreshed_ns: int | None = None
    sent: dict[int, Voice] = field(default_factory=dict)  # by number: what this one last got
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # gains: the rows it last got
    speakers: int = 0  # gains protocol: the last matrix's width
    ticks: int = 0
    capped: int = 0
    errors: int = 0
    logged: bool = False


class SpatialSender:
    def __init__(self, destinations: Sequence[Destination]) -> None:
        self._dests: list[_Dest] = []
        self._frame: Frame | None = None  # the last frame given, for panic()
        labels = [d.label for d in destinations]
        if len(set(labels)) != len(labels):
            raise OscError(f"OSC spatial destinations: listed twice: {labels}")
        try:
            for spec in destinations:
                period = 0 if spec.max_rate_hz == math.inf else round(NS_PER_S / spec.max_rate_hz)
                refresh = round(NS_PER_S / spec.refresh_hz) if spec.refresh_hz > 0 else None
                self._dests.append(_Dest(spec, open_peer(spec.host, spec.port, log), period,
                                         refresh))
        except UdpError as e:
            self.close()
            raise OscError(str(e)) from None

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per destination "host:port/protocol": datagrams sent and dropped (as OscOut counts
        them), ticks sent, ticks skipped by the rate cap, adapter errors."""
        return {d.spec.label: {"sent": d.peer.sent, "dropped": d.peer.dropped, "ticks": d.ticks,
                               "capped": d.capped, "errors": d.errors} for d in self._dests}

    def send(self, frame: Frame, gains: np.ndarray | Sequence[Sequence[float]] | None = None
             ) -> None:
        """One tick. `gains`: the panner's (voices, speakers) matrix, rows in frame.voices'
        order, for "gains" destinations (skipped while it is None). ValueError (nothing sent)
        for a matrix of the wrong shape: a bug of the caller, not of the network."""
        rows = None
        if gains is not None:
            rows = np.asarray(gains, dtype=np.float64)
            if rows.ndim != 2 or rows.shape[0] != len(frame.voices):
                raise ValueError(f"gains: shape {rows.shape} for {len(frame.voices)} voices")
        self._frame = frame
        now = frame.time_ns
        for d in self._dests:
            if not _due(d, now):
                d.capped += 1
                continue
            if d.spec.protocol == "gains" and rows is None:
                self._error(d, "no gains matrix given: nothing sent")
                continue
            full = (d.refreshed_ns is None or not d.refreshed_ns <= now
                    or (d.refresh_ns is not None and now - d.refreshed_ns >= d.refresh_ns))
            if full:
                d.refreshed_ns = now
            self._tick(d, frame, rows, full)

    def panic(self) -> None:
        """Every voice each destination knows (and every voice of the last frame) muted, sent
        now whatever the caps. The next frames say what is true again (a frame that still has
        a voice playing unmutes it); repeat the panic, or mute the frames, to stay silent."""
        frame = self._frame
        present = {v.number: v for v in frame.voices} if frame is not None else {}
        alive, counter = sorted(present), frame.counter if frame is not None else 0
        for d in self._dests:
            if d.spec.protocol == "gains" and not d.speakers:
                continue  # never sent: nothing to silence
            known = d.sent | present
            muted = [known[n]._replace(mute=True) for n in sorted(known)]
            rows = np.zeros((len(muted), d.speakers))
            try:
                messages = self._encode(d, muted, rows, False, alive, counter)
            except ValueError as e:
                self._error(d, str(e))
                continue
            if self._send(d, messages):
                d.sent.update((v.number, v) for v in muted)
                if d.spec.protocol == "gains":
                    d.rows.update(zip((v.number for v in muted), rows, strict=True))

    def event_onset(self, number: int, pitch: int, velocity: int, x: float, y: float,
                    z: float) -> None:
        """A note of voice `number` starts at (x, y, z): to the visuals, now."""
        self.event(visual.onset(number, pitch, velocity, x, y, z))

    def event_scene(self, name: str) -> None:
        """A new scene or section: to the visuals, now."""
        self.event(visual.scene(name))

    def close(self) -> None:
        for d in self._dests:
            d.peer.close()

    def _tick(self, d: _Dest, frame: Frame, rows: np.ndarray | None, full: bool) -> None:
        voices, sent = frame.voices, d.sent
        out_rows: list[np.ndarray] = []
        gains = rows is not None and d.spec.protocol == "gains"
        if gains:
            assert rows is not None
            rows = rows.copy()  # kept as what was sent: the caller may reuse its matrix
            out = []
            for v, row in zip(voices, rows, strict=True):
                if (full or _changed(sent.get(v.number), v)
                        or _row_changed(d.rows.get(v.number), row)):
                    out.append(v)
                    out_rows.append(row)
            d.speakers = rows.shape[1]
        elif full:
            out = list(voices)
        else:  # every voice moving on every tick is the common case: keep this loop tight
            get = sent.get
            out = [v for v in voices if _changed(get(v.number), v)]
        now_numbers = {v.number for v in voices}
        gone = [] if sent.keys() <= now_numbers else [n for n in sent if n not in now_numbers]
        if d.spec.protocol != "visuals":  # the visuals see a voice leave `alive`
            for n in gone:
                out.append(sent[n]._replace(mute=True))
                if gains:
                    out_rows.append(np.zeros(d.speakers))
        try:
            messages = self._encode(d, out, np.array(out_rows) if gains else None, full,
                                    [v.number for v in voices], frame.counter)
        except ValueError as e:
            self._error(d, str(e))
            return
        if not messages:
            return
        d.ticks += 1
        if self._send(d, messages):
            sent.update({v.number: v for v in out})
            if gains:
                d.rows.update(zip((v.number for v in out), out_rows, strict=True))
            for n in gone:
                del sent[n]
                d.rows.pop(n, None)
        else:  # resend these voices on the next slot; a gone voice stays known until muted
            for v in out:
                if v.number in now_numbers:
                    sent.pop(v.number, None)
                    d.rows.pop(v.number, None)
            if full:  # and the refresh (names) with them
                d.refreshed_ns = None

    @staticmethod
    def _encode(d: _Dest, voices: list[Voice], rows: np.ndarray | None, full: bool,
                alive: list[int], counter: int) -> list[bytes]:
        s = d.spec
        if s.protocol == "adm":
            return adapters.adm(voices, full, s.aed)
        if s.protocol == "spatgris":
            return adapters.spatgris(voices, full, s.coords)
        if s.protocol == "satie":
            return adapters.satie(voices, full, s.rig_radius_m)
        if s.protocol == "gains":
            return adapters.gains(voices, rows) if voices and rows is not None else []
        if s.protocol == "visuals":
            return visual.tick(voices, alive, counter)
        return visual.floats(voices)

    @staticmethod
    def _send(d: _Dest, messages: list[bytes]) -> bool:
        """All bundles (every one is tried); False if any failed to go out here."""
        send = d.peer.send
        return all([send(packet) for packet in adapters.bundles(messages)])

    def event(self, message: bytes) -> None:
        """Any one OSC message to the visuals destinations, now (e.g. the agent's plan)."""
        for d in self._dests:
            if d.spec.protocol in visual.VARIANTS:
                d.peer.send(message)

    @staticmethod
    def _error(d: _Dest, text: str) -> None:
        d.errors += 1
        if not d.logged:
            d.logged = True
            log.warning("OSC spatial to %s: %s (logged once)", d.spec.label, text)


def _due(d: _Dest, now: int) -> bool:
    """The rate cap: slots on a grid `period_ns` apart, so a tick arriving a little early or
    late neither drifts the grid nor halves the rate; a tick over a period late (a stall) or a
    clock gone backwards (a new replay) starts a new grid at `now`."""
    nxt = d.next_ns
    if nxt is not None and nxt - 2 * d.period_ns <= now < nxt:
        return False
    on_grid = nxt is not None and 0 <= now - nxt < d.period_ns
    d.next_ns = (nxt if on_grid and nxt is not None else now) + d.period_ns
    return True


def _changed(old: Voice | None, v: Voice) -> bool:
    """Name or mute differ, or x, y, z or gain by more than TOLERANCE (a value that is not
    finite counting as 0, as the adapters send it)."""
    if old is None or old.name != v.name or old.mute != v.mute:
        return True
    d = old.x - v.x  # inlined _moved: the first axis decides for most moving voices
    if not -TOLERANCE <= d <= TOLERANCE and (-math.inf < d < math.inf or _moved(old.x, v.x)):
        return True
    return _moved(old.y, v.y) or _moved(old.z, v.z) or _moved(old.gain, v.gain)


def _moved(a: float, b: float) -> bool:
    """|finite(a) - finite(b)| > TOLERANCE; at once when the difference is finite (then both
    are: an infinity or a NaN on either side makes it infinite or NaN)."""
    d = a - b
    if -TOLERANCE <= d <= TOLERANCE:
        return False
    if -math.inf < d < math.inf:
        return True
    f = adapters.finite
    return abs(f(a) - f(b)) > TOLERANCE


def _row_changed(old: np.ndarray | None, row: np.ndarray) -> bool:
    if old is None or old.shape != row.shape:
        return True
    return bool(np.any(np.abs(np.nan_to_num(old) - np.nan_to_num(row)) > TOLERANCE))
