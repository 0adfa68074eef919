"""Speaker layouts: the rig as the agent sees it, and the project's own file format (TOML).

Every position is in the canonical ADM frame of agent/spatial/frame.py: x right, y front, z up;
azimuth 0 = front, positive to the LEFT; elevation +90 = up. A layout is normalised so that the
farthest *panning* speaker is at distance 1 (frame.py: "1 = the rig's surface"); the raw distance
in metres, when the source knew it, is kept in `Speaker.distance_m`. Subwoofers and direct-out
speakers do not set the scale: they are not part of the surface that panning spreads sound over
(SpatGRIS, for one, draws its direct-outs outside the dome), and a sub in a corner must not shrink
the dome. Importers for SpatGRIS and IEM files live in importers.py and land here.

The own format (`*.toml`; users' guide with examples in layouts/README.md)::

    [layout]
    name = "ring-8"                 # required, non-empty
    distance_unit = "normalised"    # or "m"; default "normalised"
    source = "..."                  # provenance, free text; default: the file's name

    [[speakers]]                    # one table per speaker, in patching order
    id = 1                          # required, >= 1, unique
    channel = 1                     # required, 1-based output channel, unique
    aed = [22.5, 0.0, 1.0]          # azimuth deg (positive LEFT), elevation deg, distance
    # xyz = [-0.38, 0.92, 0.0]      #   ... or ADM x, y, z; exactly one of aed / xyz
    gain_db = 0.0                   # trim applied to this output
    delay_ms = 0.0                  # alignment delay, >= 0
    subwoofer = false               # fed by bass management, never panned
    direct = false                  # a direct-out: addressed by channel, never panned
    groups = ["ring"]               # free labels (rings, arrays) for the renderer and the CLI
    highpass_hz = 80.0              # optional crossover of a full-range speaker
    distance_m = 9.0                # optional, only with distance_unit = "normalised"

With distance_unit = "m", aed distances and xyz are metres: they are kept as `distance_m` and the
positions rescaled. With "normalised", positions are rescaled only if the farthest panning speaker
is not already at 1 (within 1e-9): that keeps `load_layout(save_layout(x)) == x` bit-exact.
Errors (LayoutError, exit 2) name the file and the key, e.g. `speakers[3].channel` (0-based like
performance.toml): unknown keys, both or neither of aed/xyz, duplicate ids or channels, a channel
< 1, a zero distance (no direction), NaN or infinity, no panning speaker at all.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import LayoutError
from agent.files import FileRefused, read_regular
from agent.spatial.frame import aed_to_xyz, xyz_to_aed

DISTANCE_UNITS = ("normalised", "m")
PLANAR_TOLERANCE_DEG = 5.0  # a "ring": every panning speaker within this of the horizon
DOME_TOLERANCE_DEG = 10.0  # a "dome": nothing below -10 deg while something is above +10 deg
MAX_LAYOUT_BYTES = 16 << 20  # a layout file (a 256-speaker SpatGRIS file is ~100 KB)
_UNIT_TOLERANCE = 1e-9
_REQUIRED = object()
_LAYOUT_KEYS = ("name", "distance_unit", "source")
_SPEAKER_KEYS = ("id", "channel", "aed", "xyz", "gain_db", "delay_ms", "subwoofer", "direct",
                 "groups", "highpass_hz", "distance_m")


@dataclass(frozen=True, slots=True)
class Speaker:
    """One output of the rig. `xyz` is in the ADM frame, normalised (see the module docstring)."""

    id: int
    channel: int  # 1-based output channel
    xyz: tuple[float, float, float]
    gain_db: float = 0.0
    delay_ms: float = 0.0
    subwoofer: bool = False
    direct: bool = False  # direct-out: not used for panning
    groups: tuple[str, ...] = ()
    distance_m: float | None = None  # the real distance, when the source knew it
    highpass_hz: float | None = None

    @property
    def pans(self) -> bool:
        """Whether panning may send sound here (not a subwoofer, not a direct-out)."""
        return not (self.subwoofer or self.direct)

    @property
    def aed(self) -> tuple[float, float, float]:
        """Azimuth deg (positive left), elevation deg, normalised distance."""
        a, e, d = (float(v) for v in xyz_to_aed(np.asarray(self.xyz)))
        return a, e, d


@dataclass(frozen=True, slots=True)
class Layout:
    """A validated rig; build it with load_layout, an importer, or assemble()."""

    name: str
    speakers: tuple[Speaker, ...]
    source: str = ""  # provenance: which file or tool it came from

    def panning_speakers(self) -> tuple[Speaker, ...]:
        return tuple(s for s in self.speakers if s.pans)

    def subwoofers(self) -> tuple[Speaker, ...]:
        return tuple(s for s in self.speakers if s.subwoofer)

    def direct_speakers(self) -> tuple[Speaker, ...]:
        return tuple(s for s in self.speakers if s.direct and not s.subwoofer)

    def directions(self) -> np.ndarray:
        """(N, 3) unit vectors of the panning speakers, rows in the order of panning_channels()."""
        p = np.array([s.xyz for s in self.panning_speakers()], dtype=np.float64).reshape(-1, 3)
        unit: np.ndarray = p / np.linalg.norm(p, axis=1, keepdims=True)
        return unit

    def channels(self) -> tuple[int, ...]:
        """Every speaker's output channel, in layout order."""
        return tuple(s.channel for s in self.speakers)

    def panning_channels(self) -> tuple[int, ...]:
        """The output channel of each row of directions()."""
        return tuple(s.channel for s in self.panning_speakers())

    def elevations(self) -> np.ndarray:
        """Elevation in degrees of each panning speaker."""
        el: np.ndarray = np.degrees(np.arcsin(np.clip(self.directions()[:, 2], -1.0, 1.0)))
        return el

    def lowest_elevation(self) -> float:
        return float(self.elevations().min())

    def highest_elevation(self) -> float:
        return float(self.elevations().max())

    def is_planar(self, tolerance_deg: float = PLANAR_TOLERANCE_DEG) -> bool:
        """Every panning speaker within +-tolerance of the horizon: pan in 2-D (pairs, not
        triangles)."""
        return bool(np.all(np.abs(self.elevations()) <= tolerance_deg))

    def needs_nadir(self) -> bool:
        """A dome: speakers above, none below. 3-D panning then needs an imaginary speaker at the
        nadir, or sources below the horizon fall outside every triangle."""
        el = self.elevations()
        return bool(el.min() >= -DOME_TOLERANCE_DEG and el.max() > DOME_TOLERANCE_DEG)

    def describe(self, speakers: bool = False) -> str:
        """A human summary (for `stage-agent layout show`); with `speakers`, one line each."""
        pan = self.panning_speakers()
        shape = ("planar ring" if self.is_planar() else "dome (needs a nadir speaker)"
                 if self.needs_nadir() else "3-D")
        lines = [f"{self.name}: {len(self.speakers)} speakers: {len(pan)} panning, "
                 f"{len(self.subwoofers())} subwoofers, {len(self.direct_speakers())} direct-out",
                 f"  source: {self.source or '-'}",
                 f"  channels {min(self.channels())}-{max(self.channels())}; panning elevation "
                 f"{self.lowest_elevation():.1f} to {self.highest_elevation():.1f} deg: {shape}"]
        if speakers:
            lines.append("     id   ch     azim     elev   dist  gain_dB  delay_ms  role  groups")
            for s in self.speakers:
                a, e, d = s.aed
                role = "sub" if s.subwoofer else "dir" if s.direct else "pan"
                lines.append(f"  {s.id:5d} {s.channel:4d} {a:8.2f} {e:8.2f} {d:6.3f} "
                             f"{s.gain_db:8.2f} {s.delay_ms:9.2f}  {role}   {','.join(s.groups)}")
        return "\n".join(lines)


