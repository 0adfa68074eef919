"""The spatial adapters byte for byte against the OSC 1.0 spec and against python-osc's builder
(random voices), bundling, and the sender's change-only, rate cap, refresh and panic (on frame
times: no real clock, no real network)."""

from __future__ import annotations

import errno
import itertools
import logging
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from agent.io.osc import OscError
from agent.io.osc_spatial import Destination, SpatialSender
from agent.spatial.adapters import MUTE_DB, adm, bundles, gains, satie, spatgris
from agent.spatial.frame import Frame, Voice, aed_to_xyz, xyz_to_aed
from agent.visuals.spatial import floats, onset, scene, tick
from tests.osc_spec import f, i, s

MS = 1_000_000


def dgrams(elements: list[bytes]) -> list[bytes]:
    """The messages in what an adapter returns: bundle elements, each an int32 size then a
    message (a voice's several concatenated)."""
    out = []
    for e in elements:
        k = 0
        while k < len(e):
            (n,) = struct.unpack(">i", e[k:k + 4])
            out.append(e[k + 4:k + 4 + n])
            k += 4 + n
        assert k == len(e)
    return out


def decoded(elements: list[bytes]) -> list[OscMessage]:
    return [OscMessage(m) for m in dgrams(elements)]


# Two voices: "lead" asked to go beyond the left wall (x clamped to -1), "bass" in front, muted.
LEAD = Voice(1, "lead", -1.5, 0.0, 0.0, gain=1.0)
BASS = Voice(2, "bass", 0.0, 1.0, 0.0, gain=0.5, mute=True)


def test_the_spec_helpers_themselves() -> None:
    assert (s("/adm/obj/1/xyz") + s(",fff") + f(-1.0) + f(0.0) + f(0.0)) == bytes.fromhex(
        "2f61646d2f6f626a2f312f78797a0000"  # 14 characters + NUL, padded to 16
        "2c66666600000000"                  # ",fff" + NUL, padded to 8
        "bf800000" "00000000" "00000000")   # -1.0, 0.0, 0.0 as big-endian float32


def test_adm_bytes() -> None:
    assert dgrams(adm([LEAD, BASS], full=True)) == [
        s("/adm/obj/1/name") + s(",s") + s("lead"),
        s("/adm/obj/1/xyz") + s(",fff") + f(-1.0) + f(0.0) + f(0.0),
        s("/adm/obj/1/gain") + s(",f") + f(1.0),
        s("/adm/obj/1/mute") + s(",i") + i(0),
        s("/adm/obj/2/name") + s(",s") + s("bass"),
        s("/adm/obj/2/xyz") + s(",fff") + f(0.0) + f(1.0) + f(0.0),
        s("/adm/obj/2/gain") + s(",f") + f(0.5),
        s("/adm/obj/2/mute") + s(",i") + i(1)]
    # Not on a refresh: no names. With aed: the left wall is azimuth +90 (ADM: positive left).
    assert dgrams(adm([LEAD], aed=True)) == [
        s("/adm/obj/1/xyz") + s(",fff") + f(-1.0) + f(0.0) + f(0.0),
        s("/adm/obj/1/aed") + s(",fff") + f(90.0) + f(0.0) + f(1.0),
        s("/adm/obj/1/gain") + s(",f") + f(1.0),
        s("/adm/obj/1/mute") + s(",i") + i(0)]


def test_spatgris_bytes() -> None:
    assert dgrams(spatgris([LEAD, BASS])) == [
        s("/spat/serv") + s(",sifffff") + s("car") + i(1) + f(-1.0) + f(0.0) + f(0.0)
        + f(0.0) + f(0.0),
        s("/spat/serv") + s(",si") + s("clr") + i(2)]
    assert dgrams(spatgris([LEAD], coords="deg")) == [  # clockwise: the left wall is -90
        s("/spat/serv") + s(",sifffff") + s("deg") + i(1) + f(-90.0) + f(0.0) + f(1.0)
        + f(0.0) + f(0.0)]


