"""What a log's header and records must hold for the readers to trust them (read_log checks
every line against this).

The readers (replay, strict, scrub, evaluate and the judge, report, compare, the SMF export, the
spatial picture) index records directly: a record that is not an object, lacks a key, has a time
no clock gives (`1e999`, a float, a negative or 5,000-digit number), a MIDI message that is not
one, a player the header does not name, or a replayed control the agent would refuse, would
raise deep inside them. Checked here once, so a bad log is refused naming its line.

Only what the readers use is checked. Other fields, and records of kinds this version does not
know, pass as they are: a newer writer may add them. Of the header's config, likewise only
what the readers index (a config of an older version, with keys since renamed, still reads).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from agent import midi
from agent.policy.commands import PLAY_VERBS, CommandError, parse_command
from agent.policy.ensemble import PeerMessageError, check_peer_fields

MAX_TIME_NS = 2**63 - 1  # a time (or a duration) fits the int64 of a monotonic clock
Record = dict[str, Any]
Check = Callable[[Any], str | None]  # a field's value -> what is wrong with it (None: fine)
Fields = dict[str, tuple[Check, bool]]  # name -> (its check, whether it is required)


class BadRecord(ValueError):
    """What is wrong with a header or a record (read_log adds the file and the line)."""


def _is_int(v: Any) -> bool:
    return type(v) is int  # JSON's integers; not bool (a subclass of int)


def _time(v: Any) -> str | None:
    if type(v) is int and 0 <= v <= MAX_TIME_NS:
        return None
    return f"not a time in ns (an integer from 0 to {MAX_TIME_NS})"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "not a string"


def _optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "not true or false"


def _count(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "not a count (an integer >= 0)"


def _number(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return None
    return "not a finite number"


def _bpm(v: Any) -> str | None:
    return _number(v) or (None if v > 0 else "not a tempo (a number > 0)")


def _message(v: Any) -> str | None:
    if not isinstance(v, str):
        return "not a hex string"
    try:
        data = bytes.fromhex(v)
    except ValueError:
        return f"not hex: {short(v)}"
    return None if midi.is_message(data) else f"not one MIDI message: {short(v)}"


def _pitch(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= 127


def _plan(v: Any) -> str | None:
    """A decision's plan: rows [start ns, pitch, ...] (the spatial engine and the judge read
    the first two)."""
    if type(v) is list and all(
            type(row) is list and 2 <= len(row) <= 8 and all(type(x) is int for x in row)
            and 0 <= row[0] <= MAX_TIME_NS and 0 <= row[1] <= 127 for row in v):
        return None
    return "not a plan (rows of integers [start ns, pitch 0-127, ...])"


def _notes(v: Any) -> str | None:
    """A model answer's notes, as ModelNote.to_log writes them, or null."""
    if v is None or (isinstance(v, list) and all(
            isinstance(row, list) and len(row) == 4 and all(_is_int(x) for x in row)
            and _pitch(row[0]) and _pitch(row[2]) and _time(row[1]) is None
            and _time(row[3]) is None for row in v)):
        return None
    return "not the model's notes (rows [pitch, dt ns, velocity, duration ns], or null)"


