"""Speaker layouts: the own TOML format, the shipped layouts, SpatGRIS and IEM importers.

The SpatGRIS and IEM files here are written by hand (or by the small writer below) in those
tools' public formats; see agent/spatial/importers.py for where each fact comes from.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from agent.errors import EXIT_CONFIG, LayoutError
from agent.spatial.frame import aed_to_xyz
from agent.spatial.importers import import_iem, import_layout, import_spatgris
from agent.spatial.layout import Layout, Speaker, dumps_layout, load_layout, save_layout

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"


def make_layouts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_layouts", LAYOUTS / "make_layouts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(tmp_path: Path, text: str, name: str = "layout.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def close(a: tuple[float, ...], b: tuple[float, ...], tol: float = 1e-12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- the own format ---------------------------------------------------------------------------


def test_round_trip_is_exact_for_every_field(tmp_path: Path) -> None:
    odd = Layout("studio \"A\" — été", (
        Speaker(1, 3, (-0.3, 0.9, 0.1), gain_db=-1.25, delay_ms=0.4, groups=("front", "low"),
                highpass_hz=80.0, distance_m=2.5),
        Speaker(7, 1, (0.123456789, -0.987654321, 0.0)),
        Speaker(9, 2, (0.0, 0.0, -0.4), subwoofer=True),
        Speaker(10, 12, (1.2, 0.0, 0.0), direct=True),
    ), source="measured\tby hand")
    norm = max(math.dist((0, 0, 0), s.xyz) for s in odd.speakers if s.pans)
    odd = Layout(odd.name, tuple(
        Speaker(s.id, s.channel, (s.xyz[0] / norm, s.xyz[1] / norm, s.xyz[2] / norm), s.gain_db,
                s.delay_ms, s.subwoofer, s.direct, s.groups, s.distance_m, s.highpass_hz)
        for s in odd.speakers), odd.source)
    path = tmp_path / "odd.toml"
    save_layout(odd, path)
    assert load_layout(path) == odd
    save_layout(load_layout(path), path)
    assert load_layout(path) == odd


@pytest.mark.parametrize("name", ["stereo", "quad", "ring-8", "hemisphere-16", "dome-93"])
def test_round_trip_of_shipped_layouts_in_both_notations(tmp_path: Path, name: str) -> None:
    layout = load_layout(LAYOUTS / f"{name}.toml")
    for coordinates in ("xyz", "aed"):
        path = tmp_path / f"{name}-{coordinates}.toml"
        save_layout(layout, path, coordinates=coordinates)
        assert load_layout(path) == layout


def test_metres_are_kept_and_positions_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, """
[layout]
name = "small"
distance_unit = "m"
[[speakers]]
id = 1
channel = 1
aed = [30.0, 0.0, 2.5]
[[speakers]]
id = 2
channel = 2
xyz = [1.25, 0.0, 0.0]
[[speakers]]
id = 3
channel = 3
aed = [0.0, -30.0, 4.0]
subwoofer = true
""")
    layout = load_layout(path)
    left, right, sub = layout.speakers
    assert left.distance_m == pytest.approx(2.5) and right.distance_m == pytest.approx(1.25)
    assert math.dist((0, 0, 0), left.xyz) == pytest.approx(1.0)  # farthest panning speaker
    assert math.dist((0, 0, 0), right.xyz) == pytest.approx(0.5)
    assert math.dist((0, 0, 0), sub.xyz) == pytest.approx(1.6)  # subs do not set the scale
    assert layout.source == "layout.toml"  # the file's name when not given
    assert layout.panning_channels() == (1, 2) and layout.channels() == (1, 2, 3)


def test_adm_conventions() -> None:
    x, y, z = (float(c) for c in aed_to_xyz(30.0, 0.0))
    front_left = Speaker(1, 1, (x, y, z))
    assert front_left.xyz[0] < 0 and front_left.xyz[1] > 0
    assert front_left.aed == pytest.approx((30.0, 0.0, 1.0))
    right = aed_to_xyz(-90.0, 0.0)
    assert right == pytest.approx([1.0, 0.0, 0.0], abs=1e-12)
    stereo = load_layout(LAYOUTS / "stereo.toml")
    assert stereo.speakers[0].xyz[0] < 0 < stereo.speakers[1].xyz[0]  # channel 1 is left


GOOD_HEAD = '[layout]\nname = "t"\n'
ONE = "[[speakers]]\nid = 1\nchannel = 1\naed = [0.0, 0.0, 1.0]\n"


@pytest.mark.parametrize(("text", "key", "words"), [
    (GOOD_HEAD + ONE + "[extra]\n", "extra", "unknown key"),
    ('[layout]\nname = "t"\nunits = "m"\n' + ONE, "layout.units", "unknown key"),
    (GOOD_HEAD + ONE + "colour = 1\n", "speakers[0].colour", "unknown key"),
    (GOOD_HEAD + ONE + "xyz = [0.0, 1.0, 0.0]\n", "speakers[0].aed/xyz", "exactly one"),
    (GOOD_HEAD + "[[speakers]]\nid = 1\nchannel = 1\n", "speakers[0].aed/xyz", "exactly one"),
    (GOOD_HEAD + ONE + ONE.replace("channel = 1", "channel = 2"), "speakers[1].id", "duplicate"),
    (GOOD_HEAD + ONE + ONE.replace("id = 1", "id = 2"), "speakers[1].channel", "duplicate"),
    (GOOD_HEAD + ONE.replace("channel = 1", "channel = 0"), "speakers[0].channel", ">= 1"),
    (GOOD_HEAD + ONE.replace("aed = [0.0, 0.0, 1.0]", "xyz = [0.0, 0.0, 0.0]"),
     "speakers[0].position", "zero distance"),
    (GOOD_HEAD + ONE.replace("1.0]", "0.0]"), "speakers[0].aed", "not > 0"),
    (GOOD_HEAD + ONE.replace("aed = [0.0,", "aed = [nan,"), "speakers[0].aed", "finite"),
    (GOOD_HEAD + ONE + "gain_db = inf\n", "speakers[0].gain_db", "finite"),
    (GOOD_HEAD + ONE.replace("channel = 1", 'channel = "1"'), "speakers[0].channel", "int"),
    (GOOD_HEAD + ONE.replace("channel = 1", "channel = true"), "speakers[0].channel", "int"),
    (GOOD_HEAD + ONE.replace("[0.0, 0.0, 1.0]", "[0.0, 1.0]"), "speakers[0].aed", "3 numbers"),
    (GOOD_HEAD + ONE + "delay_ms = -1.0\n", "speakers[0].delay_ms", "negative"),
    (GOOD_HEAD + ONE + "subwoofer = 1\n", "speakers[0].subwoofer", "bool"),
    (GOOD_HEAD + ONE + 'groups = "ring"\n', "speakers[0].groups", "list of strings"),
    (GOOD_HEAD + ONE + "subwoofer = true\n", "speakers", "no panning speaker"),
    ('[layout]\nname = "t"\ndistance_unit = "m"\n' + ONE + "distance_m = 2.0\n",
     "speakers[0].distance_m", "normalised"),
    ('[layout]\nname = "t"\ndistance_unit = "feet"\n' + ONE, "layout.distance_unit", "feet"),
    ("[layout]\n" + ONE, "layout.name", "missing"),
    ('[layout]\nname = " "\n' + ONE, "layout.name", "empty"),
    (ONE, "layout", "missing"),
    (GOOD_HEAD, "speakers", "no [[speakers]]"),
    (GOOD_HEAD + ONE.replace("id = 1", "id = 0"), "speakers[0].id", ">= 1"),
    ("speakers = 3\n" + GOOD_HEAD, "speakers", "no [[speakers]]"),
    (GOOD_HEAD + ONE + "highpass_hz = 0.0\n", "speakers[0].highpass_hz", "not > 0"),
    ("[layout\nname=", "-", "not valid TOML"),
])
def test_every_error_names_the_file_and_the_key(tmp_path: Path, text: str, key: str,
                                                words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(LayoutError) as err:
        load_layout(path)
    assert err.value.key == key
    assert words in err.value.problem
    assert str(path) in str(err.value) and err.value.exit_code == EXIT_CONFIG


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="file not found"):
        load_layout(tmp_path / "nope.toml")
    with pytest.raises(LayoutError, match="file not found"):
        import_layout(tmp_path / "nope.xml")


# --- shipped layouts --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "panning", "subs", "planar", "nadir"), [
    ("stereo", 2, 0, True, False),
    ("quad", 4, 0, True, False),
    ("ring-8", 8, 0, True, False),
    ("hemisphere-16", 16, 0, False, True),
    ("dome-93", 93, 5, False, True),
])
def test_shipped_layouts(name: str, panning: int, subs: int, planar: bool, nadir: bool) -> None:
    layout = load_layout(LAYOUTS / f"{name}.toml")
    assert layout.name == name
    assert len(layout.panning_speakers()) == panning and len(layout.subwoofers()) == subs
    assert layout.is_planar() is planar and layout.needs_nadir() is nadir
    assert sorted(layout.channels()) == list(range(1, panning + subs + 1))
    assert layout.directions().shape == (panning, 3)
    assert np.allclose(np.linalg.norm(layout.directions(), axis=1), 1.0)
    assert layout == make_layouts().LAYOUTS[name]()  # the files are what the script makes


def test_shipped_files_are_up_to_date_and_deterministic(tmp_path: Path) -> None:
    make_layouts().main(tmp_path)
    for made in sorted(tmp_path.glob("*.toml")):
        assert made.read_bytes() == (LAYOUTS / made.name).read_bytes(), made.name


def test_dome_rings() -> None:
    dome = load_layout(LAYOUTS / "dome-93.toml")
    elevations = np.round(dome.elevations(), 6)
    rings = {float(e): int(n) for e, n in zip(*np.unique(elevations, return_counts=True),
                                              strict=True)}
    assert rings == {0.0: 32, 18.0: 32, 32.0: 16, 45.0: 8, 60.0: 4, 90.0: 1}
    assert dome.lowest_elevation() == pytest.approx(0.0, abs=1e-9)
    assert dome.highest_elevation() == pytest.approx(90.0)
    assert [s.channel for s in dome.subwoofers()] == [94, 95, 96, 97, 98]
    assert "93 panning, 5 subwoofers" in dome.describe()
    assert len(dome.describe(speakers=True).splitlines()) == 3 + 1 + 98


def test_ring_numbering_is_clockwise_from_front_left() -> None:
    ring = load_layout(LAYOUTS / "ring-8.toml")
    azimuths = [s.aed[0] for s in ring.speakers]
    assert azimuths == pytest.approx([22.5, -22.5, -67.5, -112.5, -157.5, 157.5, 112.5, 67.5])


# --- SpatGRIS ---------------------------------------------------------------------------------

LEGACY = """<?xml version="1.0" encoding="UTF-8"?>
<SpeakerSetup Name="four.xml" Dimension="3">
  <Ring>
    <Speaker PositionX="9" PositionY="9" PositionZ="9" Azimuth="315" Zenith="0" Radius="1"
             LayoutIndex="2" OutputPatch="2" Gain="-3" HighPassCutoff="0" DirectOut="0"/>
    <Speaker PositionX="9" PositionY="9" PositionZ="9" Azimuth="45" Zenith="0" Radius="1"
             LayoutIndex="1" OutputPatch="1" Gain="0" HighPassCutoff="80" DirectOut="0"/>
    <Speaker PositionX="0" PositionY="0" PositionZ="0" Azimuth="180" Zenith="30" Radius="1"
             LayoutIndex="3" OutputPatch="5" Gain="0" HighPassCutoff="0" DirectOut="0"/>
    <Speaker PositionX="0" PositionY="0" PositionZ="0" Azimuth="90" Zenith="0" Radius="1.4"
             LayoutIndex="4" OutputPatch="17" Gain="0" HighPassCutoff="0" DirectOut="1"/>
  </Ring>
  <triplet id1="1" id2="2" id3="5"/>
