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

Encoding: OSC 1.0 written here with `struct` (big-endian int32 and float32, strings NUL-padded
to 4 bytes), byte for byte what python-osc's builder makes (tests/unit/test_spatial_adapters.py
compares them on random voices). What depends only on a voice number (addresses, type tags,
sizes) is encoded once and kept; a tick packs only the values, one struct call per voice. A
float beyond float32's range (a gain over 3.4e38) is refused with ValueError, as python-osc
refuses it (so is a per-speaker gain whose product overflows to infinity, which python-osc would
send). Adapters return bundle elements, ready for `bundles`: per voice, its messages each
as an int32 size then the message, concatenated, so a voice's messages share a bundle.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

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
INT32_END = 2**31

T = TypeVar("T")


def adm(voices: Iterable[Voice], full: bool = False, aed: bool = False) -> list[bytes]:
    """ADM-OSC: per voice (name if full), xyz, (aed), gain, mute."""
    out: list[bytes] = []
    add = out.append
    aeds = None
    if aed:
        voices = list(voices)
        aeds = _aed(voices)
    chunks = _ADM_AED if aed else _ADM
    try:
        for k, v in enumerate(voices):
            n = v.number
            if not 0 < n < INT32_END:
                _refuse(v)
            x, y, z = v.x, v.y, v.z
            if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and -1.0 <= z <= 1.0):
                x, y, z = clamped_xyz(v)
            g = v.gain
            if not 0.0 <= g < math.inf:
                g = max(finite(g), 0.0)
            c = chunks[n]
            h = c.heads
            if aeds is None:
                chunk = c.pack(h[0], x, y, z, h[1], g, h[2], 1 if v.mute else 0)
            else:
                a, e, d = aeds[k]
                chunk = c.pack(h[0], x, y, z, h[1], a, e, min(d, 1.0), h[2], g, h[3],
                               1 if v.mute else 0)
            if full:
                chunk = element(_ADM_NAME[n] + osc_string(v.name[:ADM_NAME_MAX])) + chunk
            add(chunk)
    except OverflowError as e:
        raise overflow_error(e) from None
    return out


def spatgris(voices: Iterable[Voice], full: bool = False, coords: str = "car"
             ) -> list[bytes]:
    """SpatGRIS: one /spat/serv per voice ("car" or "deg"; "clr" when muted). `full` adds
    nothing (SpatGRIS has no names)."""
    if coords not in SPATGRIS_COORDS:
        raise ValueError(f"SpatGRIS coordinates {coords!r}: one of {', '.join(SPATGRIS_COORDS)}")
    out: list[bytes] = []
    add = out.append
    start = _SPAT_START[coords]
    aeds = None
    if coords == "deg":
        voices = list(voices)
        aeds = _aed(voices)
    for k, v in enumerate(voices):
        n = v.number
        if not 0 < n < INT32_END:
            _refuse(v)
        if n > SPATGRIS_MAX_SOURCE:
            raise ValueError(f"voice {n}: SpatGRIS sources are 1..{SPATGRIS_MAX_SOURCE}")
        if v.mute:
            add(_SPAT_CLR[n])
        elif aeds is None:
            x, y, z = v.x, v.y, v.z
            if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and -1.0 <= z <= 1.0):
                x, y, z = clamped_xyz(v)
            add(start + _IFFFFF(n, x, y, z, 0.0, 0.0))
        else:
            a, e, d = aeds[k]  # clockwise; no "-0.0" on the wire
            add(start + _IFFFFF(n, -a if a != 0.0 else 0.0, e, d, 0.0, 0.0))
    return out


def satie(voices: Iterable[Voice], full: bool = False, rig_radius_m: float = 5.0,
          delay_ms: float = SATIE_DELAY_MS, lp_hz: float = SATIE_LP_HZ) -> list[bytes]:
    """SATIE: one /satie/source/update per voice, addressed by its name. `full` adds nothing."""
    out: list[bytes] = []
    voices = list(voices)
    try:
        for v, (a, e, d) in zip(voices, _aed(voices), strict=True):
            _number(v)
            out.append(element(_SATIE_HEAD + osc_string(v.name) + _FFFFFF(
                -a if a != 0.0 else 0.0, e, MUTE_DB if v.mute else gain_db(v.gain), delay_ms,
                lp_hz, d * rig_radius_m)))
    except OverflowError as e:
        raise overflow_error(e) from None
    return out