# The fields of each kind of record, and of each (kind, what).
FIELDS: dict[str, Fields] = {
    "in": {"player": (_text, True), "data": (_message, True), "shed": (_bool, False)},
    "emit": {"deadline": (_time, True), "port": (_text, True), "data": (_message, True),
             "why": (_text, True), "ok": (_bool, True), "cause": (_time, False)},
    "ctl": {"what": (_text, True)},
    "tempo": {"bpm": (_bpm, True)},
    "decision": {"what": (_text, False), "plan": (_plan, False),
                 "caller": (_optional(_text), False), "name": (_optional(_text), False)},
    "state": {"what": (_text, False)},
    "model": {"what": (_text, False)},
    "note": {"what": (_text, False)},
}
SAVED: Fields = {"folder": (_text, True), "seconds": (_number, True), "records": (_count, True)}
FAILED: Fields = {"folder": (_text, True), "error": (_text, True)}
BY_WHAT: dict[tuple[str, str], Fields] = {
    ("state", "tempo"): {"bpm": (_optional(_bpm), False)},
    ("state", "key"): {"key": (_optional(_text), False), "chord": (_optional(_text), False)},
    ("state", "section"): {"name": (_text, True)},
    ("state", "mode"): {"mode": (_optional(_text), False)},
    ("model", "answer"): {"why": (_text, True), "asked": (_time, True), "notes": (_notes, True)},
    # The phrases and the comp always log their plan (agent.pipeline); evaluate reads it.
    **{("decision", part): {"plan": (_plan, True)}
       for part in ("answer", "continue", "mirror", "solo", "comp")},
    ("ctl", "output-lost"): {"port": (_text, True)},
    ("ctl", "output-back"): {"port": (_text, True)},
    ("ctl", "reset"): {"port": (_text, True)},
    ("ctl", "port-feedback"): {"player": (_text, True)},
    ("ctl", "port-feedback-over"): {"player": (_text, True)},
    ("ctl", "peer"): {"agent": (_text, True)},
    ("ctl", "port-lost"): {"player": (_text, False)},
    ("ctl", "port-back"): {"player": (_text, False)},
    ("ctl", "record"): {"action": (_text, False), "label": (_optional(_text), False),
                        "name": (_optional(_text), False)},
    **{("note", f"{kind}-saved"): SAVED for kind in ("take", "capture")},
    **{("note", f"{kind}-failed"): FAILED for kind in ("take", "capture")},
}
COMMON: Fields = {"t": (_time, True), "k": (_text, True)}
# Every record's fields in one table per kind, and per (kind, what) where `what` adds some:
# one pass over a record's fields (a log is read whole at every stop).
TABLES: dict[tuple[str, str | None], Fields] = {
    **{(kind, None): {**COMMON, **fields} for kind, fields in FIELDS.items()},
    **{(kind, what): {**COMMON, **FIELDS[kind], **fields}
       for (kind, what), fields in BY_WHAT.items()},
}
HEADER_MODEL: Fields = {"path": (_text, True), "sha256": (_optional(_text), True)}
HEADER_CORPUS: Fields = {"path": (_text, True), "hash": (_text, True)}  # memory_from's
HEADER_SLICE: Fields = {"of": (_text, True), "from_ns": (_time, True), "to_ns": (_time, True),
                "reason": (_text, True), "name": (_optional(_text), False)}


class RecordChecker:
    """Checks one log's records against its header (the players it names, its sections)."""

    def __init__(self, header: Record) -> None:
        config = header["config"]
        self.players = frozenset(p["name"] for p in config["players"])
        self.sections = tuple(s["name"] for s in config.get("sections", []))

    def __call__(self, record: Any) -> Record:
        """The record if the readers can use it; BadRecord saying what is wrong otherwise."""
        if not isinstance(record, dict):
            raise BadRecord(f"not a record (a JSON object), but {_kind(record)}")
        kind, what = record.get("k"), record.get("what")
        if not isinstance(kind, str):  # COMMON says what is wrong with it
            kind = ""
        if not isinstance(what, str):  # the kind's own table does, if it has a `what`
            what = None
        _fields(record, TABLES.get((kind, what)) or TABLES.get((kind, None)) or COMMON)
        if kind == "in" and record["player"] not in self.players:
            raise BadRecord(f"player {short(record['player'])} is not one of the header's "
                            f"players ({', '.join(sorted(self.players))})")
        if kind == "ctl" and what in ("port-lost", "port-back", "port-feedback",
                                      "port-feedback-over") and "player" in record \
                and record["player"] not in self.players:
            raise BadRecord(f"player {short(record['player'])} is not one of the header's")
        if (kind == "ctl" and what in PLAY_VERBS) or (kind, what) == ("state", "controls"):
            self._control("controls" if kind == "state" else str(what), record)
        elif (kind, what) == ("ctl", "peer"):
            try:
                check_peer_fields({k: v for k, v in record.items()
                                   if k not in ("t", "k", "what", "agent")})
            except PeerMessageError as e:
                raise BadRecord(f"a member's message the agent would refuse: {e}") from None
        return record

    def _control(self, verb: str, record: Record) -> None:
        """A replayed control (or the controls state scrub puts back at a window's start):
        what the agent would take as a command. The state of a run without a model blends no
        style (`"styles": {}`), which no command could set: that is left out of the check."""
        fields = {k: v for k, v in record.items() if k not in ("t", "k", "what")
                  and not (record["k"] == "state" and k == "styles" and v == {})}
        try:
            command = parse_command(verb, fields, self.sections)
        except CommandError as e:
            raise BadRecord(f"a control the agent would refuse: {e}") from None
        if record["k"] == "ctl" and command.fields != fields:  # a replay feeds it as it is
            raise BadRecord(f"not a {verb} as the agent logs one: {short(fields)} (logged: "
                            f"{short(command.fields)})")