</SpeakerSetup>
"""


def test_spatgris_legacy(tmp_path: Path) -> None:
    layout = import_spatgris(write(tmp_path, LEGACY, "four.xml"))
    assert layout.channels() == (1, 2, 5, 17)  # LayoutIndex order; PositionX/Y/Z ignored
    one, two, five, seventeen = layout.speakers
    r = math.sqrt(0.5)
    assert close(one.xyz, (r, r, 0.0))  # Azimuth 45 clockwise = front-right
    assert close(two.xyz, (-r, r, 0.0))
    assert close(five.xyz, (0.0, -math.cos(math.radians(30)), 0.5))  # Zenith is an elevation
    assert close(seventeen.xyz, (1.4, 0.0, 0.0)) and seventeen.direct and not seventeen.pans
    assert one.highpass_hz == 80.0 and two.highpass_hz is None and two.gain_db == -3.0
    assert layout.name == "four" and "SpatGRIS legacy" in layout.source


def test_spatgris_legacy_lbap_mode(tmp_path: Path) -> None:
    text = LEGACY.replace('Dimension="3"', 'Dimension="3" SpatMode="1"')
    layout = import_spatgris(write(tmp_path, text, "cube.xml"))
    five = layout.speakers[2]  # Azimuth 180, Zenith 30: behind, z = 30/90
    scale = math.hypot(1.0, 1.0 / 3.0)  # the farthest panning speaker
    assert close(five.xyz, (0.0, -1.0 / scale, (1.0 / 3.0) / scale))
    with pytest.raises(LayoutError, match="SpatMode"):
        import_spatgris(write(tmp_path, LEGACY.replace('Dimension="3"', 'SpatMode="2"')))


V3 = """<?xml version="1.0" encoding="UTF-8"?>

