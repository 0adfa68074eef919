"""Importers: other tools' speaker layouts into a Layout in the ADM frame (agent/spatial/frame.py).

Facts below were read from the public sources of SpatGRIS (github.com/GRIS-UdeM/SpatGRIS: its
readers in Source/AlgoGRIS/Data/sg_LegacySpatFileFormat.cpp, sg_LogicStrucs.cpp,
sg_CartesianVector.cpp, sg_PolarVector.cpp, sg_LegacyLbapPosition.cpp, its Quaternion.hpp, and the
templates in Resources/templates/Speaker setups) and of the IEM Plug-in Suite
(resources/ConfigurationHelper.h, AllRADecoder/Source/PluginProcessor.cpp).

SpatGRIS frame. Its cartesian frame IS the ADM frame: x right, y front, z up (its stereo template
puts output 1 at x = -1; its polar azimuth is 90 deg minus a clockwise-from-front angle). So v3/v4
positions are taken as they are. Output patch = our channel (and id). Speaker setups come in three
generations, told apart by the root element as SpatGRIS itself does:

- legacy `<SpeakerSetup SpatMode=..><Ring><Speaker Azimuth Zenith Radius LayoutIndex OutputPatch
  Gain HighPassCutoff DirectOut/>`: SpatGRIS ignores PositionX/Y/Z and rebuilds the position
  from Azimuth (degrees CLOCKWISE from front: ADM azimuth = -Azimuth), Zenith (an ELEVATION in
  degrees, 0 = horizon) and Radius. SpatMode 0 (VBAP, the default) is polar; 1 (LBAP) maps to
  x = R sin(Az), y = R cos(Az), z = Zenith / 90. Speakers are ordered by LayoutIndex.
- v3 `<SPEAKER_SETUP VERSION SPAT_MODE="Dome|Cube"><SPEAKER_<patch> STATE GAIN DIRECT_OUT_ONLY>
  <POSITION X Y Z/><HIGHPASS FREQ/></SPEAKER_<patch>>`.
- v4 `<SPEAKER_SETUP SPEAKER_SETUP_VERSION="4.0.0" ..><SPEAKER_GROUP SPEAKER_GROUP_NAME
  CARTESIAN_POSITION="(x, y, z)" [YAW PITCH ROLL]><SPEAKER SPEAKER_PATCH_ID IO_STATE GAIN
  DIRECT_OUT_ONLY CARTESIAN_POSITION [HIGHPASS_FREQ]/>` and nested groups one level deep. A
  speaker's position is relative to its direct parent group: absolute = group position + the
  group's rotation applied to it (only the direct parent counts, as in SpatGRIS). The rotation
  replicates SpatGRIS's own quaternion code exactly, since SpatGRIS draws and pans the speakers
  where that code puts them. Beware: its YAW/PITCH/ROLL do not act as plain Euler angles. YAW 90
  alone turns front to the right (clockwise seen from above), but YAW 30 alone turns by 150
  degrees and YAW 180 not at all. Check a rotated group with `describe(speakers=True)`.

GAIN is in dB. DIRECT_OUT_ONLY / DirectOut marks a direct-out (never panned). SpatGRIS has no
subwoofer flag (its Satosphère template patches its 5 subs as direct-outs), so pass `subwoofers`
(their channels) to flag them. STATE/IO_STATE (normal/muted/solo) is a mixing state, not part of
the rig: ignored. A duplicate output patch is an error here (SpatGRIS silently renumbers it).

IEM LoudspeakerLayout JSON: `{"Name", "LoudspeakerLayout": {"Name", "Loudspeakers": [{"Azimuth",
"Elevation", "Radius", "IsImaginary", "Channel", "Gain"}]}}` ("GenericLayout"/"Elements" also
read, as IEM does). Angles in degrees with azimuth positive to the LEFT (IEM: x front, y left,
z up, x = r cos(el) cos(az)): the ADM azimuth convention, so taken as is. Radius is metres (the
DistanceCompensator reads it so) and is kept as distance_m; Gain is linear (imaginary speakers
default to 0, real ones to 1), converted to dB. Imaginary speakers are skipped: the panner adds
its own nadir when the layout needs one (Layout.needs_nadir).

XML is parsed with the standard library. Expat never fetches external entities, but it does
expand internal ones ("billion laughs"): a document with a DTD or an entity declaration is
refused before parsing. The files are local and trusted enough not to need defusedxml.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import LayoutError
from agent.spatial.frame import aed_to_xyz
from agent.spatial.layout import Layout, Speaker, assemble, layout_from_toml, read_layout_text

T = TypeVar("T")

_MAIN_GROUP = "MAIN_SPEAKER_GROUP_NAME"
_V3_TAG = re.compile(r"SPEAKER_(\d+)")


def import_layout(path: str | Path, *, subwoofers: Collection[int] = ()) -> Layout:
    """Any supported file, recognised by its content: XML (SpatGRIS), JSON (IEM), else TOML."""
    file, text = _read(path)
    head = text.lstrip()
    if head.startswith("<"):
        return _spatgris(_parse_xml(file, text), file, Path(path).stem, subwoofers)
    if head.startswith("{"):
        return _iem(file, text, Path(path).stem, subwoofers)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LayoutError(file, "-", "not a SpatGRIS XML, IEM JSON or stage-agent TOML layout "
                          f"(TOML error: {e})") from None
    layout = layout_from_toml(data, file, default_source=Path(path).name)
    if not subwoofers:
        return layout
    keys = [f"speakers[{i}]" for i in range(len(layout.speakers))]
    return assemble(file, layout.name, layout.source, layout.speakers, keys, "normalised",
                    subwoofers)


def import_spatgris(path: str | Path, *, subwoofers: Collection[int] = ()) -> Layout:
    """A SpatGRIS speaker setup of any generation (module docstring)."""
    file, text = _read(path)
    return _spatgris(_parse_xml(file, text), file, Path(path).stem, subwoofers)


def import_iem(path: str | Path, *, subwoofers: Collection[int] = ()) -> Layout:
    """An IEM Plug-in Suite LoudspeakerLayout JSON file (module docstring)."""
    file, text = _read(path)
    return _iem(file, text, Path(path).stem, subwoofers)


def _read(path: str | Path) -> tuple[str, str]:
    return str(path), read_layout_text(path)


def _parse_xml(file: str, text: str) -> ET.Element:
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise LayoutError(file, "-", "XML with a DTD or entity declarations is refused")
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise LayoutError(file, "-", f"not well-formed XML: {e}") from None


# --- SpatGRIS -------------------------------------------------------------------------------


def spatgris_generation(root: ET.Element) -> str:
    """'legacy', 'v3' or 'v4'; anything else is not a SpatGRIS speaker setup."""
    if root.tag == "SpeakerSetup":
        return "legacy"
    if root.tag == "SPEAKER_SETUP":
        if "SPEAKER_SETUP_VERSION" in root.attrib or root.find("SPEAKER_GROUP") is not None:
            return "v4"
        return "v3"
    return "unknown"


def _spatgris(root: ET.Element, file: str, name: str, subwoofers: Collection[int]) -> Layout:
    generation = spatgris_generation(root)
    if generation == "unknown":
        hint = " (a SpatGRIS project, not a speaker setup)" if "PROJECT" in root.tag else ""
        raise LayoutError(file, root.tag, f"not a SpatGRIS speaker setup{hint}")
    reader = {"legacy": _legacy, "v3": _v3, "v4": _v4}[generation]
    rows = list(reader(root, file))
    speakers = [s for _, s in rows]
    keys = [k for k, _ in rows]
    if not speakers:
        raise LayoutError(file, root.tag, "no speakers")
    return assemble(file, name, f"SpatGRIS {generation} speaker setup {Path(file).name}",
                    speakers, keys, "normalised", subwoofers)


def _legacy(root: ET.Element, file: str) -> Iterator[tuple[str, Speaker]]:
    mode = _int(file, "SpeakerSetup", root, "SpatMode", 0)
    if mode not in (0, 1):
        raise LayoutError(file, "SpeakerSetup.SpatMode",
                          f"{mode} is neither 0 (VBAP) nor 1 (LBAP); SpatGRIS reads only those")
    rows: list[tuple[int, str, Speaker]] = []
    for r, ring in enumerate(root.iter("Ring")):
        for i, el in enumerate(ring.iter("Speaker")):
            key = f"Ring[{r}].Speaker[{i}]"
            az = _float(file, key, el, "Azimuth", 0.0)  # clockwise from front
            elev = _float(file, key, el, "Zenith", 0.0)  # an elevation, despite the name
            radius = _float(file, key, el, "Radius", 1.0)
            if mode == 0:
                x, y, z = (float(c) for c in aed_to_xyz(-az, elev, radius))
            else:
                x, y, z = (radius * math.sin(math.radians(az)),
                           radius * math.cos(math.radians(az)), elev / 90.0)
            patch = _int(file, key, el, "OutputPatch", None)
            hp = _float(file, key, el, "HighPassCutoff", 0.0)
            speaker = Speaker(id=patch, channel=patch, xyz=(x, y, z),
                              gain_db=_float(file, key, el, "Gain", 0.0),
                              direct=_bool(file, key, el, "DirectOut", False),
                              highpass_hz=hp if hp > 0 else None)
            rows.append((_int(file, key, el, "LayoutIndex", len(rows) + 1), f"{key}", speaker))
    rows.sort(key=lambda row: row[0])  # SpatGRIS orders speakers by LayoutIndex
    for _, key, speaker in rows:
        yield f"{key}(OutputPatch {speaker.channel})", speaker


def _v3(root: ET.Element, file: str) -> Iterator[tuple[str, Speaker]]:
    for el in root:
        m = _V3_TAG.fullmatch(el.tag)
        if m is None:
            raise LayoutError(file, el.tag, "unexpected element in a v3 SPEAKER_SETUP")
        patch = int(m.group(1))
        pos = el.find("POSITION")
        if pos is None:
            raise LayoutError(file, f"{el.tag}.POSITION", "missing")
        xyz = tuple(_float(file, f"{el.tag}.POSITION", pos, a, None) for a in "XYZ")
        hp_el = el.find("HIGHPASS")
        hp = None if hp_el is None else _float(file, f"{el.tag}.HIGHPASS", hp_el, "FREQ", None)
        yield el.tag, Speaker(id=patch, channel=patch, xyz=(xyz[0], xyz[1], xyz[2]),
                              gain_db=_float(file, el.tag, el, "GAIN", 0.0),
                              direct=_bool(file, el.tag, el, "DIRECT_OUT_ONLY", False),
                              highpass_hz=hp if hp is not None and hp > 0 else None)


def _v4(root: ET.Element, file: str) -> Iterator[tuple[str, Speaker]]:
    main = root.find("SPEAKER_GROUP")
    if main is None:
        raise LayoutError(file, "SPEAKER_SETUP.SPEAKER_GROUP", "missing main speaker group")
    for child in main:
        if child.tag == "SPEAKER":
            yield _v4_speaker(file, child, main, "SPEAKER_GROUP")
        elif child.tag == "SPEAKER_GROUP":
            name = child.get("SPEAKER_GROUP_NAME", "")
            for sub in child:
                if sub.tag != "SPEAKER":
                    raise LayoutError(file, f"SPEAKER_GROUP {name!r}.{sub.tag}",
                                      "groups nest one level deep only (as in SpatGRIS)")
                yield _v4_speaker(file, sub, child, f"SPEAKER_GROUP {name!r}")
        else:
            raise LayoutError(file, f"SPEAKER_GROUP.{child.tag}", "unexpected element")


def _v4_speaker(file: str, el: ET.Element, group: ET.Element, where: str) -> tuple[str, Speaker]:
    patch = _int(file, f"{where}.SPEAKER", el, "SPEAKER_PATCH_ID", None)
    key = f"{where}.SPEAKER[{patch}]"
    local = _triple(file, key, el)
    origin = _triple(file, where, group)
    angles = [_float(file, where, group, a, 0.0) for a in ("YAW", "PITCH", "ROLL")]
    if any(angles):
        local = _spatgris_rotate(local, angles[0], angles[1], angles[2])
    x, y, z = (o + c for o, c in zip(origin, local, strict=True))
    name = group.get("SPEAKER_GROUP_NAME", "")
    hp = _float(file, key, el, "HIGHPASS_FREQ", 0.0)
    return key, Speaker(id=patch, channel=patch, xyz=(x, y, z),
                        gain_db=_float(file, key, el, "GAIN", 0.0),
                        direct=_bool(file, key, el, "DIRECT_OUT_ONLY", False),
                        groups=(name,) if name and name != _MAIN_GROUP else (),
                        highpass_hz=hp if hp > 0 else None)


def _spatgris_rotate(v: tuple[float, float, float], yaw: float, pitch: float,
                     roll: float) -> tuple[float, float, float]:
    """A group's rotation as SpatGRIS computes it: its quaternion (built from a y-up formula,
    hence the angle swap) applied as q v q* in the usual Hamilton product; SpatGRIS writes the
    same as q* v q with a product whose operands are swapped."""
    h1 = math.radians(pitch) * -0.5
    h2 = math.radians(yaw) * 0.5
    h3 = math.radians(roll) * 0.5
    s1, c1, s2, c2, s3, c3 = (math.sin(h1), math.cos(h1), math.sin(h2), math.cos(h2),
                              math.sin(h3), math.cos(h3))
    q = (c1 * s2 * c3 - s1 * c2 * s3, s1 * c2 * c3 + c1 * s2 * s3,
         c1 * c2 * s3 + s1 * s2 * c3, -(c1 * c2 * c3 - s1 * s2 * s3))
    conj = (q[0], -q[1], -q[2], -q[3])
    r = _hamilton(q, _hamilton((0.0, v[0], v[1], v[2]), conj))
    return r[1], r[2], r[3]


def _hamilton(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    return (a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
            a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
            a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
            a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0])


def _triple(file: str, key: str, el: ET.Element) -> tuple[float, float, float]:
    raw = el.get("CARTESIAN_POSITION")
    if raw is None:
        raise LayoutError(file, f"{key}.CARTESIAN_POSITION", "missing")
    parts = raw.strip().strip("()").split(",")
    try:
        x, y, z = (float(p) for p in parts)
    except ValueError:
        raise LayoutError(file, f"{key}.CARTESIAN_POSITION",
                          f"{raw!r} is not '(x, y, z)'") from None
    if not all(math.isfinite(c) for c in (x, y, z)):
        raise LayoutError(file, f"{key}.CARTESIAN_POSITION", f"{raw!r} is not finite")
    return x, y, z


def _float(file: str, key: str, el: ET.Element, attr: str, default: float | None) -> float:
    return _attr(file, key, el, attr, default, float, "a number")


def _int(file: str, key: str, el: ET.Element, attr: str, default: int | None) -> int:
    return _attr(file, key, el, attr, default, lambda raw: int(raw.strip()), "an integer")


def _attr(file: str, key: str, el: ET.Element, attr: str, default: T | None,
          parse: Callable[[str], T], what: str) -> T:
    """`el`'s attribute parsed (a float must be finite), or `default`; missing if no default."""
    raw = el.get(attr)
    if raw is None:
        if default is None:
            raise LayoutError(file, f"{key}.{attr}", "missing")
        return default
    try:
        v = parse(raw)
    except ValueError:
        raise LayoutError(file, f"{key}.{attr}", f"{raw!r} is not {what}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise LayoutError(file, f"{key}.{attr}", f"{raw!r} is not finite")
    return v


def _bool(file: str, key: str, el: ET.Element, attr: str, default: bool) -> bool:
    raw = el.get(attr)
    if raw is None:
        return default
    if raw.strip().lower() in ("1", "true"):
        return True
    if raw.strip().lower() in ("0", "false"):
        return False
    raise LayoutError(file, f"{key}.{attr}", f"{raw!r} is not 0/1")


# --- IEM ------------------------------------------------------------------------------------


def _iem(file: str, text: str, stem: str, subwoofers: Collection[int]) -> Layout:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LayoutError(file, "-", f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise LayoutError(file, "-", "expected a JSON object")
    top = "LoudspeakerLayout" if "LoudspeakerLayout" in data else "GenericLayout"
    body = data.get(top)
    if not isinstance(body, dict):
        raise LayoutError(file, "LoudspeakerLayout", "missing (not an IEM LoudspeakerLayout file)")
    listing = "Loudspeakers" if "Loudspeakers" in body else "Elements"
    items = body.get(listing)
    if not isinstance(items, list):
        raise LayoutError(file, f"{top}.Loudspeakers", "missing or not a list")
    speakers, keys = [], []
    for i, item in enumerate(items):
        key = f"{top}.{listing}[{i}]"
        if not isinstance(item, dict):
            raise LayoutError(file, key, "expected an object")
        imaginary = item.get("IsImaginary", False)
        if not isinstance(imaginary, bool):
            raise LayoutError(file, f"{key}.IsImaginary", f"{imaginary!r} is not true/false")
        if imaginary:
            continue
        az, el = _num(file, key, item, "Azimuth", None), _num(file, key, item, "Elevation", None)
        radius = _num(file, key, item, "Radius", 1.0)
        gain = _num(file, key, item, "Gain", 1.0)
        if radius <= 0:
            raise LayoutError(file, f"{key}.Radius", f"{radius} is not > 0")
        if gain <= 0:
            raise LayoutError(file, f"{key}.Gain", f"{gain} is not > 0 (linear gain)")
        channel = item.get("Channel")
        if not isinstance(channel, int) or isinstance(channel, bool):
            raise LayoutError(file, f"{key}.Channel", f"{channel!r} is not an integer")
        x, y, z = (float(c) for c in aed_to_xyz(az, el, radius))
        speakers.append(Speaker(id=channel, channel=channel, xyz=(x, y, z),
                                gain_db=20.0 * math.log10(gain)))
        keys.append(key)
    if not speakers:
        raise LayoutError(file, f"{top}.{listing}", "no real (non-imaginary) loudspeaker")
    name = body.get("Name") or data.get("Name") or stem
    return assemble(file, str(name), f"IEM LoudspeakerLayout {Path(file).name}", speakers, keys,
                    "m", subwoofers)


def _num(file: str, key: str, item: dict[str, Any], attr: str, default: float | None) -> float:
    if attr not in item:
        if default is None:
            raise LayoutError(file, f"{key}.{attr}", "missing")
        return default
    v = item[attr]
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        raise LayoutError(file, f"{key}.{attr}", f"{v!r} is not a finite number")
    return float(v)
