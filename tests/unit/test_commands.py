"""Commands from the control plane: every verb, and every way a command can be wrong."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from agent.errors import StageAgentError
from agent.policy.commands import Command, CommandError, check_sent, parse_command

SECTIONS = ("intro", "solo", "outro")
VERBS = "mode, controls, cue, mute, unmute, panic, record, capture-save, model-reload"
KNOWN_CONTROLS = ("mode, temperature, density, register, dynamics, valence, arousal, "
                  "memory_weight, styles, mute")


def error(verb: str, payload: Any, sections: tuple[str, ...] = SECTIONS) -> str:
    with pytest.raises(CommandError) as info:
        parse_command(verb, payload, sections)
    return str(info.value)


def test_command_error_is_a_stage_agent_error() -> None:
    assert issubclass(CommandError, StageAgentError)


def test_unknown_verb_lists_the_verbs() -> None:
    assert error("jump", {}) == f"unknown command 'jump' (known: {VERBS})"
    assert error("Mode", {"mode": "solo"}) == f"unknown command 'Mode' (known: {VERBS})"
    assert error("jump", None) == f"unknown command 'jump' (known: {VERBS})"  # verb first


@pytest.mark.parametrize(("payload", "kind"), [
    (None, "NoneType"), ([], "list"), ("solo", "str"), (3, "int"), (True, "bool")])
@pytest.mark.parametrize("verb", ["mode", "controls", "cue", "mute", "unmute", "panic"])
def test_payload_must_be_an_object(verb: str, payload: Any, kind: str) -> None:
    assert error(verb, payload) == f"{verb}: expected a JSON object, got {kind}"


def test_any_mapping_is_an_object() -> None:
    assert parse_command("mode", MappingProxyType({"mode": "solo"})) == Command(
        "mode", {"mode": "solo"})


# -- mode -------------------------------------------------------------------------------------

def test_mode() -> None:
    assert parse_command("mode", {"mode": "accompany"}) == Command("mode", {"mode": "accompany"})


def test_mode_missing_unknown_field_and_bad_value() -> None:
    assert error("mode", {}) == "mode: missing field 'mode'"
    assert error("mode", {"mode": "solo", "bars": 4}) == (
        "mode: unknown field 'bars' (allowed: mode)")
    assert error("mode", {"bars": 4}) == "mode: unknown field 'bars' (allowed: mode)"
    assert error("mode", {"mode": "jazz"}) == (
        "mode: 'jazz' is not one of call-response, accompany, continue, mirror, solo, "
        "auto, harmony")


# -- controls ---------------------------------------------------------------------------------

def test_controls_are_checked_and_normalised() -> None:
    cmd = parse_command("controls", {"density": 2, "register": -5, "mute": True})
    assert cmd == Command("controls", {"density": 2.0, "register": -5, "mute": True})
    assert type(cmd.fields["density"]) is float


def test_controls_keep_styles_as_an_object() -> None:
    cmd = parse_command("controls", {"styles": {"oneill": 1, "bach": 3}})
    assert cmd.fields == {"styles": {"bach": 3.0, "oneill": 1.0}}
    assert isinstance(cmd.fields["styles"], dict)


def test_controls_may_switch_the_mode_too() -> None:
    assert parse_command("controls", {"mode": "solo", "arousal": 0.5}).fields == {
        "mode": "solo", "arousal": 0.5}


def test_controls_errors() -> None:
    assert error("controls", {}) == "controls: no control given"
    assert error("controls", {"density": 9}) == (
        "controls: density: 9 is out of range 0.25..4.0")
    assert error("controls", {"register": 1.5}) == "controls: register: expected int, got 1.5"
    assert error("controls", {"tempo": 120}) == (
        f"controls: tempo: unknown control (known: {KNOWN_CONTROLS})")
    assert error("controls", {"styles": {}}) == (
        "controls: styles: expected a table of style weights, got {}")


def test_a_bad_control_is_refused_whole() -> None:
    assert error("controls", {"density": 2.0, "valence": 3}) == (
        "controls: valence: 3 is out of range -1.0..1.0")


# -- cue --------------------------------------------------------------------------------------

def test_cue_by_name_next_and_default_next() -> None:
    assert parse_command("cue", {"section": "solo"}, SECTIONS) == Command("cue",
                                                                         {"section": "solo"})
    assert parse_command("cue", {"section": "next"}, SECTIONS) == Command("cue",
                                                                         {"section": "next"})
    assert parse_command("cue", {}, SECTIONS) == Command("cue", {"section": "next"})
    assert parse_command("cue", {}, ["a"]) == Command("cue", {"section": "next"})  # any sequence


def test_cue_to_an_unknown_section_lists_the_sections() -> None:
    assert error("cue", {"section": "bridge"}) == (
        "cue: no section 'bridge' (sections: intro, solo, outro)")
    assert error("cue", {"section": "Solo"}) == (
        "cue: no section 'Solo' (sections: intro, solo, outro)")
    assert error("cue", {"section": 1}) == "cue: no section 1 (sections: intro, solo, outro)"


def test_cue_without_sections() -> None:
    assert error("cue", {}, ()) == "cue: this performance has no sections"
    assert error("cue", {"section": "next"}, ()) == "cue: this performance has no sections"
    assert error("cue", {"section": "solo"}, ()) == (
        "cue: no section 'solo' (sections: none configured)")


def test_cue_unknown_field() -> None:
    assert error("cue", {"section": "solo", "bar": 2}) == (
        "cue: unknown field 'bar' (allowed: section)")


# -- mute, unmute, panic ----------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["mute", "unmute", "panic"])
def test_verbs_without_fields(verb: str) -> None:
    assert parse_command(verb, {}) == Command(verb, {})
    assert parse_command(verb, {}, ()) == Command(verb, {})
    assert error(verb, {"now": True}) == f"{verb}: unknown field 'now' (allowed: none)"


def test_the_first_unknown_field_is_named_in_sorted_order() -> None:
    assert error("panic", {"z": 1, "b": 2, "m": 3}) == "panic: unknown field 'b' (allowed: none)"


def test_fields_are_not_the_callers_dict() -> None:
    payload: dict[str, Any] = {"section": "solo"}
    cmd = parse_command("cue", payload, SECTIONS)
    payload["section"] = "outro"
    assert cmd.fields == {"section": "solo"}


# -- live actions: record, capture-save, model-reload -----------------------------------------

def test_record_start_stop_mark() -> None:
    assert parse_command("record", {"action": "start", "name": " take a "}) == Command(
        "record", {"action": "start", "name": "take a"})
    assert parse_command("record", {"action": "start"}) == Command("record", {"action": "start"})
    assert parse_command("record", {"action": "stop"}) == Command("record", {"action": "stop"})
    assert parse_command("record", {"action": "mark", "label": "the drop"}) == Command(
        "record", {"action": "mark", "label": "the drop"})


def test_record_errors() -> None:
    assert error("record", {}) == "record: missing field 'action'"
    assert error("record", {"action": "pause"}) == (
        "record: action must be one of start, stop, mark, got 'pause'")
    assert error("record", {"action": "stop", "name": "x"}) == (
        "record stop: unknown field 'name' (allowed: none)")
    assert error("record", {"action": "mark", "name": "x"}) == (
        "record mark: unknown field 'name' (allowed: label)")
    assert error("record", {"action": "mark", "label": "x" * 65}) == (
        f"record: label must be printable text of 1 to 64 characters, got {'x' * 65!r}")
    assert error("record", {"action": "mark", "label": "a\nb"}) == (
        "record: label must be printable text of 1 to 64 characters, got 'a\\nb'")
    assert error("record", {"action": "start", "name": 7}) == (
        "record: name must be printable text of 1 to 64 characters, got 7")


def test_capture_save() -> None:
    assert parse_command("capture-save", {}) == Command("capture-save", {})
    assert parse_command("capture-save", {"seconds": 90, "name": "that bit"}) == Command(
        "capture-save", {"seconds": 90.0, "name": "that bit"})
    for bad in (0, 3601, True, "60", float("nan")):
        assert error("capture-save", {"seconds": bad}) == (
            f"capture-save: seconds must be a number from 1 to 3600, got {bad!r}")
    assert error("capture-save", {"minutes": 2}) == (
        "capture-save: unknown field 'minutes' (allowed: name, seconds)")


def test_model_reload() -> None:
    assert parse_command("model-reload", {}) == Command("model-reload", {})
    assert parse_command("model-reload", {"checkpoint": "models/b.pt"}) == Command(
        "model-reload", {"checkpoint": "models/b.pt"})
    for bad in ("", 3, None, "a\0b"):
        assert error("model-reload", {"checkpoint": bad}) == (
            f"model-reload: checkpoint must be a file path, got {bad!r}")


NOW = 1_700_000_000.0


@pytest.mark.parametrize("verb", ["mode", "controls", "cue", "unmute", "record"])
def test_a_command_dated_out_of_bounds_either_way_is_refused(verb: str) -> None:
    assert check_sent(verb, None, NOW, 10.0) is None  # "sent" is optional
    assert check_sent(verb, NOW - 10, NOW, 10.0) is None  # the bounds are included
    assert check_sent(verb, NOW + 10, NOW, 10.0) is None
    with pytest.raises(CommandError) as stale:
        check_sent(verb, NOW - 11, NOW, 10.0)
    assert str(stale.value) == "stale command ignored: sent 11.0 s ago (max age 10 s)"
    with pytest.raises(CommandError) as future:
        check_sent(verb, 4_102_444_800, NOW, 10.0)  # 2100-01-01
    assert str(future.value) == ("command from the future ignored: dated 2402444800.0 s ahead "
                                 "of this agent's clock (at most 10 s; check the sender's clock)")


@pytest.mark.parametrize("verb", ["panic", "mute"])
def test_panic_and_mute_are_never_refused_for_their_date(verb: str) -> None:
    assert check_sent(verb, NOW - 11, NOW, 10.0) == \
        f"{verb} applied although sent 11.0 s ago (max age 10 s)"
    assert check_sent(verb, NOW + 3600, NOW, 10.0) == (
        f"{verb} applied although dated 3600.0 s ahead of this agent's clock (at most 10 s; "
        "check the sender's clock)")
    assert check_sent(verb, NOW, NOW, 10.0) is None


@pytest.mark.parametrize("sent", ["now", True, float("nan"), float("inf"), [1]])
def test_sent_must_be_a_finite_number(sent: Any) -> None:
    with pytest.raises(CommandError, match='"sent" must be a unix time in seconds'):
        check_sent("panic", sent, NOW, 10.0)