def test_satie_bytes() -> None:
    assert dgrams(satie([LEAD, BASS], rig_radius_m=8.0)) == [
        s("/satie/source/update") + s(",sffffff") + s("lead") + f(-90.0) + f(0.0) + f(0.0)
        + f(1.0) + f(15000.0) + f(8.0),
        s("/satie/source/update") + s(",sffffff") + s("bass") + f(0.0) + f(0.0) + f(MUTE_DB)
        + f(1.0) + f(15000.0) + f(8.0)]
    playing = Voice(2, "bass", 0.0, 0.5, 0.0, gain=0.1)  # -20 dB, half-way to the front wall
    assert dgrams(satie([playing], rig_radius_m=8.0)) == [
        s("/satie/source/update") + s(",sffffff") + s("bass") + f(0.0) + f(0.0) + f(-20.0)
        + f(1.0) + f(15000.0) + f(4.0)]


def test_gains_bytes() -> None:
    rows = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]
    assert dgrams(gains([LEAD, BASS], rows)) == [
        s("/stage-agent/gains/1") + s(",fff") + f(1.0) + f(0.0) + f(0.0),
        s("/stage-agent/gains/2") + s(",fff") + f(0.0) + f(0.0) + f(0.0)]  # muted
    playing = Voice(2, "bass", 0.0, 1.0, 0.0, gain=0.5)
    assert dgrams(gains([playing], rows[1:])) == [
        s("/stage-agent/gains/2") + s(",fff") + f(0.0) + f(0.3) + f(0.4)]
    with pytest.raises(ValueError, match="matrix"):
        gains([LEAD, BASS], rows[:1])


def test_visuals_bytes() -> None:
    assert dgrams(tick([LEAD, BASS], [1, 2], 7)) == [
        s("/stage-agent/voice/alive") + s(",ii") + i(1) + i(2),
        s("/stage-agent/voice/set") + s(",isffffi") + i(1) + s("lead") + f(-1.0) + f(0.0)
        + f(0.0) + f(1.0) + i(0),
        s("/stage-agent/voice/set") + s(",isffffi") + i(2) + s("bass") + f(0.0) + f(1.0)
        + f(0.0) + f(0.5) + i(1),
        s("/stage-agent/voice/frame") + s(",i") + i(7)]
    assert dgrams(floats([BASS])) == [
        s("/stage-agent/v/2/x") + s(",f") + f(0.0), s("/stage-agent/v/2/y") + s(",f") + f(1.0),
        s("/stage-agent/v/2/z") + s(",f") + f(0.0),
        s("/stage-agent/v/2/gain") + s(",f") + f(0.5),
        s("/stage-agent/v/2/mute") + s(",f") + f(1.0)]
    assert onset(1, 60, 100, 0.5, -0.25, 2.0) == (
        s("/stage-agent/voice/onset") + s(",iiifff") + i(1) + i(60) + i(100) + f(0.5)
        + f(-0.25) + f(1.0))
    assert scene("canon") == s("/stage-agent/scene") + s(",s") + s("canon")


def test_front_left_round_trip() -> None:
    """aed (30, 0, 1): front-left. ADM x < 0; SpatGRIS and SATIE (clockwise) say -30."""
    x, y, z = (float(c) for c in aed_to_xyz(30.0, 0.0, 1.0))
    v = Voice(1, "v", x, y, z)
    xyz = decoded(adm([v], aed=True))
    assert xyz[0].address == "/adm/obj/1/xyz" and xyz[0].params[0] < 0
    assert xyz[1].address == "/adm/obj/1/aed"
    assert xyz[1].params == pytest.approx([30.0, 0.0, 1.0], abs=1e-4)
    (deg,) = decoded(spatgris([v], coords="deg"))
    assert deg.params[:2] == ["deg", 1] and deg.params[2:5] == pytest.approx([-30, 0, 1], abs=1e-4)
    (car,) = decoded(spatgris([v]))
    assert car.params[2:5] == pytest.approx([-0.5, math.sqrt(3) / 2, 0.0], abs=1e-6)
    (up,) = decoded(satie([v]))
    assert up.params[1] == pytest.approx(-30.0, abs=1e-4)


def test_bad_voices_are_refused() -> None:
    with pytest.raises(ValueError, match="count from 1"):
        adm([Voice(0, "zero", 0, 0, 0)])
    with pytest.raises(ValueError, match=r"1\.\.256"):
        spatgris([Voice(257, "many", 0, 0, 0)])
    nan = Voice(1, "nan", math.nan, math.inf, 0.0, gain=math.nan)
    xyz, gain, _ = decoded(adm([nan]))
    assert xyz.params == [0.0, 0.0, 0.0] and gain.params == [0.0]
    with pytest.raises(ValueError, match="float32"):  # python-osc refuses it too
        adm([Voice(1, "loud", 0.0, 1.0, 0.0, gain=1e39)])