<SPEAKER_SETUP VERSION="3.1.14" SPAT_MODE="Dome" DIFFUSION="0.0" GENERAL_MUTE="0">
  <SPEAKER_2 STATE="normal" GAIN="-1.5" DIRECT_OUT_ONLY="0">
    <POSITION X="1.0" Y="0.0" Z="0.0"/>
    <HIGHPASS FREQ="60.0"/>
  </SPEAKER_2>
  <SPEAKER_1 STATE="muted" GAIN="0.0" DIRECT_OUT_ONLY="0">
    <POSITION X="-1.0" Y="0.0" Z="0.0"/>
  </SPEAKER_1>
  <SPEAKER_3 STATE="normal" GAIN="0.0" DIRECT_OUT_ONLY="0">
    <POSITION X="0.0" Y="0.6" Z="0.8"/>
  </SPEAKER_3>
  <SPEAKER_9 STATE="normal" GAIN="0.0" DIRECT_OUT_ONLY="1">
    <POSITION X="0.0" Y="-0.9" Z="0.0"/>
  </SPEAKER_9>
</SPEAKER_SETUP>
"""


def test_spatgris_v3(tmp_path: Path) -> None:
    layout = import_spatgris(write(tmp_path, V3, "v3.xml"))
    assert layout.channels() == (2, 1, 3, 9)  # the file's order is SpatGRIS's order
    two, one, three, nine = layout.speakers
    assert two.xyz == (1.0, 0.0, 0.0) and two.gain_db == -1.5 and two.highpass_hz == 60.0
    assert one.xyz == (-1.0, 0.0, 0.0)  # muted is a mixing state: the speaker is still there
    assert three.xyz == (0.0, 0.6, 0.8)
    assert nine.direct and nine.xyz == (0.0, -0.9, 0.0)
    assert [s.id for s in layout.speakers] == [2, 1, 3, 9]
    subbed = import_spatgris(write(tmp_path, V3, "v3.xml"), subwoofers=[9])
    assert subbed.speakers[3].subwoofer and not subbed.speakers[3].direct


V4 = """<?xml version="1.0" encoding="UTF-8"?>