def gains(voices: Sequence[Voice], rows: np.ndarray | Sequence[Sequence[float]],
          full: bool = False) -> list[bytes]:
    """Per-speaker gains: `rows[i]` (the panner's gains, one per speaker) is for voices[i]."""
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(voices):
        raise ValueError(f"gains: {len(voices)} voices need a ({len(voices)}, speakers) matrix, "
                         f"got shape {matrix.shape}")
    numbers = [_number(v) for v in voices]
    scale = np.array([0.0 if v.mute else max(finite(v.gain), 0.0) for v in voices])
    with np.errstate(over="ignore"):
        values = np.where(np.isfinite(matrix), matrix, 0.0) * scale[:, None]
        wire = values.astype(">f4")
    if not np.isfinite(wire).all():  # python-osc refuses the finite ones; inf neither
        raise ValueError("gains: a value beyond float32's range")
    speakers = matrix.shape[1]
    return [_GAINS_HEADS[n][speakers] + r.tobytes() for n, r in zip(numbers, wire, strict=True)]


def bundles(elements: Iterable[bytes], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Bundle elements (what the adapters return; `element(message)` makes one) packed in
    order into OSC bundles (timetag: immediately) of at most `limit` bytes each, none split.
    ValueError if one cannot fit a bundle on its own (no adapter makes one: it would be a bug,
    and a datagram over the limit fragments)."""
    out: list[bytes] = []
    parts = [BUNDLE_HEADER]
    add = parts.append
    empty = size = len(BUNDLE_HEADER)
    for e in elements:
        n = len(e)
        if size + n > limit:
            if empty + n > limit:
                address = e[4:e.find(b"\0", 4)].decode(errors="replace")
                raise ValueError(f"OSC message {address} is {n - 4} bytes: no bundle of "
                                 f"{limit} bytes holds it")
            out.append(b"".join(parts))
            parts = [BUNDLE_HEADER]
            add = parts.append
            size = empty
        add(e)
        size += n
    if size > empty:
        out.append(b"".join(parts))
    return out


# --- OSC 1.0 encoding: the only one (the adapters here and agent/visuals use these) ---------

_PAD = (b"\0\0\0\0", b"\0\0\0", b"\0\0", b"\0")  # by length % 4: a NUL, then up to 4


def osc_string(text: str) -> bytes:
    """UTF-8, a NUL, then NULs up to a multiple of 4 bytes."""
    b = text.encode()
    return b + _PAD[len(b) & 3]


def head(address: str, tags: str) -> bytes:
    """What starts a message: its address, then its type tags ("fff" -> ",fff")."""
    return osc_string(address) + osc_string("," + tags)


def packer(tags: str) -> Callable[..., bytes]:
    """struct's packer for int32 and float32 arguments, from their type tags: big-endian; a
    float beyond float32's range raises OverflowError (as python-osc's does)."""
    if tags.strip("if"):
        raise ValueError(f"OSC type tags {tags!r}: only i and f are packed by struct")
    return struct.Struct(">" + tags).pack


def message(address: str, tags: str, *args: Any) -> bytes:
    """One whole message (`f i s`), for what is not worth a cache."""
    if len(args) != len(tags):
        raise ValueError(f"OSC message {address}: {len(tags)} type tags, {len(args)} arguments")
    parts = [head(address, tags)]
    parts += [osc_string(a) if t == "s" else _PACK[t](a) for t, a in zip(tags, args, strict=True)]
    return b"".join(parts)


def element(message: bytes) -> bytes:
    """A message as a bundle element: its int32 size, then the message."""
    return _I(len(message)) + message


def element_head(address: str, tags: str) -> bytes:
    """The constant start of a bundle element whose arguments are all int32 or float32 (4
    bytes each): its size, then the message's address and type tags; the values follow."""
    packer(tags)  # i and f only
    h = head(address, tags)
    return _I(len(h) + 4 * len(tags)) + h