# --- the same bytes as python-osc's builder --------------------------------------------------
# The adapters as they were written with OscMessageBuilder: the same values (clamped, finite,
# converted as the module docstring says), encoded by python-osc. Only here, as the reference.


def built(address: str, *args: tuple[str, Any]) -> bytes:
    b = OscMessageBuilder(address)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build().dgram


def fin(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def clamp(v: Voice) -> tuple[float, float, float]:
    return (min(max(fin(v.x), -1.0), 1.0), min(max(fin(v.y), -1.0), 1.0),
            min(max(fin(v.z), -1.0), 1.0))


def aed_of(xyz: tuple[float, float, float]) -> tuple[float, float, float]:
    a, e, d = (float(c) for c in xyz_to_aed(np.array(xyz)))
    return a, e, d


def ref_adm(voices: list[Voice], full: bool, aed: bool) -> list[bytes]:
    out = []
    for v in voices:
        n = v.number
        if full:
            out.append(built(f"/adm/obj/{n}/name", ("s", v.name[:128])))
        x, y, z = clamp(v)
        out.append(built(f"/adm/obj/{n}/xyz", ("f", x), ("f", y), ("f", z)))
        if aed:
            a, e, d = aed_of((x, y, z))
            out.append(built(f"/adm/obj/{n}/aed", ("f", a), ("f", e), ("f", min(d, 1.0))))
        out.append(built(f"/adm/obj/{n}/gain", ("f", max(fin(v.gain), 0.0))))
        out.append(built(f"/adm/obj/{n}/mute", ("i", int(v.mute))))
    return out


def ref_spatgris(voices: list[Voice], coords: str) -> list[bytes]:
    out = []
    for v in voices:
        if v.number > 256:
            raise ValueError("SpatGRIS sources are 1..256")
        if v.mute:
            out.append(built("/spat/serv", ("s", "clr"), ("i", v.number)))
            continue
        x, y, z = clamp(v)
        if coords == "car":
            values = (x, y, z)
        else:
            a, e, d = aed_of((x, y, z))
            values = (-a if a != 0.0 else 0.0, e, d)
        out.append(built("/spat/serv", ("s", coords), ("i", v.number),
                         *(("f", c) for c in values), ("f", 0.0), ("f", 0.0)))
    return out


def ref_satie(voices: list[Voice], radius: float) -> list[bytes]:
    out = []
    for v in voices:
        a, e, d = aed_of(clamp(v))
        g = fin(v.gain)
        db = max(20.0 * math.log10(g), MUTE_DB) if g > 0.0 else MUTE_DB
        out.append(built("/satie/source/update", ("s", v.name), ("f", -a if a != 0.0 else 0.0),
                         ("f", e), ("f", MUTE_DB if v.mute else db), ("f", 1.0),
                         ("f", 15000.0), ("f", d * radius)))
    return out


def ref_gains(voices: list[Voice], rows: np.ndarray) -> list[bytes]:
    out = []
    for v, row in zip(voices, rows, strict=True):
        scale = 0.0 if v.mute else max(fin(v.gain), 0.0)
        with np.errstate(over="ignore"):
            values = np.where(np.isfinite(row), row, 0.0) * scale
        if np.isinf(values).any():  # python-osc would send it: the adapter never does
            raise OverflowError("a gain overflows to infinity")
        out.append(built(f"/stage-agent/gains/{v.number}", *(("f", float(g)) for g in values)))
    return out


def ref_tick(voices: list[Voice], alive: list[int], counter: int) -> list[bytes]:
    out = [built("/stage-agent/voice/alive", *(("i", n) for n in alive))]
    for v in voices:
        x, y, z = clamp(v)
        out.append(built("/stage-agent/voice/set", ("i", v.number), ("s", v.name), ("f", x),
                         ("f", y), ("f", z), ("f", fin(v.gain)), ("i", int(v.mute))))
    out.append(built("/stage-agent/voice/frame", ("i", counter % 2**31)))
    return out


def ref_floats(voices: list[Voice]) -> list[bytes]:
    out = []
    for v in voices:
        base = f"/stage-agent/v/{v.number}/"
        x, y, z = clamp(v)
        out += [built(base + "x", ("f", x)), built(base + "y", ("f", y)),
                built(base + "z", ("f", z)), built(base + "gain", ("f", fin(v.gain))),
                built(base + "mute", ("f", 1.0 if v.mute else 0.0))]
    return out


def same(ours: Callable[[], list[bytes]], ref: Callable[[], list[bytes]]) -> None:
    """Byte for byte; where python-osc refuses (a float beyond float32's range: OverflowError;
    a SpatGRIS source over 256), the adapter refuses too, with ValueError."""
    try:
        expected = ref()
    except (OverflowError, ValueError):
        with pytest.raises(ValueError):
            ours()
        return
    assert dgrams(ours()) == expected


FLOAT32_MAX = 3.4028234663852886e38
EDGES = [0.0, -0.0, 1.0, -1.0, 1.0000001, -1.0000001, 1e-45, 1e-46, 5e-324, FLOAT32_MAX,
         3.4028235677973366e38, 3.4028235677973367e38, 1e39, math.inf, -math.inf, math.nan]
VALUE = st.one_of(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5, width=32), st.floats(),
                  st.sampled_from(EDGES))
