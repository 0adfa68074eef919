"""Frame -> OSC messages, one pure function per renderer protocol, and bundling. Pure.

Every adapter takes the voices to send (which ones is the sender's business: change-only, rate
caps and refreshes live in agent/io/osc_spatial.py) and `full` (also send what only a refresh
needs, e.g. names). Positions come in the ADM frame (agent/spatial/frame.py: x right, y front,
z up, normalised) and are converted here, at the edge. A value that is not finite is sent as 0
(a renderer must never get NaN); xyz is clamped to -1..1 per axis. Type tags are `f i s` only.

ADM-OSC (`adm`; port 4001 by convention). Objects are voice numbers (from 1).

| address | tags | value |
|---|---|---|
| /adm/obj/{n}/name | s | voice name, at most 128 characters (only when `full`) |
| /adm/obj/{n}/xyz | f f f | x, y, z, each clamped to -1..1 |
| /adm/obj/{n}/aed | f f f | azimuth deg (+ = LEFT), elevation deg, distance 0..1 (`aed=True`) |
| /adm/obj/{n}/gain | f | linear, >= 0 |
| /adm/obj/{n}/mute | i | 1 muted, 0 playing |

SpatGRIS (`spatgris`; port 18032). One address, `/spat/serv`; sources 1..256.

| message | tags | arguments |
|---|---|---|
| car | s i f f f f f | "car", source, x, y, z, h-span 0, v-span 0 |
| deg | s i f f f f f | "deg", source, azimuth deg CLOCKWISE (= -ADM), elevation deg, radius, 0, 0 |
| clr | s i | "clr", source: a muted voice (SpatGRIS forgets the position: silent) |

SpatGRIS's cartesian axes are ADM's (x right, y front, z up) and its unit is the speakers'
radius: its manual gives x left/right, y back/front, z down/up, angles clockwise from +y, and
its OSC input turns `deg` into (x, y, z) = (sin a, cos a) cos e, sin e with the same axes. The
+-1.66 range of `car` is the cube (MBAP) mode's "far field" beyond the speakers (its constant
MBAP_EXTENDED_RADIUS = 1.6666667): ADM's -1..1 maps 1:1 onto the speakers and is never scaled.
In dome (VBAP) mode SpatGRIS keeps only the direction. It has no per-source gain over OSC:
`gain` is not sent (pan a quieter voice with a renderer that has one, or mute it).

SATIE (`satie`; port 18032): `/satie/source/update s f f f f f f` = node name (the voice name),
aziDeg, eleDeg, gainDB, delayMs, lpHz, distance in metres. SATIE's azimuth is positive to the
RIGHT (= -ADM): its Unity sender negates Unity's left-positive angle before sending, and its
stereo spatializer pans with sin(aziDeg) (SuperCollider's Pan2: +1 = right). Distance = ADM
distance x `rig_radius_m`; delay and low-pass are constant (SATIE's own defaults, 1 ms and
15 kHz): a delay that follows the distance would Doppler-shift every gesture. gainDB =
20 log10(gain), never below MUTE_DB (-99 dB, SATIE's own "silent" default); a muted voice is
sent at MUTE_DB. SATIE applies `distance` to processes only; sources use the angles and gain.

Per-speaker gains (`gains`), for a renderer without panning (a Max or Pd patch):
`/stage-agent/gains/{n} f f f ...`, one float per speaker in layout order: the panner's row
for voice n (direction only) times the voice's gain, all 0 for a muted voice. A message holds
at most 270 speakers (1400-byte bundles).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from agent.spatial.frame import Voice, xyz_to_aed

MAX_DATAGRAM = 1400  # bytes: one Ethernet frame minus IP/UDP headers, with room to spare
ADM_NAME_MAX = 128
SPATGRIS_MAX_SOURCE = 256
MUTE_DB = -99.0  # SATIE's own default gainDB for a silent source
SATIE_DELAY_MS = 1.0
SATIE_LP_HZ = 15000.0
SPATGRIS_COORDS = ("car", "deg")
IMMEDIATELY = b"\0\0\0\0\0\0\0\1"  # OSC 1.0 timetag: 63 zero bits, then 1
BUNDLE_HEADER = b"#bundle\0" + IMMEDIATELY


def adm(voices: Iterable[Voice], full: bool = False, aed: bool = False) -> list[OscMessage]:
    """ADM-OSC: per voice (name if full), xyz, (aed), gain, mute."""
    out = []
    for v in voices:
        n = _number(v)
        if full:
            out.append(msg(f"/adm/obj/{n}/name", ("s", v.name[:ADM_NAME_MAX])))
        x, y, z = clamped_xyz(v)
        out.append(msg(f"/adm/obj/{n}/xyz", ("f", x), ("f", y), ("f", z)))
        if aed:
            a, e, d = (float(c) for c in xyz_to_aed(np.array((x, y, z))))
            out.append(msg(f"/adm/obj/{n}/aed", ("f", a), ("f", e), ("f", min(d, 1.0))))
        out.append(msg(f"/adm/obj/{n}/gain", ("f", max(finite(v.gain), 0.0))))
        out.append(msg(f"/adm/obj/{n}/mute", ("i", int(v.mute))))
    return out


def spatgris(voices: Iterable[Voice], full: bool = False, coords: str = "car"
             ) -> list[OscMessage]:
    """SpatGRIS: one /spat/serv per voice ("car" or "deg"; "clr" when muted). `full` adds
    nothing (SpatGRIS has no names)."""
    if coords not in SPATGRIS_COORDS:
        raise ValueError(f"SpatGRIS coordinates {coords!r}: one of {', '.join(SPATGRIS_COORDS)}")
    out = []
    for v in voices:
        n = _number(v)
        if n > SPATGRIS_MAX_SOURCE:
            raise ValueError(f"voice {n}: SpatGRIS sources are 1..{SPATGRIS_MAX_SOURCE}")
        if v.mute:
            out.append(msg("/spat/serv", ("s", "clr"), ("i", n)))
            continue
        x, y, z = clamped_xyz(v)
        if coords == "car":
            values = (x, y, z)
        else:
            a, e, d = (float(c) for c in xyz_to_aed(np.array((x, y, z))))
            values = (-a if a != 0.0 else 0.0, e, d)  # clockwise; no "-0.0" on the wire
        out.append(msg("/spat/serv", ("s", coords), ("i", n), *(("f", c) for c in values),
                       ("f", 0.0), ("f", 0.0)))
    return out


def satie(voices: Iterable[Voice], full: bool = False, rig_radius_m: float = 5.0,
          delay_ms: float = SATIE_DELAY_MS, lp_hz: float = SATIE_LP_HZ) -> list[OscMessage]:
    """SATIE: one /satie/source/update per voice, addressed by its name. `full` adds nothing."""
    out = []
    for v in voices:
        _number(v)
        a, e, d = (float(c) for c in xyz_to_aed(np.array(clamped_xyz(v))))
        out.append(msg("/satie/source/update", ("s", v.name), ("f", -a if a != 0.0 else 0.0),
                       ("f", e), ("f", MUTE_DB if v.mute else gain_db(v.gain)),
                       ("f", delay_ms), ("f", lp_hz), ("f", d * rig_radius_m)))
    return out


def gains(voices: Sequence[Voice], rows: np.ndarray | Sequence[Sequence[float]],
          full: bool = False) -> list[OscMessage]:
    """Per-speaker gains: `rows[i]` (the panner's gains, one per speaker) is for voices[i]."""
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(voices):
        raise ValueError(f"gains: {len(voices)} voices need a ({len(voices)}, speakers) matrix, "
                         f"got shape {matrix.shape}")
    out = []
    for v, row in zip(voices, matrix, strict=True):
        n = _number(v)
        scale = 0.0 if v.mute else max(finite(v.gain), 0.0)
        values = np.where(np.isfinite(row), row, 0.0) * scale
        out.append(msg(f"/stage-agent/gains/{n}", *(("f", float(g)) for g in values)))
    return out


def bundles(messages: Iterable[OscMessage], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Messages packed in order into OSC bundles (timetag: immediately) of at most `limit`
    bytes each, none split. ValueError if one message cannot fit a bundle on its own (no
    adapter makes one: it would be a bug, and a datagram over the limit fragments)."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = len(BUNDLE_HEADER)
    for m in messages:
        data = m.dgram
        n = 4 + len(data)  # int32 size, then the message
        if len(BUNDLE_HEADER) + n > limit:
            raise ValueError(f"OSC message {m.address} is {len(data)} bytes: no bundle of "
                             f"{limit} bytes holds it")
        if size + n > limit:
            out.append(BUNDLE_HEADER + b"".join(parts))
            parts, size = [], len(BUNDLE_HEADER)
        parts.append(struct.pack(">i", len(data)) + data)
        size += n
    if parts:
        out.append(BUNDLE_HEADER + b"".join(parts))
    return out


def msg(address: str, *args: tuple[str, Any]) -> OscMessage:
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build()


def finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def clamped_xyz(v: Voice) -> tuple[float, float, float]:
    return (min(max(finite(v.x), -1.0), 1.0), min(max(finite(v.y), -1.0), 1.0),
            min(max(finite(v.z), -1.0), 1.0))


def gain_db(gain: float) -> float:
    g = finite(gain)
    return max(20.0 * math.log10(g), MUTE_DB) if g > 0.0 else MUTE_DB


def _number(v: Voice) -> int:
    if v.number < 1 or v.number >= 2**31:
        raise ValueError(f"voice {v.name!r}: number {v.number} (voices count from 1)")
    return v.number