<SPEAKER_SETUP SPEAKER_SETUP_VERSION="4.0.0" SPAT_MODE="Cube" DIFFUSION="0" GENERAL_MUTE="0"
               UUID="a">
  <SPEAKER_GROUP SPEAKER_GROUP_NAME="MAIN_SPEAKER_GROUP_NAME" CARTESIAN_POSITION="(0, 0, 0)"
                 UUID="b">
    <SPEAKER SPEAKER_PATCH_ID="1" IO_STATE="normal" GAIN="0" DIRECT_OUT_ONLY="0"
             CARTESIAN_POSITION="(-0.5, 0.5, 0)" UUID="c"/>
    <SPEAKER SPEAKER_PATCH_ID="2" IO_STATE="normal" GAIN="-2" DIRECT_OUT_ONLY="0"
             CARTESIAN_POSITION="(0.5, 0.5, 0)" HIGHPASS_FREQ="90" UUID="d"/>
    <SPEAKER_GROUP SPEAKER_GROUP_NAME="balcony" CARTESIAN_POSITION="(0, 0, 0.5)" UUID="e">
      <SPEAKER SPEAKER_PATCH_ID="3" IO_STATE="normal" GAIN="0" DIRECT_OUT_ONLY="0"
               CARTESIAN_POSITION="(0, -0.5, 0)" UUID="f"/>
    </SPEAKER_GROUP>
    <SPEAKER_GROUP SPEAKER_GROUP_NAME="turned" CARTESIAN_POSITION="(0, 0, 0)" YAW="90"
                   PITCH="0" ROLL="0" UUID="g">
      <SPEAKER SPEAKER_PATCH_ID="4" IO_STATE="normal" GAIN="0" DIRECT_OUT_ONLY="0"
               CARTESIAN_POSITION="(0, 0.5, 0)" UUID="h"/>
    </SPEAKER_GROUP>
    <SPEAKER SPEAKER_PATCH_ID="10" IO_STATE="normal" GAIN="0" DIRECT_OUT_ONLY="1"
             CARTESIAN_POSITION="(0, 0, -1)" UUID="i"/>
  </SPEAKER_GROUP>
