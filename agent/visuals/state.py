"""The agent's state and plan as OSC messages, for visuals (Max, Pd, TouchDesigner, ...). Pure.

`messages(kind, payload)` turns one published `(kind, payload)` into OSC 1.0 messages; each
message is one UDP datagram of at most MAX_DATAGRAM (1400) bytes, so nothing fragments on an
Ethernet stage network. Only the type tags `s i f` are used (every OSC receiver reads them);
booleans are sent as `i` 0/1. Strings are UTF-8; a missing value (None) is the empty string "".

| address | type tags | arguments |
|---|---|---|
| /stage-agent/mode | s s | mode, section ("" = none) |
| /stage-agent/section | s i i | name, index (0-based), bar (the bar the section began at) |
| /stage-agent/tempo | f f s | bpm, confidence 0..1, source ("clock" or "onsets") |
| /stage-agent/key | s s | key (e.g. "G major", "" = none yet), chord (e.g. "D7", "" = none) |
| /stage-agent/roles | (s s)* | player, role ("soloing", "comping" or "resting"), per player |
| /stage-agent/ensemble | s i | its role among the agents ("lead", "comp", "rest"), 1 = may lead |
| /stage-agent/model | s s s s | checkpoint, sha256 ("" = unknown), status, error ("" = none) |
| /stage-agent/controls/mode | s | the mode the controls select |
| /stage-agent/controls/temperature | f | the model's sampling temperature |
| /stage-agent/controls/density | f | 0.25..4 |
| /stage-agent/controls/register | i | semitones, -36..36 |
| /stage-agent/controls/dynamics | f | -1..1 |
| /stage-agent/controls/valence | f | -1..1 |
| /stage-agent/controls/arousal | f | -1..1 |
| /stage-agent/controls/memory_weight | f | 0..1 |
| /stage-agent/controls/mute | i | 1 = muted, 0 = playing |
| /stage-agent/controls/styles | (s f)* | style, weight, per style; no arguments = as configured |
| /stage-agent/plan | s i i i (f i i f i)* | mode, plan id, part, parts, then per note (below) |

Per plan note: start_s (f), pitch (i), velocity (i), duration_s (f), committed (i).

Controls: one message per control (a controls update sends them all), so that every address
carries one value: TouchDesigner's OSC In CHOP makes each numeric address a channel, Max and Pd
route on the address alone. A control added to policy/controls.py later gets its own address by
the same rule (bool -> i, int -> i, float -> f, str -> s, table -> (s f)*).

Plan: `start_s` is seconds from when the plan was made (the plan is sent at once, so: from
arrival, give or take the network); `duration_s` is seconds; `committed` 1 = already scheduled
(it will sound), 0 = tentative (may still be revised). Notes come in the agent's order. Each new
plan replaces the previous one. A plan too big for one datagram is split into `parts` messages
with `part` = 0, 1, ... parts-1, all on /stage-agent/plan and all with the same `plan id` (the
plan's time on the agent clock in ms, modulo 2^31); every note is in exactly one part, and every
part repeats the header, so each part can be drawn as it arrives. A receiver that wants the whole
plan collects parts 0..parts-1 of one id; a part of a newer id means the older plan is over (UDP
may lose a part: draw what arrived). An empty plan is one message with parts = 1 and no notes.
A part holds 53 notes (54 with a mode name of up to 7 bytes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

PREFIX = "/stage-agent/"
MAX_DATAGRAM = 1400  # bytes: one Ethernet frame minus IP/UDP headers, with room to spare
PLAN_ID_MODULO = 2**31  # the id must fit OSC's signed 32-bit int

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # safe inside an OSC address (no / * ? [ ] { } , #)
_NOTE_BYTES = 4 * 5  # f i i f i
_PLAN_ADDRESS = PREFIX + "plan"


def messages(kind: str, payload: Mapping[str, Any]) -> list[OscMessage]:
    """The OSC messages for one published state; ValueError for an unknown kind or a payload
    that does not have the documented shape (nothing is half-built)."""
    encode = _ENCODERS.get(kind)
    if encode is None:
        raise ValueError(f"unknown state kind {kind!r} (known: {', '.join(KINDS)})")
    if not isinstance(payload, Mapping):
        raise ValueError(f"{kind}: payload must be a mapping, got {type(payload).__name__}")
    try:
        return encode(payload)
    except (KeyError, TypeError) as e:  # a malformed payload is the caller's bug: say which
        raise ValueError(f"{kind}: malformed payload {dict(payload)!r}: {e!r}") from None


def _mode(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("mode", [("s", _str(p["mode"])), ("s", _opt_str(p.get("section")))])]


def _section(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("section", [("s", _str(p["name"])), ("i", _i32(p["index"])),
                             ("i", _i32(p["bar"]))])]


def _tempo(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("tempo", [("f", _float(p["bpm"])), ("f", _float(p["confidence"])),
                           ("s", _str(p["source"]))])]


def _key(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("key", [("s", _opt_str(p.get("key"))), ("s", _opt_str(p.get("chord")))])]


def _roles(p: Mapping[str, Any]) -> list[OscMessage]:
    args: list[tuple[str, Any]] = []
    for name, role in p.items():
        args += [("s", _str(name)), ("s", _str(role))]
    return [_msg("roles", args)]


def _ensemble(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("ensemble", [("s", _str(p["role"])), ("i", int(bool(p["can_lead"])))])]


def _model(p: Mapping[str, Any]) -> list[OscMessage]:
    return [_msg("model", [("s", _str(p["checkpoint"])), ("s", _opt_str(p.get("sha256"))),
                           ("s", _str(p["status"])), ("s", _opt_str(p.get("error")))])]


def _controls(p: Mapping[str, Any]) -> list[OscMessage]:
    out = []
    for name, value in p.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"controls: {name!r} cannot be part of an OSC address")
        if isinstance(value, bool):
            args: list[tuple[str, Any]] = [("i", int(value))]
        elif isinstance(value, int):
            args = [("i", _i32(value))]
        elif isinstance(value, float):
            args = [("f", value)]
        elif isinstance(value, str):
            args = [("s", value)]
        elif isinstance(value, Mapping):
            args = []
            for style, weight in value.items():
                args += [("s", _str(style)), ("f", _float(weight))]
        else:
            raise ValueError(f"controls: {name} = {value!r} has no OSC form")
        out.append(_msg(f"controls/{name}", args))
    return out


def _plan(p: Mapping[str, Any]) -> list[OscMessage]:
    mode = _str(p["mode"])
    plan_id = (_int(p["t"]) // 1_000_000) % PLAN_ID_MODULO
    notes = [_note(n) for n in p["notes"]]
    per_part = _notes_per_part(mode)
    chunks = [notes[i:i + per_part] for i in range(0, len(notes), per_part)] or [[]]
    out = []
    for part, chunk in enumerate(chunks):
        args: list[tuple[str, Any]] = [("s", mode), ("i", plan_id), ("i", part),
                                       ("i", len(chunks))]
        for start_ms, pitch, velocity, duration_ms, committed in chunk:
            args += [("f", start_ms / 1000), ("i", pitch), ("i", velocity),
                     ("f", duration_ms / 1000), ("i", committed)]
        out.append(_msg("plan", args))
    return out


def _note(n: Any) -> tuple[int, int, int, int, int]:
    if isinstance(n, str | bytes) or len(n) != 5:
        raise ValueError(f"plan: a note is [start_ms, pitch, velocity, duration_ms, committed], "
                         f"got {n!r}")
    start, pitch, velocity, duration = (_i32(x) for x in n[:4])
    committed = n[4]
    if committed not in (0, 1):  # also True / False
        raise ValueError(f"plan: committed must be 0 or 1, got {committed!r}")
    return start, pitch, velocity, duration, int(committed)


def plan_size(mode: str, n_notes: int) -> int:
    """Bytes of one /stage-agent/plan message with this mode and this many notes (OSC 1.0:
    address, type tags and strings each NUL-terminated and padded to 4 bytes)."""
    tags = ",siii" + "fiifi" * n_notes
    return (_padded(len(_PLAN_ADDRESS.encode())) + _padded(len(tags))
            + _padded(len(mode.encode())) + 3 * 4 + n_notes * _NOTE_BYTES)


def _notes_per_part(mode: str) -> int:
    # Each note adds 20 bytes of arguments and 5 type tags, and padding moves the tags by at
    # most 2 bytes below 25 a note, so this start is never below the answer.
    n = (MAX_DATAGRAM - plan_size(mode, 0) + 2) // (_NOTE_BYTES + 5)
    while n > 0 and plan_size(mode, n) > MAX_DATAGRAM:
        n -= 1
    if n < 1:
        raise ValueError(f"plan: mode name too long for a {MAX_DATAGRAM}-byte datagram")
    return n


def _padded(n_chars: int) -> int:
    return (n_chars // 4 + 1) * 4  # the NUL terminator, then up to the next multiple of 4


def _msg(name: str, args: list[tuple[str, Any]]) -> OscMessage:
    b = OscMessageBuilder(PREFIX + name)
    for tag, value in args:
        b.add_arg(value, tag)
    return b.build()


def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise TypeError(f"expected a string, got {x!r}")
    return x


def _opt_str(x: Any) -> str:
    return "" if x is None else _str(x)


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"expected an integer, got {x!r}")
    return x


def _i32(x: Any) -> int:
    """An int that fits OSC's `i` (signed 32-bit)."""
    v = _int(x)
    if not -(2**31) <= v < 2**31:
        raise TypeError(f"{v} does not fit a 32-bit OSC integer")
    return v


def _float(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise TypeError(f"expected a finite number, got {x!r}")
    return float(x)


_ENCODERS: dict[str, Callable[[Mapping[str, Any]], list[OscMessage]]] = {
    "mode": _mode, "section": _section, "tempo": _tempo, "key": _key, "roles": _roles,
    "controls": _controls, "plan": _plan, "ensemble": _ensemble, "model": _model,
}
KINDS = tuple(_ENCODERS)