def assemble(file: str, name: str, source: str, speakers: Sequence[Speaker],
             keys: Sequence[str], distance_unit: str = "normalised",
             subwoofers: Collection[int] = ()) -> Layout:
    """Validate speakers whose xyz are raw (in `distance_unit`) and normalise them.

    Shared by the TOML loader and every importer, so each source obeys the same rules. `keys`
    names each speaker in error messages (`speakers[3]`, `SPEAKER_12`, ...). `subwoofers`: output
    channels to flag as subwoofers (formats that cannot say so themselves), before the scale is
    taken from the panning speakers.
    """
    unknown = set(subwoofers) - {s.channel for s in speakers}
    if unknown:
        raise LayoutError(file, "subwoofers", f"no speaker on channel(s) {sorted(unknown)}")
    speakers = [replace(s, subwoofer=True, direct=False) if s.channel in subwoofers else s
                for s in speakers]
    ids: dict[int, str] = {}
    channels: dict[int, str] = {}
    for s, key in zip(speakers, keys, strict=True):
        _check_speaker(file, key, s)
        if s.channel in channels:
            raise LayoutError(file, f"{key}.channel",
                              f"duplicate channel {s.channel} (also {channels[s.channel]})")
        if s.id in ids:
            raise LayoutError(file, f"{key}.id", f"duplicate id {s.id} (also {ids[s.id]})")
        ids[s.id], channels[s.channel] = key, key
    if not any(s.pans for s in speakers):
        raise LayoutError(file, "speakers",
                          "no panning speaker (all are subwoofers or direct-outs)")
    scale = max(_norm(s.xyz) for s in speakers if s.pans)
    out = []
    for s in speakers:
        if distance_unit == "m":
            s = replace(s, distance_m=_norm(s.xyz))
        if distance_unit == "m" or abs(scale - 1.0) > _UNIT_TOLERANCE:
            x, y, z = (c / scale for c in s.xyz)
            s = replace(s, xyz=(x, y, z))
        out.append(s)
    return Layout(name=name, speakers=tuple(out), source=source)