class Chunk:
    """Messages whose arguments are all int32 or float32, made together by one struct call as
    bundle elements: `pack(heads[0], <the first's values>, heads[1], <the second's>, ...)`.
    Each head is constant: the element's size, the message's address and its type tags."""

    __slots__ = ("heads", "pack")

    def __init__(self, *messages: tuple[str, str]) -> None:
        heads: list[bytes] = []
        fmt = ">"
        for address, tags in messages:
            heads.append(element_head(address, tags))
            fmt += f"{len(heads[-1])}s{tags}"
        self.heads = tuple(heads)
        self.pack: Callable[..., bytes] = struct.Struct(fmt).pack


class PerNumber(dict[int, T], Generic[T]):
    """What depends on one integer only (a voice number, a count), made on first use:
    `per[n]`. Bounded: cleared past 4096 entries (voice numbers are few)."""

    def __init__(self, make: Callable[[int], T]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, n: int) -> T:
        if len(self) >= 4096:
            self.clear()
        made = self[n] = self._make(n)
        return made


def finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def clamped_xyz(v: Voice) -> tuple[float, float, float]:
    return (min(max(finite(v.x), -1.0), 1.0), min(max(finite(v.y), -1.0), 1.0),
            min(max(finite(v.z), -1.0), 1.0))


def gain_db(gain: float) -> float:
    g = finite(gain)
    return max(20.0 * math.log10(g), MUTE_DB) if g > 0.0 else MUTE_DB


def _number(v: Voice) -> int:
    if not 0 < v.number < INT32_END:
        _refuse(v)
    return v.number


def _refuse(v: Voice) -> None:
    raise ValueError(f"voice {v.name!r}: number {v.number} (voices count from 1)")


def overflow_error(e: OverflowError) -> ValueError:
    """struct's OverflowError (a float beyond float32's range) as the adapters raise it."""
    return ValueError(f"a value beyond float32's range: {e}")


def _aed(voices: Iterable[Voice]) -> list[list[float]]:
    """Azimuth, elevation, distance of each voice's clamped position (one numpy call)."""
    xyz = np.array([clamped_xyz(v) for v in voices], dtype=np.float64).reshape(-1, 3)
    rows: list[list[float]] = xyz_to_aed(xyz).tolist()
    return rows


def _spat_start(coords: str) -> bytes:
    start = head("/spat/serv", "sifffff") + osc_string(coords)
    return _I(len(start) + 24) + start  # then i f f f f f


_I, _IFFFFF, _FFFFFF = packer("i"), packer("ifffff"), packer("ffffff")
_PACK = {"i": _I, "f": packer("f")}
_ADM = PerNumber(lambda n: Chunk((f"/adm/obj/{n}/xyz", "fff"), (f"/adm/obj/{n}/gain", "f"),
                                 (f"/adm/obj/{n}/mute", "i")))
_ADM_AED = PerNumber(lambda n: Chunk((f"/adm/obj/{n}/xyz", "fff"), (f"/adm/obj/{n}/aed", "fff"),
                                     (f"/adm/obj/{n}/gain", "f"), (f"/adm/obj/{n}/mute", "i")))
_ADM_NAME = PerNumber(lambda n: head(f"/adm/obj/{n}/name", "s"))
_SPAT_START = {c: _spat_start(c) for c in SPATGRIS_COORDS}
_SPAT_CLR = PerNumber(lambda n: element(head("/spat/serv", "si") + osc_string("clr") + _I(n)))
_SATIE_HEAD = head("/satie/source/update", "sffffff")
_GAINS_HEADS = PerNumber(lambda n: PerNumber(  # by voice number, then speaker count
    lambda speakers: element_head(f"/stage-agent/gains/{n}", "f" * speakers)))
