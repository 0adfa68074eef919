"""OSC command messages: address and arguments to a verb and fields for policy/commands.py. Pure.

    /stage-agent/cmd/<verb> s JSON          any command: the JSON object of policy/commands.py
                                            ("id" and "sent", as MQTT commands carry, are
                                            ignored: a datagram arrives now or never, it is
                                            never redelivered nor held back by a broker)
    /stage-agent/cmd/cue                    next section
    /stage-agent/cmd/cue s NAME             go to a section
    /stage-agent/cmd/mode s MODE            switch mode
    /stage-agent/cmd/controls (s VALUE)*    control name, value (f, i, T/F or s), ...
    /stage-agent/cmd/mute | unmute | panic  no arguments

e.g. `oscsend 127.0.0.1 PORT /stage-agent/cmd/controls sfsi density 1.5 register -5`, or
`oscsend 127.0.0.1 PORT /stage-agent/cmd/controls s '{"styles": {"bach": 1}}'`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from agent.policy.commands import CommandError

CMD_PREFIX = "/stage-agent/cmd/"


def command_fields(address: str, args: Sequence[Any]) -> tuple[str, Any]:
    """The verb and the JSON-like fields of one command message (CommandError if the arguments
    fit none of the forms in this module's docstring). The fields are checked by the caller."""
    if not address.startswith(CMD_PREFIX):
        raise CommandError(f"{address}: not a command address ({CMD_PREFIX}<verb>)")
    verb = address[len(CMD_PREFIX):]
    if any(isinstance(a, bytes | list | tuple) or a is None for a in args):
        raise CommandError(f"{verb}: blobs, arrays and nil are not command arguments")
    values = [_tidy(a) if isinstance(a, float) else a for a in args]
    if not values:
        return verb, {}
    if len(values) == 1 and isinstance(values[0], str) and values[0].lstrip().startswith("{"):
        try:
            fields = json.loads(values[0])
        except (ValueError, RecursionError) as e:
            raise CommandError(f"{verb}: not a JSON object: {e}") from None
        if isinstance(fields, dict):
            fields.pop("id", None)
            fields.pop("sent", None)
        return verb, fields
    if verb in ("cue", "mode") and len(values) == 1 and isinstance(values[0], str):
        return verb, {"section" if verb == "cue" else "mode": values[0]}
    if verb == "controls":
        names = values[::2]
        if len(values) % 2 or not all(isinstance(n, str) for n in names) or \
                len(set(names)) != len(names):
            raise CommandError("controls: expected name value pairs, each name once")
        return verb, dict(zip(names, values[1::2], strict=True))
    raise CommandError(f"{verb}: unexpected arguments {values!r}")


def _tidy(x: float) -> float:
    """OSC `f` is 32-bit, so a fader's 0.9 arrives as 0.8999999761581421. Commands are logged
    and replayed: keep the shortest decimal with the same 32 bits, the value the sender meant."""
    try:
        bits = struct.pack(">f", x)
    except OverflowError:
        return x
    if struct.unpack(">f", bits)[0] != x:  # not a 32-bit value (an OSC `d`), or NaN
        return x
    for digits in range(1, 10):  # 9 significant digits always round-trip a 32-bit float
        shorter = float(f"{x:.{digits}g}")
        if struct.pack(">f", shorter) == bits:
            return shorter
    return x