VOICE = st.builds(Voice, st.one_of(st.integers(1, 300), st.integers(1, 2**31 - 1)),
                  st.text(max_size=140), VALUE, VALUE, VALUE, VALUE, st.booleans())
VOICES = st.lists(VOICE, max_size=12)


FRONT = [Voice(1, "front", -0.0, 1.0, 0.0), Voice(2, "back", 0.0, -1.0, -0.0, gain=-0.0)]


@settings(max_examples=300)
@given(VOICES, st.booleans(), st.booleans(), st.sampled_from(["car", "deg"]),
       st.floats(0.1, 100.0))
@example(FRONT, True, True, "deg", 5.0)  # azimuth 0 and 180 from signed zeros: no "-0.0"
def test_the_adapters_make_python_osc_s_bytes(voices: list[Voice], full: bool, aed: bool,
                                               coords: str, radius: float) -> None:
    same(lambda: adm(voices, full, aed), lambda: ref_adm(voices, full, aed))
    same(lambda: spatgris(voices, full, coords), lambda: ref_spatgris(voices, coords))
    same(lambda: satie(voices, full, radius), lambda: ref_satie(voices, radius))
    same(lambda: floats(voices), lambda: ref_floats(voices))


@settings(max_examples=200)
@given(st.data(), VOICES, st.integers(0, 9))
def test_gains_make_python_osc_s_bytes(data: st.DataObject, voices: list[Voice],
                                       speakers: int) -> None:
    rows = data.draw(hnp.arrays(np.float64, (len(voices), speakers),
                                elements=st.one_of(st.floats(), st.floats(0, 1),
                                                   st.sampled_from(EDGES))))
    same(lambda: gains(voices, rows), lambda: ref_gains(voices, rows))


@settings(max_examples=200)
@given(VOICES, st.lists(st.integers(-(2**31), 2**31 - 1), max_size=70),
       st.integers(0, 2**64), st.text(max_size=60), st.lists(VALUE, min_size=3, max_size=3),
       st.lists(st.integers(-(2**31), 2**31 - 1), min_size=3, max_size=3))
def test_the_visuals_make_python_osc_s_bytes(voices: list[Voice], alive: list[int],
                                             counter: int, name: str, xyz: list[float],
                                             ints: list[int]) -> None:
    same(lambda: tick(voices, alive, counter), lambda: ref_tick(voices, alive, counter))
    where = clamp(Voice(1, "", *xyz))
    assert onset(*ints, *xyz) == built("/stage-agent/voice/onset",
                                       *(("i", k) for k in ints), *(("f", c) for c in where))
    assert scene(name) == built("/stage-agent/scene", ("s", name))


# --- bundles ----------------------------------------------------------------------------------

ADDRESS = st.from_regex(r"/[a-z]{1,12}(/[a-z0-9]{1,12}){0,3}", fullmatch=True)
ARG = st.one_of(st.tuples(st.just("f"), st.floats(-1e6, 1e6, width=32)),
                st.tuples(st.just("i"), st.integers(-(2**31), 2**31 - 1)),
                st.tuples(st.just("s"), st.text(st.characters(codec="utf-8",
                                                              exclude_characters="\0"),
                                                 max_size=40)))


