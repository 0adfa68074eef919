"""The visuals' OSC messages, byte for byte against the OSC 1.0 spec, and the plan's split."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage

from agent.policy.controls import MODES, Controls
from agent.visuals.state import MAX_DATAGRAM, messages, plan_size
from tests.osc_spec import f, i, s


def dgrams(kind: str, payload: dict[str, Any]) -> list[bytes]:
    return [m.dgram for m in messages(kind, payload)]


def test_tempo_bytes_written_out() -> None:
    assert dgrams("tempo", {"bpm": 120.0, "confidence": 0.9, "source": "onsets"}) == [
        b"/stage-agent/tempo\0\0"   # 18 characters + NUL, padded to 20
        b",ffs\0\0\0\0"             # type tags: 4 characters + NUL, padded to 8
        b"\x42\xf0\x00\x00"         # 120.0 as a big-endian float32
        b"\x3f\x66\x66\x66"         # 0.9
        b"onsets\0\0"]


def test_key_mode_section_roles() -> None:
    assert dgrams("key", {"key": "G major", "chord": None}) == [
        s("/stage-agent/key") + s(",ss") + s("G major") + s("")]
    assert dgrams("key", {"key": None, "chord": None}) == [
        s("/stage-agent/key") + s(",ss") + s("") + s("")]
    assert dgrams("mode", {"mode": "accompany", "section": None}) == [
        s("/stage-agent/mode") + s(",ss") + s("accompany") + s("")]
    assert dgrams("section", {"name": "solo", "index": 2, "bar": 17}) == [
        s("/stage-agent/section") + s(",sii") + s("solo") + i(2) + i(17)]
    assert dgrams("roles", {"melody": "soloing", "bass": "comping"}) == [
        s("/stage-agent/roles") + s(",ssss") + s("melody") + s("soloing") + s("bass")
        + s("comping")]
    assert dgrams("roles", {}) == [s("/stage-agent/roles") + s(",")]


def test_controls_one_message_per_control() -> None:
    c = Controls(mode="solo", density=1.5, register=-5, styles=(("bach", 2.0), ("folk", 1.0)),
                 mute=True)
    assert dgrams("controls", c.to_dict()) == [
        s("/stage-agent/controls/mode") + s(",s") + s("solo"),
        s("/stage-agent/controls/temperature") + s(",f") + f(0.9),
        s("/stage-agent/controls/density") + s(",f") + f(1.5),
        s("/stage-agent/controls/register") + s(",i") + i(-5),
        s("/stage-agent/controls/dynamics") + s(",f") + f(0.0),
        s("/stage-agent/controls/valence") + s(",f") + f(0.0),
        s("/stage-agent/controls/arousal") + s(",f") + f(0.0),
        s("/stage-agent/controls/styles") + s(",sfsf") + s("bach") + f(2.0) + s("folk") + f(1.0),
        s("/stage-agent/controls/memory_weight") + s(",f") + f(0.0),
        s("/stage-agent/controls/mute") + s(",i") + i(1),
    ]


def test_plan_bytes() -> None:
    t = 5_123_456_789_012  # ns: plan id = 5123456 ms
    plan = {"mode": "call-response", "t": t,
            "notes": [[0, 60, 90, 250, 1], [500, 64, 70, 1000, 0]]}
    assert dgrams("plan", plan) == [
        s("/stage-agent/plan") + s(",siiifiififiifi") + s("call-response")
        + i(5123456) + i(0) + i(1)
        + f(0.0) + i(60) + i(90) + f(0.25) + i(1)
        + f(0.5) + i(64) + i(70) + f(1.0) + i(0)]
    assert dgrams("plan", {"mode": "solo", "t": 0, "notes": []}) == [
        s("/stage-agent/plan") + s(",siii") + s("solo") + i(0) + i(0) + i(1)]


def _decode_plan(dgram: bytes) -> tuple[str, int, int, int, list[list[Any]]]:
    params = OscMessage(dgram).params
    notes = [params[k:k + 5] for k in range(4, len(params), 5)]
    return params[0], params[1], params[2], params[3], notes


@given(st.sampled_from(MODES), st.integers(0, 2**62),
       st.lists(st.tuples(st.integers(0, 60_000), st.integers(0, 127), st.integers(1, 127),
                          st.integers(1, 8000), st.integers(0, 1)), max_size=400))
def test_a_plan_split_keeps_every_note_once_in_full_datagrams(
        mode: str, t: int, notes: list[tuple[int, int, int, int, int]]) -> None:
    parts = dgrams("plan", {"mode": mode, "t": t, "notes": [list(n) for n in notes]})
    decoded = [_decode_plan(d) for d in parts]
    assert all(len(d) <= MAX_DATAGRAM for d in parts)
    assert [(m, pid, part, n) for m, pid, part, n, _ in decoded] == [
        (mode, t // 1_000_000 % 2**31, k, len(parts)) for k in range(len(parts))]
    got = [note for *_h, part_notes in decoded for note in part_notes]
    assert len(got) == len(notes)
    for (start, pitch, vel, dur, committed), (g_start, g_pitch, g_vel, g_dur, g_comm) in zip(
            notes, got, strict=True):
        assert (g_pitch, g_vel, g_comm) == (pitch, vel, committed)
        assert g_start == pytest.approx(start / 1000, rel=1e-6)
        assert g_dur == pytest.approx(dur / 1000, rel=1e-6)
    for d, (*_h, part_notes) in zip(parts[:-1], decoded[:-1], strict=True):  # greedy: full
        assert len(d) == plan_size(mode, len(part_notes))
        assert plan_size(mode, len(part_notes) + 1) > MAX_DATAGRAM


def test_a_big_plan_is_split() -> None:
    notes = [[k * 100, 60 + k % 12, 80, 100, k % 2] for k in range(120)]
    parts = dgrams("plan", {"mode": "call-response", "t": 0, "notes": notes})
    assert [_decode_plan(d)[2:4] for d in parts] == [(0, 3), (1, 3), (2, 3)]
    assert [len(_decode_plan(d)[4]) for d in parts] == [53, 53, 14]


def test_unknown_kind_and_malformed_payloads_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown state kind 'weather'"):
        messages("weather", {})
    bad: list[tuple[str, dict[str, Any]]] = [
        ("tempo", {"bpm": 120.0}),
        ("tempo", {"bpm": "fast", "confidence": 1, "source": "x"}),
        ("tempo", {"bpm": float("nan"), "confidence": 1, "source": "x"}),
        ("section", {"name": "a", "index": 2**31, "bar": 0}),
        ("roles", {"a": 3}), ("controls", {"bad/name": 1.0}), ("controls", {"x": [1]}),
        ("plan", {"mode": "solo", "t": 0, "notes": [[0, 60, 80]]}),
        ("plan", {"mode": "solo", "t": 0, "notes": [[0, 60, 80, 100, 2]]}),
        ("plan", {"mode": "solo", "t": 0.5, "notes": []}),
        ("plan", {"mode": "x" * 2000, "t": 0, "notes": [[0, 60, 80, 100, 1]]})]
    for kind, payload in bad:
        with pytest.raises(ValueError):
            messages(kind, payload)