def _check_speaker(file: str, key: str, s: Speaker) -> None:
    if s.channel < 1:
        raise LayoutError(file, f"{key}.channel",
                          f"{s.channel} is not >= 1 (channels count from 1)")
    if s.id < 1:
        raise LayoutError(file, f"{key}.id", f"{s.id} is not >= 1")
    for field in ("gain_db", "delay_ms", "highpass_hz", "distance_m"):
        v = getattr(s, field)
        if v is not None and not math.isfinite(v):
            raise LayoutError(file, f"{key}.{field}", f"{v} is not a finite number")
    if not all(math.isfinite(c) for c in s.xyz):
        raise LayoutError(file, f"{key}.position", f"{s.xyz} is not finite")
    if _norm(s.xyz) < 1e-12:
        raise LayoutError(file, f"{key}.position", "zero distance: the direction is undefined")
    if s.delay_ms < 0:
        raise LayoutError(file, f"{key}.delay_ms", f"{s.delay_ms} is negative")
    for field in ("highpass_hz", "distance_m"):
        v = getattr(s, field)
        if v is not None and v <= 0:
            raise LayoutError(file, f"{key}.{field}", f"{v} is not > 0")


def _norm(v: tuple[float, float, float]) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


# --- the own format -------------------------------------------------------------------------


def load_layout(path: str | Path) -> Layout:
    """Read and validate a layout in the own TOML format (module docstring)."""
    file = str(path)
    try:
        data = tomllib.loads(read_layout_text(path))
    except tomllib.TOMLDecodeError as e:
        raise LayoutError(file, "-", f"not valid TOML: {e}") from None
    return layout_from_toml(data, file, default_source=Path(path).name)


def read_layout_text(path: str | Path) -> str:
    """A layout file's text (any format), read only from a regular file of at most
    MAX_LAYOUT_BYTES: a layout path can come from a log's header, and a FIFO or /dev/zero
    there must not hang or fill the reader."""
    try:
        return read_regular(Path(path), MAX_LAYOUT_BYTES).decode("utf-8-sig")
    except FileRefused as e:
        raise LayoutError(str(path), "-", "file not found" if not Path(path).exists()
                          else str(e)) from None
    except UnicodeDecodeError as e:
        raise LayoutError(str(path), "-", f"not UTF-8 text: {e}") from None


def layout_from_toml(data: dict[str, Any], file: str, default_source: str = "") -> Layout:
    """Validate an already parsed TOML document."""
    _unknown(file, "", data, ("layout", "speakers"))
    head = data.get("layout")
    if not isinstance(head, dict):
        raise LayoutError(file, "layout", "missing [layout] table")
    _unknown(file, "layout.", head, _LAYOUT_KEYS)
    name = _get(file, head, "layout.", "name", str, _REQUIRED)
    if not name.strip():
        raise LayoutError(file, "layout.name", "empty")
    unit = _get(file, head, "layout.", "distance_unit", str, "normalised")
    if unit not in DISTANCE_UNITS:
        raise LayoutError(file, "layout.distance_unit", f"{unit!r} is not one of {DISTANCE_UNITS}")
    source = _get(file, head, "layout.", "source", str, default_source)
    rows = data.get("speakers")
    if not isinstance(rows, list) or not rows:
        raise LayoutError(file, "speakers", "no [[speakers]] tables")
    speakers, keys = [], []
    for i, row in enumerate(rows):
        key = f"speakers[{i}]"
        if not isinstance(row, dict):
            raise LayoutError(file, key, "expected a table")
        speakers.append(_speaker_from_toml(file, key + ".", row, unit))
        keys.append(key)
    return assemble(file, name, source, speakers, keys, unit)