def message(address: str, args: list[tuple[str, Any]]) -> bytes:
    """A message as a bundle element: int32 size, then the message."""
    tags = "," + "".join(t for t, _ in args)
    body = b"".join(f(v) if t == "f" else i(v) if t == "i" else s(v) for t, v in args)
    m = s(address) + s(tags) + body
    return i(len(m)) + m


@settings(max_examples=200)
@given(st.lists(st.tuples(ADDRESS, st.lists(ARG, max_size=30)), max_size=120),
       st.integers(400, 1400))
def test_bundles_fit_and_keep_every_message_once_in_order(
        spec: list[tuple[str, list[tuple[str, Any]]]], limit: int) -> None:
    messages = [m for m in (message(a, args) for a, args in spec) if len(m) + 16 <= limit]
    packets = bundles(messages, limit)
    got: list[bytes] = []
    for p in packets:
        assert len(p) <= limit
        assert p[:16] == b"#bundle\0" + b"\0" * 7 + b"\1"  # timetag: immediately
        k = 16
        while k < len(p):  # each element: int32 size, then a message
            (n,) = struct.unpack(">i", p[k:k + 4])
            got.append(p[k + 4:k + 4 + n])
            k += 4 + n
        assert k == len(p)
    assert got == dgrams(messages)
    assert bool(packets) == bool(messages)  # no empty bundle
    # Greedy: no bundle could have taken the next bundle's first message.
    for a, b in itertools.pairwise(packets):
        (n,) = struct.unpack(">i", b[16:20])
        assert len(a) + 4 + n > limit


def test_a_message_too_big_for_any_bundle_is_refused() -> None:
    with pytest.raises(ValueError, match="no bundle"):
        bundles([message("/big", [("s", "x" * 1400)])])


def test_64_adm_objects_need_several_bundles() -> None:
    voices = [Voice(n, f"v{n}", 0.01 * n, 0.5, 0.0) for n in range(1, 65)]
    packets = bundles(adm(voices, full=True))
    assert len(packets) > 1 and all(len(p) <= 1400 for p in packets)


# --- the sender, on a capturing socket --------------------------------------------------------


