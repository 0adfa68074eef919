"""Controls: every value checked (messages name the control); the mood mapping, exactly."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.policy.controls import (
    MODES,
    RANGES,
    Controls,
    ControlValueError,
    Mood,
    check_changes,
    mood,
)

KNOWN = ("mode, temperature, density, register, dynamics, valence, arousal, memory_weight, "
         "styles, mute")


def error(changes: dict[str, Any]) -> str:
    with pytest.raises(ControlValueError) as info:
        check_changes(changes)
    return str(info.value)


# -- defaults and changes ---------------------------------------------------------------------

def test_defaults_as_a_dict() -> None:
    assert Controls().to_dict() == {
        "mode": "call-response", "temperature": 0.9, "density": 1.0, "register": 0,
        "dynamics": 0.0, "valence": 0.0, "arousal": 0.0, "styles": {}, "memory_weight": 0.0,
        "mute": False}


def test_with_changes_returns_new_controls_and_leaves_the_old_ones() -> None:
    c = Controls()
    d = c.with_changes({"mode": "solo", "density": 2, "register": -12, "mute": True})
    assert d == Controls(mode="solo", density=2.0, register=-12, mute=True)
    assert c == Controls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.density = 3.0  # type: ignore[misc]


def test_a_bad_value_among_good_ones_changes_nothing() -> None:
    c = Controls()
    with pytest.raises(ControlValueError, match=r"^density: "):
        c.with_changes({"register": 3, "density": 99})
    assert c == Controls()


def test_numbers_become_the_controls_type() -> None:
    out = check_changes({"density": 2, "temperature": 1, "memory_weight": 0, "register": 7})
    assert out == {"density": 2.0, "temperature": 1.0, "memory_weight": 0.0, "register": 7}
    assert [type(out[k]) for k in ("density", "temperature", "memory_weight", "register")] == [
        float, float, float, int]


def test_empty_changes_are_no_changes() -> None:
    assert check_changes({}) == {}
    assert Controls(density=2.0).with_changes({}) == Controls(density=2.0)


# -- ranges and types -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_ends_are_allowed(name: str) -> None:
    kind, low, high = RANGES[name]
    for value in (kind(low), kind(high)):
        assert check_changes({name: value}) == {name: value}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("temperature", 0.04, "temperature: 0.04 is out of range 0.05..5.0"),
    ("temperature", 5.01, "temperature: 5.01 is out of range 0.05..5.0"),
    ("density", 0.2, "density: 0.2 is out of range 0.25..4.0"),
    ("density", 4.5, "density: 4.5 is out of range 0.25..4.0"),
    ("register", 37, "register: 37 is out of range -36..36"),
    ("register", -37, "register: -37 is out of range -36..36"),
    ("dynamics", -1.5, "dynamics: -1.5 is out of range -1.0..1.0"),
    ("valence", 1.01, "valence: 1.01 is out of range -1.0..1.0"),
    ("arousal", -2, "arousal: -2 is out of range -1.0..1.0"),
    ("memory_weight", 1.5, "memory_weight: 1.5 is out of range 0.0..1.0"),
    ("memory_weight", -0.1, "memory_weight: -0.1 is out of range 0.0..1.0"),
    ("temperature", math.nan, "temperature: nan is out of range 0.05..5.0"),
    ("density", math.inf, "density: inf is out of range 0.25..4.0"),
])
def test_out_of_range_values_are_refused_by_name(name: str, value: float, message: str) -> None:
    assert error({name: value}) == message


@pytest.mark.parametrize(("name", "value", "message"), [
    ("density", True, "density: expected float, got True"),  # a bool is not a number
    ("dynamics", False, "dynamics: expected float, got False"),
    ("temperature", "1.0", "temperature: expected float, got '1.0'"),
    ("valence", None, "valence: expected float, got None"),
    ("arousal", [0.5], "arousal: expected float, got [0.5]"),
    ("register", 3.0, "register: expected int, got 3.0"),  # semitones: whole numbers only
    ("register", 2.5, "register: expected int, got 2.5"),
    ("register", True, "register: expected int, got True"),
    ("memory_weight", "half", "memory_weight: expected float, got 'half'"),
])
def test_wrong_kinds_are_refused_by_name(name: str, value: Any, message: str) -> None:
    assert error({name: value}) == message


def test_mode_must_be_a_known_mode() -> None:
    for m in MODES:
        assert check_changes({"mode": m}) == {"mode": m}
    assert error({"mode": "jazz"}) == (
        "mode: 'jazz' is not one of call-response, accompany, continue, mirror, solo, auto, "
        "harmony")
    assert error({"mode": ["solo"]}).startswith("mode: ['solo'] is not one of ")


def test_mute_takes_only_a_bool() -> None:
    assert check_changes({"mute": True}) == {"mute": True}
    assert check_changes({"mute": False}) == {"mute": False}
    assert error({"mute": 1}) == "mute: expected true or false, got 1"
    assert error({"mute": "yes"}) == "mute: expected true or false, got 'yes'"


def test_unknown_control_lists_the_known_ones() -> None:
    assert error({"tempo": 120}) == f"tempo: unknown control (known: {KNOWN})"


# -- styles -----------------------------------------------------------------------------------

def test_styles_become_sorted_float_pairs_and_a_dict_again() -> None:
    out = check_changes({"styles": {"oneill": 2, "bach": 0.5, "zz": 0}})
    assert out == {"styles": (("bach", 0.5), ("oneill", 2.0), ("zz", 0.0))}
    assert all(type(w) is float for _s, w in out["styles"])
    c = Controls().with_changes({"styles": {"oneill": 2, "bach": 1000}})
    assert c.styles == (("bach", 1000.0), ("oneill", 2.0))
    assert c.to_dict()["styles"] == {"bach": 1000.0, "oneill": 2.0}


@pytest.mark.parametrize(("value", "message"), [
    ({}, "styles: expected a table of style weights, got {}"),
    (["bach"], "styles: expected a table of style weights, got ['bach']"),
    ("bach", "styles: expected a table of style weights, got 'bach'"),
    ({"bach": -1}, "styles: 'bach' = -1 is not a weight 0..1000"),
    ({"bach": 1000.5}, "styles: 'bach' = 1000.5 is not a weight 0..1000"),
    ({"bach": True}, "styles: 'bach' = True is not a weight 0..1000"),
    ({"bach": "1"}, "styles: 'bach' = '1' is not a weight 0..1000"),
    ({"bach": math.nan}, "styles: 'bach' = nan is not a weight 0..1000"),
    ({1: 1}, "styles: 1 = 1 is not a weight 0..1000"),
    ({"bach": 0, "oneill": 0.0}, "styles: the weights must not all be zero"),
])
def test_bad_styles_are_refused(value: Any, message: str) -> None:
    assert error({"styles": value}) == message


# -- mood -------------------------------------------------------------------------------------

def test_neutral_mood_is_the_controls_themselves() -> None:
    assert mood(Controls(density=1.5, register=-3, temperature=1.2)) == Mood(
        density=1.5, register=-3, velocity_shift=0, temperature=1.2, arousal=0.0)


def test_full_arousal_doubles_density_and_adds_half_the_dynamics_span() -> None:
    m = mood(Controls(density=1.5, arousal=1.0))
    assert m.density == 3.0
    assert m.velocity_shift == 20  # 40 * 0.5
    assert m.temperature == pytest.approx(0.9 * 1.25)
    assert m.register == 0
    assert m.arousal == 1.0


def test_full_calm_halves_density_and_lowers_dynamics_and_temperature() -> None:
    m = mood(Controls(density=1.0, arousal=-1.0))
    assert m.density == 0.5
    assert m.velocity_shift == -20
    assert m.temperature == pytest.approx(0.9 * 0.75)
    assert m.arousal == -1.0


def test_half_arousal_is_a_log_step() -> None:
    assert mood(Controls(density=1.0, arousal=0.5)).density == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize(("controls", "density"), [
    (Controls(density=3.0, arousal=1.0), 4.0),  # 6.0 clipped at the top of the range
    (Controls(density=4.0, arousal=0.5), 4.0),
    (Controls(density=0.25, arousal=-1.0), 0.25),  # 0.125 clipped at the bottom
    (Controls(density=0.4, arousal=-1.0), 0.25),  # 0.2
])
def test_density_stays_in_its_range(controls: Controls, density: float) -> None:
    assert mood(controls).density == density


def test_temperature_stays_in_its_range() -> None:
    assert mood(Controls(temperature=5.0, arousal=1.0)).temperature == 5.0
    assert mood(Controls(temperature=4.5, arousal=0.5)).temperature == 5.0  # 5.0625
    assert mood(Controls(temperature=0.05, arousal=-1.0)).temperature == 0.05


@pytest.mark.parametrize(("valence", "register", "expected"), [
    (1.0, 0, 5), (-1.0, 0, -5), (1.0, 7, 12), (-1.0, -7, -12),
    (0.5, 0, 2),  # 2.5 rounds half to even
    (-0.5, 0, -2),
    (0.9, 0, 4),  # 4.5 -> 4
    (0.62, 0, 3),  # 3.1
    (1.0, 34, 36),  # 39 clipped
    (-1.0, -36, -36),  # -41 clipped
    (-1.0, 36, 31),
])
def test_valence_moves_the_register_up_to_a_fourth(valence: float, register: int,
                                                   expected: int) -> None:
    m = mood(Controls(valence=valence, register=register))
    assert m.register == expected
    assert type(m.register) is int


@pytest.mark.parametrize(("dynamics", "arousal", "shift"), [
    (0.3, 0.0, 12),
    (0.33, 0.0, 13),  # 13.2
    (0.34, 0.0, 14),  # 13.6
    (-0.34, 0.0, -14),
    (0.0, 0.1, 2),  # dynamics 0.05 -> 2.0
    (0.8, 1.0, 40),  # 1.3 clipped to 1
    (1.0, 0.2, 40),
    (-1.0, -0.5, -40),  # -1.25 clipped to -1
    (-0.9, 1.0, -16),  # -0.4
    (0.5, -1.0, 0),
])
def test_dynamics_and_arousal_give_the_velocity_shift(dynamics: float, arousal: float,
                                                      shift: int) -> None:
    m = mood(Controls(dynamics=dynamics, arousal=arousal))
    assert m.velocity_shift == shift
    assert type(m.velocity_shift) is int


def number(name: str) -> st.SearchStrategy[Any]:
    kind, low, high = RANGES[name]
    if kind is int:
        return st.integers(int(low), int(high))
    return st.floats(low, high, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({name: number(name) for name in RANGES}))
def test_mood_of_any_valid_controls_stays_in_range(values: dict[str, Any]) -> None:
    m = mood(Controls().with_changes(values))
    assert 0.25 <= m.density <= 4.0
    assert 0.05 <= m.temperature <= 5.0
    assert -36 <= m.register <= 36
    assert -40 <= m.velocity_shift <= 40
    assert m.arousal == values["arousal"]
    # Direction: more arousal never means fewer notes, quieter or cooler.
    calmer = mood(Controls().with_changes({**values, "arousal": -1.0}))
    assert calmer.density <= m.density
    assert calmer.velocity_shift <= m.velocity_shift
    assert calmer.temperature <= m.temperature