</SPEAKER_SETUP>
"""


def test_spatgris_v4_groups(tmp_path: Path) -> None:
    layout = import_spatgris(write(tmp_path, V4, "v4.xml"))
    assert layout.channels() == (1, 2, 3, 4, 10)
    one, two, three, four, ten = layout.speakers
    scale = math.sqrt(0.5)  # the farthest panning speakers sit at sqrt(0.5)
    assert close(one.xyz, (-0.5 / scale, 0.5 / scale, 0.0)) and one.groups == ()
    assert two.gain_db == -2.0 and two.highpass_hz == 90.0
    assert close(three.xyz, (0.0, -0.5 / scale, 0.5 / scale)) and three.groups == ("balcony",)
    assert close(four.xyz, (0.5 / scale, 0.0, 0.0))  # SpatGRIS yaw 90: front turns right
    assert ten.direct and close(ten.xyz, (0.0, 0.0, -1.0 / scale))
    assert "SpatGRIS v4" in layout.source


def test_spatgris_v4_rotation_matches_spatgris_not_euler(tmp_path: Path) -> None:
    """SpatGRIS's group quaternion turns YAW 30 into a 150 degree clockwise turn: we follow it,
    because SpatGRIS draws and pans the speakers there."""
    layout = import_spatgris(write(tmp_path, V4.replace('YAW="90"', 'YAW="30"'), "v4.xml"))
    four = layout.speakers[3]
    assert four.aed[0] == pytest.approx(-150.0)


def spatgris_v4(layout: Layout, directs: set[int]) -> str:
    """A small SpatGRIS v4 writer (positions as SpatGRIS stores them: '(x, y, z)')."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "",
             '<SPEAKER_SETUP SPEAKER_SETUP_VERSION="4.0.0" SPAT_MODE="Dome" DIFFUSION="0.8" '
             'GENERAL_MUTE="0" UUID="root">',
             '  <SPEAKER_GROUP SPEAKER_GROUP_NAME="MAIN_SPEAKER_GROUP_NAME" '
             'CARTESIAN_POSITION="(0, 0, 0)" UUID="main">']
    for s in layout.speakers:
        x, y, z = (f"{c:.9g}" for c in s.xyz)
        lines.append(f'    <SPEAKER SPEAKER_PATCH_ID="{s.channel}" IO_STATE="normal" GAIN="0" '
                     f'DIRECT_OUT_ONLY="{int(s.channel in directs)}" '
                     f'CARTESIAN_POSITION="({x}, {y}, {z})" UUID="s{s.channel}"/>')
    lines += ["  </SPEAKER_GROUP>", "</SPEAKER_SETUP>", ""]
    return "\n".join(lines)


