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

Live actions (logged, never replayed: they change what is kept or loaded, not what plays):

    record        {"action": "start", "name": "take-a"} | {"action": "stop"}
                  | {"action": "mark", "label": "great ending"}   takes and markers
    capture-save  {"seconds": 120, "name": "that-bit"}   save the last minutes (both optional)
    model-reload  {} | {"checkpoint": "models/new.pt"}   swap in a model without stopping

A command may say when it was sent ("sent", unix seconds by the sender's clock): `check_sent`
refuses one dated further than the allowed age from the agent's clock, either way, except the
SAFE_VERBS, which only stop sound and are never refused for their date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import StageAgentError
from agent.policy.controls import ControlValueError, check_changes

PLAY_VERBS = ("mode", "controls", "cue", "mute", "unmute", "panic")  # replayed
ACTION_VERBS = ("record", "capture-save", "model-reload")  # live only
VERBS = PLAY_VERBS + ACTION_VERBS
# Only ever stop sound: never refused for their date, nor by an agent that takes no other
# commands (io/presence.py). A director whose clock is 11 s behind must still be able to panic.
SAFE_VERBS = ("panic", "mute")
RECORD_ACTIONS = ("start", "stop", "mark")
MAX_NAME = 64  # characters in a take, capture or marker name
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
    except ControlValueError as e:  # "mode: ..." already names the verb "mode"
        text = str(e)
        raise CommandError(text if text.startswith(f"{verb}: ") else f"{verb}: {text}") from None
    if verb == "cue":
        _only(verb, fields, {"section"})
        section = fields.get("section", NEXT)
        if section != NEXT and section not in sections:
            known = ", ".join(sections) if sections else "none configured"
            raise CommandError(f"cue: no section {section!r} (sections: {known})")
        if not sections:
            raise CommandError("cue: this performance has no sections")
        return Command(verb, {"section": section})
    if verb == "record":
        _only(verb, fields, {"action", "name", "label"}, required={"action"})
        action = fields["action"]
        if action not in RECORD_ACTIONS:
            raise CommandError(f"record: action must be one of {', '.join(RECORD_ACTIONS)}, "
                               f"got {action!r}")
        allowed = {"start": {"name"}, "stop": set(), "mark": {"label"}}[action]
        _only(f"record {action}", {k: v for k, v in fields.items() if k != "action"}, allowed)
        return Command(verb, {"action": action, **{k: _name(verb, k, fields[k])
                                                   for k in sorted(allowed & set(fields))}})
    if verb == "capture-save":
        _only(verb, fields, {"seconds", "name"})
        out: dict[str, Any] = {}
        if "seconds" in fields:
            seconds = fields["seconds"]
            if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                    or not 1 <= seconds <= 3600):
                raise CommandError(f"capture-save: seconds must be a number from 1 to 3600, "
                                   f"got {seconds!r}")
            out["seconds"] = float(seconds)
        if "name" in fields:
            out["name"] = _name(verb, "name", fields["name"])
        return Command(verb, out)
    if verb == "model-reload":
        _only(verb, fields, {"checkpoint"})
        if "checkpoint" in fields:
            path = fields["checkpoint"]
            if not isinstance(path, str) or not path or "\0" in path or len(path) > 4096:
                raise CommandError(f"model-reload: checkpoint must be a file path, got {path!r}")
            return Command(verb, {"checkpoint": path})
        return Command(verb, {})
    _only(verb, fields, set())
    return Command(verb, {})


def check_sent(verb: str, sent: Any, now_s: float, max_age_s: float) -> str | None:
    """A command's "sent" time (unix s, optional) against the agent's wall clock `now_s`.

    Refused (CommandError) when it is not a number, or lies more than `max_age_s` before or
    after `now_s`: a stale command (held up in a network, or replayed) and one dated ahead
    (which no age check would ever stop) are both out. A SAFE_VERBS command out of those
    bounds is not refused: the reason comes back, for the caller to log, and it applies."""
    if sent is None:
        return None
    if isinstance(sent, bool) or not isinstance(sent, int | float) or not math.isfinite(sent):
        raise CommandError(f'"sent" must be a unix time in seconds, got {sent!r}')
    age = now_s - sent
    if age > max_age_s:
        when, what = f"sent {age:.1f} s ago (max age {max_age_s:g} s)", "stale command"
    elif -age > max_age_s:
        when = (f"dated {-age:.1f} s ahead of this agent's clock (at most {max_age_s:g} s; "
                f"check the sender's clock)")
        what = "command from the future"
    else:
        return None
    if verb in SAFE_VERBS:
        return f"{verb} applied although {when}"
    raise CommandError(f"{what} ignored: {when}")


def _name(verb: str, key: str, value: Any) -> str:
    """A take, capture or marker name: printable, at most MAX_NAME characters. Names become
    parts of file names, so the caller still replaces what a file name cannot hold."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME \
            or not value.isprintable():
        raise CommandError(f"{verb}: {key} must be printable text of 1 to {MAX_NAME} "
                           f"characters, got {value!r}")
    return value.strip()


def _only(verb: str, fields: dict[str, Any], allowed: set[str],
          required: frozenset[str] | set[str] = frozenset()) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise CommandError(f"{verb}: unknown field {unknown[0]!r} "
                           f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    missing = sorted(required - set(fields))
    if missing:
        raise CommandError(f"{verb}: missing field {missing[0]!r}")