class Capture:
    """Stands in for a connected UDP socket: keeps what is sent; can fail on demand."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.errors: list[OSError] = []

    def connect(self, addr: Any) -> None:
        pass

    def send(self, data: bytes) -> int:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(data)
        return len(data)

    def close(self) -> None:
        pass

    def take(self) -> list[tuple[str, list[Any]]]:
        """Every message sent since the last take, bundles unpacked, in order."""
        out = []
        for data in self.sent:
            out += [(t.message.address, list(t.message.params)) for t in OscPacket(data).messages]
        self.sent.clear()
        return out


def sender(*dests: Destination) -> tuple[SpatialSender, list[Capture]]:
    out = SpatialSender(list(dests))
    caps = []
    for d in out._dests:
        d.peer.sock.close()
        cap = Capture()
        d.peer.sock = cap  # type: ignore[assignment]
        caps.append(cap)
    return out, caps


def frame(t_ms: float, *voices: Voice, counter: int = 0) -> Frame:
    return Frame(counter, round(t_ms * MS), tuple(voices))


def addresses(msgs: list[tuple[str, list[Any]]]) -> list[str]:
    return [a for a, _ in msgs]


def test_change_only_and_refresh() -> None:
    out, (cap,) = sender(Destination("127.0.0.1", 9, "adm"))
    lead, bass = LEAD, Voice(2, "bass", 0.0, 1.0, 0.0)
    out.send(frame(0, lead, bass))
    assert addresses(cap.take()) == [
        "/adm/obj/1/name", "/adm/obj/1/xyz", "/adm/obj/1/gain", "/adm/obj/1/mute",
        "/adm/obj/2/name", "/adm/obj/2/xyz", "/adm/obj/2/gain", "/adm/obj/2/mute"]
    out.send(frame(20, lead, bass))  # the same again: nothing
    out.send(frame(40, lead, Voice(2, "bass", 0.00005, 1.0, 0.0)))  # within the tolerance
    assert cap.take() == []
    out.send(frame(60, lead, Voice(2, "bass", 0.001, 1.0, 0.0)))  # only the voice that moved
    assert addresses(cap.take()) == ["/adm/obj/2/xyz", "/adm/obj/2/gain", "/adm/obj/2/mute"]
    out.send(frame(1000, lead, Voice(2, "bass", 0.001, 1.0, 0.0)))  # a second on: everything
    assert len(cap.take()) == 8
    out.send(frame(1020, lead))  # bass is gone: muted once, then forgotten
    assert cap.take() == [("/adm/obj/2/xyz", [pytest.approx(0.001), 1.0, 0.0]),
                          ("/adm/obj/2/gain", [1.0]), ("/adm/obj/2/mute", [1])]
    out.send(frame(1040, lead))
    assert cap.take() == []
    assert out.stats["127.0.0.1:9/adm"] == {"sent": 4, "dropped": 0, "ticks": 4, "capped": 0,
                                            "errors": 0}


def moving(t_ms: float) -> Frame:
    return frame(t_ms, Voice(1, "v", math.sin(t_ms / 100), 0.5, 0.0))


def test_rate_cap_on_frame_times() -> None:
    out, (fast, slow) = sender(Destination("127.0.0.1", 9, "adm", max_rate_hz=200),
                               Destination("127.0.0.1", 10, "adm", max_rate_hz=50))
    sent_at = []
    for k in range(200):  # one second of frames at 200 Hz, every one moving
        out.send(moving(5 * k))
        if slow.take():
            sent_at.append(k)
    assert sent_at == list(range(0, 200, 4))  # one in four, on the grid
    assert len(fast.take()) == 200 * 3 + 1  # every frame (and the name on the first)
    assert out.stats["127.0.0.1:10/adm"]["capped"] == 150
    # Jittered frames keep the grid: 50 a second, give or take one, not 40.
    out2, (cap,) = sender(Destination("127.0.0.1", 9, "adm", max_rate_hz=50))
    rng = np.random.default_rng(1)
    ticks = 0
    for k in range(1000):
        out2.send(moving(5 * k + rng.uniform(-1, 1)))
        ticks += bool(cap.take())
    assert abs(ticks - 250) <= 1


def test_a_stalled_or_rewound_clock_starts_a_new_grid() -> None:
    out, (cap,) = sender(Destination("127.0.0.1", 9, "adm", max_rate_hz=50))
    went = []
    for t_ms in (0, 500, 505, 520, 3, 10, 23):  # a stall at 500; a new replay at 3
        out.send(moving(t_ms))
        went.append(bool(cap.take()))
    assert went == [True, True, False, True, True, False, True]


def test_panic_ignores_the_cap_and_mutes_everything_everywhere() -> None:
    out, caps = sender(*(Destination("127.0.0.1", 9 + k, p, max_rate_hz=50)
                         for k, p in enumerate(("adm", "spatgris", "satie", "gains", "visuals",
                                                "visuals-floats"))))
    a, b = Voice(1, "a", 0.0, 1.0, 0.0), Voice(2, "b", 1.0, 0.0, 0.0, gain=0.5)
    out.send(frame(0, a, b, counter=3), gains=[[1.0, 0.0], [0.0, 1.0]])
    for cap in caps:
        cap.take()
    out.panic()  # 1 ms later: the cap would refuse a frame, a panic goes
    adm_, spat, sat, gain, vis, flo = (cap.take() for cap in caps)
    assert [m for m in adm_ if m[0].endswith("mute")] == [("/adm/obj/1/mute", [1]),
                                                        ("/adm/obj/2/mute", [1])]
    assert spat == [("/spat/serv", ["clr", 1]), ("/spat/serv", ["clr", 2])]
    assert [m[1][3] for m in sat] == [MUTE_DB, MUTE_DB]
    assert gain == [("/stage-agent/gains/1", [0.0, 0.0]), ("/stage-agent/gains/2", [0.0, 0.0])]
    assert [m[1][-1] for m in vis if m[0] == "/stage-agent/voice/set"] == [1, 1]
    assert vis[-1] == ("/stage-agent/voice/frame", [3])
    assert [m for m in flo if m[0].endswith("mute")] == [("/stage-agent/v/1/mute", [1.0]),
                                                       ("/stage-agent/v/2/mute", [1.0])]
    # The next frame says what is true again: a voice still playing is unmuted (next slot).
    out.send(frame(20, a, b, counter=4), gains=[[1.0, 0.0], [0.0, 1.0]])
    assert ("/adm/obj/1/mute", [0]) in caps[0].take()
    assert caps[1].take()[0] == ("/spat/serv", ["car", 1, 0.0, 1.0, 0.0, 0.0, 0.0])


def test_visuals_heartbeat_and_events() -> None:
    out, (adm_cap, vis, flo) = sender(Destination("127.0.0.1", 9, "adm"),
                                      Destination("127.0.0.1", 10, "visuals"),
                                      Destination("127.0.0.1", 11, "visuals-floats"))
    v = Voice(4, "lead", 0.0, 1.0, 0.0)
    out.send(frame(0, v, counter=10))
    assert addresses(vis.take()) == ["/stage-agent/voice/alive", "/stage-agent/voice/set",
                                     "/stage-agent/voice/frame"]
    flo.take()
    out.send(frame(20, v, counter=11))  # nothing changed: alive and frame only
    assert vis.take() == [("/stage-agent/voice/alive", [4]), ("/stage-agent/voice/frame", [11])]
    assert flo.take() == []
    out.send(frame(40, counter=12))  # the voice left
    assert vis.take() == [("/stage-agent/voice/alive", []), ("/stage-agent/voice/frame", [12])]
    assert flo.take()[-1] == ("/stage-agent/v/4/mute", [1.0])
    adm_cap.take()
    out.event_onset(4, 64, 90, 0.0, 1.0, 0.0)
    out.event_scene("canon")
    for cap in (vis, flo):
        assert cap.take() == [("/stage-agent/voice/onset", [4, 64, 90, 0.0, 1.0, 0.0]),
                              ("/stage-agent/scene", ["canon"])]
    assert adm_cap.take() == []


def test_a_failed_send_is_counted_and_the_voice_goes_again(
        caplog: pytest.LogCaptureFixture) -> None:
    out, (cap,) = sender(Destination("127.0.0.1", 9, "adm", refresh_hz=0))
    v = Voice(1, "v", 0.0, 1.0, 0.0)
    cap.errors.append(BlockingIOError(errno.EAGAIN, "would block"))
    with caplog.at_level(logging.WARNING, "agent.io.osc_spatial"):
        out.send(frame(0, v))
    assert cap.take() == [] and out.stats["127.0.0.1:9/adm"]["dropped"] == 1
    out.send(frame(20, v))  # unchanged, but never arrived: sent again, name and all
    assert addresses(cap.take()) == ["/adm/obj/1/name", "/adm/obj/1/xyz", "/adm/obj/1/gain",
                                     "/adm/obj/1/mute"]
    out.send(frame(40, v))
    assert cap.take() == []
    assert len(caplog.records) == 1 and "127.0.0.1:9" in caplog.records[0].getMessage()


def test_an_adapter_error_spares_the_other_destinations(
        caplog: pytest.LogCaptureFixture) -> None:
    out, (spat, adm_cap) = sender(Destination("127.0.0.1", 9, "spatgris"),
                                  Destination("127.0.0.1", 10, "adm"))
    with caplog.at_level(logging.WARNING, "agent.io.osc_spatial"):
        out.send(frame(0, Voice(300, "v", 0.0, 1.0, 0.0)))
        out.send(frame(20, Voice(300, "v", 0.5, 1.0, 0.0)))
        out.panic()
    assert spat.take() == [] and len(adm_cap.take()) == 4 + 3 + 3
    assert out.stats["127.0.0.1:9/spatgris"]["errors"] == 3
    assert len(caplog.records) == 1 and "1..256" in caplog.records[0].getMessage()
    with pytest.raises(ValueError, match="shape"):  # the caller's bug: raised, nothing sent
        out.send(frame(40, Voice(1, "v", 0, 0, 0)), gains=np.zeros((2, 3)))


def test_bad_destinations_are_refused() -> None:
    for bad in ({"protocol": "vbap"}, {"max_rate_hz": 0}, {"refresh_hz": -1},
                {"coords": "pol"}, {"rig_radius_m": 0}, {"port": 0}):
        kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": 9, "protocol": "adm"} | bad
        with pytest.raises(OscError):
            Destination(**kwargs)
    with pytest.raises(OscError, match="twice"):
        SpatialSender([Destination("127.0.0.1", 9, "adm")] * 2)
    with pytest.raises(OscError, match="OSC destination"):
        SpatialSender([Destination("x" * 64 + ".example", 9, "adm")])