def test_large_dome_through_spatgris_v4(tmp_path: Path) -> None:
    dome = load_layout(LAYOUTS / "dome-93.toml")
    subs = {s.channel for s in dome.subwoofers()}
    path = write(tmp_path, spatgris_v4(dome, subs), "Dome93Subs5.xml")
    plain = import_spatgris(path)
    assert len(plain.panning_speakers()) == 93 and len(plain.direct_speakers()) == 5
    layout = import_layout(path, subwoofers=subs)
    assert layout.channels() == dome.channels()
    assert len(layout.panning_speakers()) == 93 and len(layout.subwoofers()) == 5
    assert np.abs(layout.directions() - dome.directions()).max() < 1e-6
    assert layout.needs_nadir() and not layout.is_planar()


def test_spatgris_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "broken.xml": ("<SPEAKER_SETUP><SPEAKER_1>", "-", "well-formed"),
        "dtd.xml": ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><SPEAKER_SETUP/>', "-",
                    "DTD"),
        "project.xml": ("<SPAT_GRIS_PROJECT_DATA/>", "SPAT_GRIS_PROJECT_DATA", "project"),
        "dup.xml": (V3.replace("SPEAKER_3", "SPEAKER_2"), "SPEAKER_2.channel", "duplicate"),
        "nopos.xml": (V3.replace('<POSITION X="-1.0" Y="0.0" Z="0.0"/>', ""),
                      "SPEAKER_1.POSITION", "missing"),
        "badnum.xml": (V3.replace('X="-1.0"', 'X="left"'), "SPEAKER_1.POSITION.X", "number"),
        "badpos.xml": (V4.replace('"(0, -0.5, 0)"', '"(0, -0.5)"'),
                       "SPEAKER_GROUP 'balcony'.SPEAKER[3].CARTESIAN_POSITION", "(x, y, z)"),
        "zero.xml": (V3.replace('X="0.0" Y="0.6" Z="0.8"', 'X="0" Y="0" Z="0"'),
                     "SPEAKER_3.position", "zero distance"),
        "patch0.xml": (V3.replace("SPEAKER_9", "SPEAKER_0"), "SPEAKER_0.channel", ">= 1"),
    }
    for name, (text, key, words) in cases.items():
        path = write(tmp_path, text, name)
        with pytest.raises(LayoutError) as err:
            import_layout(path)
        assert str(path) in str(err.value), name
        assert err.value.key == key and words in err.value.problem, (name, err.value)


# --- IEM --------------------------------------------------------------------------------------