def check_header(header: Any) -> Record:
    """The header, if the readers can use it: its config holds what they read of it (a replay
    checks the whole config besides: agent.record.replay.load_recording)."""
    if not isinstance(header, dict):
        raise BadRecord(f"not a header (a JSON object), but {_kind(header)}")
    if "config" not in header:
        raise BadRecord("the header has no config")
    _config(header["config"])
    for key, fields in (("model", HEADER_MODEL), ("slice", HEADER_SLICE)):
        if key in header:
            _fields(_object(header[key], key), fields, f"{key}.")
    memory = header.get("memory_from", [])
    if not isinstance(memory, list):
        raise BadRecord("memory_from: not a list of corpora")
    for i, corpus in enumerate(memory):
        _fields(_object(corpus, f"memory_from[{i}]"), HEADER_CORPUS, f"memory_from[{i}].")
    _fields(header, {"layout": (_text, False), "clock": (_text, False),
                     "replay_of": (_text, False)})
    return header


def _config(config: Any) -> None:
    """What the readers index in a recorded config: the players' names, the agent's mode and
    outputs, the performance's name (and beats a bar), the sections' names and modes, the
    model's checkpoint and the speaker layout."""
    config = _object(config, "config")
    players = config.get("players")
    if not isinstance(players, list) or not players:
        raise BadRecord("config.players: not a list of players")
    for i, player in enumerate(players):
        _fields(_object(player, f"config.players[{i}]"), {"name": (_text, True)},
                f"config.players[{i}].")
    _fields(_object(config.get("agent"), "config.agent"),
            {"mode": (_text, True), "outputs": (_outputs, True)}, "config.agent.")
    _fields(_object(config.get("performance"), "config.performance"),
            {"name": (_text, True), "beats_per_bar": (_beats_per_bar, False)},
            "config.performance.")
    sections = config.get("sections", [])
    if not isinstance(sections, list):
        raise BadRecord("config.sections: not a list")
    for i, section in enumerate(sections):
        _fields(_object(section, f"config.sections[{i}]"),
                {"name": (_text, True), "mode": (_optional(_text), False)},
                f"config.sections[{i}].")
    for key, field in (("model", "checkpoint"), ("spatial", "layout")):
        if key in config:
            _fields(_object(config[key], f"config.{key}"), {field: (_text, False)},
                    f"config.{key}.")


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRecord(f"{name}: not a JSON object")
    return value


def _outputs(v: Any) -> str | None:
    if isinstance(v, list) and v and all(isinstance(port, str) for port in v):
        return None
    return "not a list of output ports"


def _beats_per_bar(v: Any) -> str | None:
    return None if _is_int(v) and 1 <= v <= 16 else "not a number of beats from 1 to 16"


def _fields(obj: Mapping[str, Any], fields: Fields,
            prefix: str = "") -> None:
    for name, (check, required) in fields.items():
        if name not in obj:
            if required:
                raise BadRecord(f"{prefix}{name!r} is missing")
            continue
        problem = check(obj[name])
        if problem is not None:
            raise BadRecord(f"{prefix}{name!r}: {problem}")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true or false", type(None): "null"}.get(type(value), type(value).__name__)


def short(value: Any) -> str:
    """A value as the error shows it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