def _speaker_from_toml(file: str, p: str, row: dict[str, Any], unit: str) -> Speaker:
    _unknown(file, p, row, _SPEAKER_KEYS)
    if ("aed" in row) == ("xyz" in row):
        raise LayoutError(file, p + "aed/xyz", "give exactly one of aed or xyz")
    if "aed" in row:
        a, e, d = _vec3(file, p + "aed", row["aed"])
        if d <= 0:
            raise LayoutError(file, p + "aed", f"distance {d} is not > 0")
        x, y, z = (float(c) for c in aed_to_xyz(a, e, d))
    else:
        x, y, z = _vec3(file, p + "xyz", row["xyz"])
    groups = row.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise LayoutError(file, p + "groups", "expected a list of strings")
    if "distance_m" in row and unit == "m":
        raise LayoutError(file, p + "distance_m", 'only with distance_unit = "normalised" '
                          "(in metres the positions already say it)")
    return Speaker(
        id=_get(file, row, p, "id", int, _REQUIRED),
        channel=_get(file, row, p, "channel", int, _REQUIRED),
        xyz=(x, y, z), gain_db=_get(file, row, p, "gain_db", float, 0.0),
        delay_ms=_get(file, row, p, "delay_ms", float, 0.0),
        subwoofer=_get(file, row, p, "subwoofer", bool, False),
        direct=_get(file, row, p, "direct", bool, False), groups=tuple(groups),
        highpass_hz=_get(file, row, p, "highpass_hz", float, None),
        distance_m=_get(file, row, p, "distance_m", float, None))


def _unknown(file: str, prefix: str, table: dict[str, Any], known: Sequence[str]) -> None:
    for key in table:
        if key not in known:
            raise LayoutError(file, prefix + key, f"unknown key (known: {', '.join(known)})")


def _get(file: str, table: dict[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
    if key not in table:
        if default is _REQUIRED:
            raise LayoutError(file, prefix + key, "missing (required)")
        return default
    v = table[key]
    if kind is float and isinstance(v, int | float) and not isinstance(v, bool):
        if not math.isfinite(v):
            raise LayoutError(file, prefix + key, f"{v} is not a finite number")
        return float(v)
    if isinstance(v, kind) and (kind is bool or not isinstance(v, bool)):
        return v
    raise LayoutError(file, prefix + key, f"expected {kind.__name__}, got {v!r}")


def _vec3(file: str, key: str, v: Any) -> tuple[float, float, float]:
    if (not isinstance(v, list) or len(v) != 3
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in v)):
        raise LayoutError(file, key, f"expected a list of 3 numbers, got {v!r}")
    if not all(math.isfinite(c) for c in v):
        raise LayoutError(file, key, f"{v} is not finite")
    return float(v[0]), float(v[1]), float(v[2])


def dumps_layout(layout: Layout, coordinates: str = "xyz") -> str:
    """The own format as text. `coordinates="xyz"` round-trips bit-exactly; "aed" is for hand
    editing: angles rounded to 1e-9 deg, exact for layouts generated from round angles."""
    if coordinates not in ("xyz", "aed"):
        raise ValueError(f"coordinates must be 'xyz' or 'aed', not {coordinates!r}")
    out = ["# Speaker layout, stage-agent format (layouts/README.md). ADM frame: x right, y front,",
           "# z up; azimuth degrees, positive to the LEFT; elevation degrees, up positive.", "",
           "[layout]", f"name = {_str(layout.name)}", 'distance_unit = "normalised"',
           f"source = {_str(layout.source)}"]
    for s in layout.speakers:
        a, e, d = s.aed
        out += ["", "[[speakers]]", f"id = {s.id}", f"channel = {s.channel}"]
        if coordinates == "aed":
            out.append(f"aed = [{_num(round(a, 9))}, {_num(round(e, 9))}, {_num(round(d, 12))}]")
        else:
            out.append(f"xyz = [{', '.join(_num(c) for c in s.xyz)}]  "
                       f"# azimuth {a:.2f}, elevation {e:.2f}")
        for field, default in (("gain_db", 0.0), ("delay_ms", 0.0), ("highpass_hz", None),
                               ("distance_m", None)):
            if (v := getattr(s, field)) != default and v is not None:
                out.append(f"{field} = {_num(v)}")
        for field in ("subwoofer", "direct"):
            if getattr(s, field):
                out.append(f"{field} = true")
        if s.groups:
            out.append(f"groups = [{', '.join(_str(g) for g in s.groups)}]")
    return "\n".join(out) + "\n"


def save_layout(layout: Layout, path: str | Path, coordinates: str = "xyz") -> None:
    Path(path).write_text(dumps_layout(layout, coordinates), encoding="utf-8")


def _num(v: float) -> str:
    return repr(float(v) + 0.0)  # + 0.0: no "-0.0"; repr is the shortest exact round trip


def _str(s: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")