IEM = {
    "Name": "Studio",
    "Description": "four real, one imaginary",
    "LoudspeakerLayout": {
        "Name": "Studio ring",
        "Loudspeakers": [
            {"Azimuth": 45.0, "Elevation": 0.0, "Radius": 2.0, "IsImaginary": False,
             "Channel": 1, "Gain": 1.0},
            {"Azimuth": -45.0, "Elevation": 0.0, "Radius": 2.0, "IsImaginary": False,
             "Channel": 2, "Gain": 0.5},
            {"Azimuth": 180.0, "Elevation": 30.0, "Radius": 1.0, "IsImaginary": False,
             "Channel": 4, "Gain": 1.0},
            {"Azimuth": 0.0, "Elevation": -90.0, "Radius": 1.0, "IsImaginary": True,
             "Channel": 5, "Gain": 0.0},
            {"Azimuth": 90, "Elevation": 45, "Radius": 1.5, "IsImaginary": False,
             "Channel": 3, "Gain": 1},
        ],
    },
}


def test_iem(tmp_path: Path) -> None:
    layout = import_iem(write(tmp_path, json.dumps(IEM), "studio.json"))
    assert layout.name == "Studio ring" and layout.channels() == (1, 2, 4, 3)  # imaginary skipped
    one, two, four, three = layout.speakers
    r = math.sqrt(0.5)
    assert close(one.xyz, (-r, r, 0.0))  # IEM azimuth is positive to the left, as ADM
    assert close(two.xyz, (r, r, 0.0))
    assert one.distance_m == pytest.approx(2.0) and four.distance_m == pytest.approx(1.0)
    assert close(four.xyz, (0.0, -0.5 * math.cos(math.radians(30)), 0.25))  # metres / 2
    assert close(three.xyz, (-0.75 * r, 0.0, 0.75 * r))
    assert two.gain_db == pytest.approx(20 * math.log10(0.5))
    assert layout.needs_nadir()
    other = import_layout(write(tmp_path, json.dumps(IEM), "studio.cfg"))  # by content
    assert other.speakers == layout.speakers


def test_iem_errors_name_the_file(tmp_path: Path) -> None:
    bad_gain = json.loads(json.dumps(IEM))
    bad_gain["LoudspeakerLayout"]["Loudspeakers"][1]["Gain"] = 0.0
    no_channel = json.loads(json.dumps(IEM))
    del no_channel["LoudspeakerLayout"]["Loudspeakers"][0]["Channel"]
    cases = {
        "broken.json": ('{"LoudspeakerLayout": {"Loudspeakers": [', "-", "not valid JSON"),
        "other.json": ('{"Decoder": {}}', "LoudspeakerLayout", "missing"),
        "gain.json": (json.dumps(bad_gain), "LoudspeakerLayout.Loudspeakers[1].Gain", "> 0"),
        "channel.json": (json.dumps(no_channel), "LoudspeakerLayout.Loudspeakers[0].Channel",
                         "integer"),
        "nan.json": (json.dumps(IEM).replace('"Azimuth": 45.0', '"Azimuth": NaN'),
                     "LoudspeakerLayout.Loudspeakers[0].Azimuth", "finite"),
    }
    for name, (text, key, words) in cases.items():
        path = write(tmp_path, text, name)
        with pytest.raises(LayoutError) as err:
            import_iem(path)
        assert str(path) in str(err.value), name
        assert err.value.key == key and words in err.value.problem, (name, err.value)


def test_import_layout_reads_the_own_format_too(tmp_path: Path) -> None:
    path = write(tmp_path, dumps_layout(load_layout(LAYOUTS / "quad.toml")), "quad.txt")
    assert import_layout(path) == load_layout(LAYOUTS / "quad.toml")
    subbed = import_layout(path, subwoofers=[4])
    assert [s.channel for s in subbed.subwoofers()] == [4]
    with pytest.raises(LayoutError) as err:
        import_layout(path, subwoofers=[99])
    assert err.value.key == "subwoofers"
    with pytest.raises(LayoutError, match="not a SpatGRIS XML, IEM JSON or stage-agent TOML"):
        import_layout(write(tmp_path, "hello there", "x.txt"))
