"""Commands from the control plane (MQTT, OSC) and cues: checked here, before anything changes.

A command is a verb and a JSON object. `parse_command` either returns the command with its fields
normalised (what is logged and replayed) or raises CommandError naming what is wrong; a bad
command changes nothing. Pure.

    mode      {"mode": "accompany"}                    switch mode (policy/controls.MODES)
    controls  {"density": 1.5, "styles": {...}, ...}   set controls (policy/controls.py)
    cue       {"section": "solo"} | {"section": "next"} | {}   go to a section (default: next)
    mute      {}                                        stop playing, keep listening
    unmute    {}
    panic     {}                                        every agent note off, now
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import StageAgentError
from agent.policy.controls import ControlValueError, check_changes

VERBS = ("mode", "controls", "cue", "mute", "unmute", "panic")
NEXT = "next"


class CommandError(StageAgentError):
    """A command that cannot be applied: unknown verb, bad field, value out of range."""


@dataclass(frozen=True)
class Command:
    verb: str
    fields: dict[str, Any]


def parse_command(verb: str, payload: Any, sections: Sequence[str] = ()) -> Command:
    """The command, checked; `sections` are the performance's section names (for cues)."""
    if verb not in VERBS:
        raise CommandError(f"unknown command {verb!r} (known: {', '.join(VERBS)})")
    if not isinstance(payload, Mapping):
        raise CommandError(f"{verb}: expected a JSON object, got {type(payload).__name__}")
    fields = dict(payload)
    try:
        if verb == "mode":
            _only(verb, fields, {"mode"}, required={"mode"})
            return Command(verb, {"mode": check_changes({"mode": fields["mode"]})["mode"]})
        if verb == "controls":
            if not fields:
                raise CommandError("controls: no control given")
            checked = check_changes(fields)
            if "styles" in checked:  # logged as a JSON object, as given
                checked["styles"] = dict(checked["styles"])
            return Command(verb, checked)
    except ControlValueError as e:
        raise CommandError(f"{verb}: {e}") from None
    if verb == "cue":
        _only(verb, fields, {"section"})
        section = fields.get("section", NEXT)
        if section != NEXT and section not in sections:
            known = ", ".join(sections) if sections else "none configured"
            raise CommandError(f"cue: no section {section!r} (sections: {known})")
        if not sections:
            raise CommandError("cue: this performance has no sections")
        return Command(verb, {"section": section})
    _only(verb, fields, set())
    return Command(verb, {})


def _only(verb: str, fields: dict[str, Any], allowed: set[str],
          required: frozenset[str] | set[str] = frozenset()) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise CommandError(f"{verb}: unknown field {unknown[0]!r} "
                           f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    missing = sorted(required - set(fields))
    if missing:
        raise CommandError(f"{verb}: missing field {missing[0]!r}")
