"""Where the agent's voices are, for visuals: a loss-tolerant OSC stream (after TUIO). Pure.

Two variants; a destination picks one (agent/io/osc_spatial.py: "visuals" or "visuals-floats").
Positions are the ADM frame (x right, y front, z up, each -1..1; agent/spatial/frame.py).
Type tags `s i f` only. Encoded as agent/spatial/adapters.py does; `tick`
and `floats` return bundle elements (for its `bundles`), `onset` and `scene` whole messages.

"visuals": per sent tick, in this order (split into bundles of at most 1400 bytes, in order):

| address | tags | arguments |
|---|---|---|
| /stage-agent/voice/alive | i* | the numbers of every voice now present (an empty list: none) |
| /stage-agent/voice/set | i s f f f f i | number, name, x, y, z, gain (linear), mute (1/0) |
| /stage-agent/voice/frame | i | the agent's tick counter, last: the tick is complete |

`set` comes for the voices that changed since this destination last got them (and for every
voice on the refresh, about once a second): keep each voice's last `set`. A voice missing from
`alive` is gone. `alive` and `frame` come on every sent tick, changed or not, as a heartbeat.
The counter counts the agent's ticks: gaps are normal (the destination's rate cap), so use it
to order ticks and to notice a stalled agent, not to count losses; a lost packet is repaired by
the next change or refresh.

"visuals-floats": one float per address, for tools that map the last argument of an address
(the Metacreation Lab's audio-reactive tool, TouchDesigner's OSC In CHOP), sent like `set`:

| address | tags | value |
|---|---|---|
| /stage-agent/v/{n}/x, /y, /z | f | position, -1..1 |
| /stage-agent/v/{n}/gain | f | linear |
| /stage-agent/v/{n}/mute | f | 1.0 muted, 0.0 playing |

Events, sent at once to both variants (not rate-capped, one datagram each):

| address | tags | arguments |
|---|---|---|
| /stage-agent/voice/onset | i i i f f f | voice number, MIDI pitch, velocity, x, y, z at onset |
| /stage-agent/scene | s | the new scene or section's name |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agent.spatial.adapters import (
    Chunk,
    PerNumber,
    clamped_xyz,
    element,
    element_head,
    finite,
    head,
    message,
    osc_string,
    overflow_error,
    packer,
)
from agent.spatial.frame import Voice

PREFIX = "/stage-agent/"
VARIANTS = ("visuals", "visuals-floats")


def tick(voices: Iterable[Voice], alive: Sequence[int], counter: int) -> list[bytes]:
    """The "visuals" variant for one tick: alive, a `set` per voice given, then frame."""
    numbers = [_i32(n) for n in alive]
    c = _ALIVE[len(numbers)]
    out = [c.pack(c.heads[0], *numbers)]
    add = out.append
    try:
        for v in voices:
            n = _i32(v.number)
            x, y, z = v.x, v.y, v.z
            if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and -1.0 <= z <= 1.0):
                x, y, z = clamped_xyz(v)
            add(element(_SET + _I(n) + osc_string(v.name)
                        + _FFFFI(x, y, z, finite(v.gain), int(v.mute))))
    except OverflowError as e:
        raise overflow_error(e) from None
    add(_FRAME + _I(counter % 2**31))  # fits OSC's int32
    return out


def floats(voices: Iterable[Voice]) -> list[bytes]:
    """The "visuals-floats" variant: five one-float messages per voice given."""
    out: list[bytes] = []
    try:
        for v in voices:
            c = _FLOATS[_i32(v.number)]
            h = c.heads
            x, y, z = clamped_xyz(v)
            out.append(c.pack(h[0], x, h[1], y, h[2], z, h[3], finite(v.gain), h[4],
                              1.0 if v.mute else 0.0))
    except OverflowError as e:
        raise overflow_error(e) from None
    return out


def onset(number: int, pitch: int, velocity: int, x: float, y: float, z: float) -> bytes:
    xyz = clamped_xyz(Voice(number, "", x, y, z))
    return message(PREFIX + "voice/onset", "iiifff", _i32(number), _i32(pitch), _i32(velocity),
                   *xyz)


def scene(name: str) -> bytes:
    return message(PREFIX + "scene", "s", name)


def _i32(n: int) -> int:
    if isinstance(n, bool) or not -(2**31) <= n < 2**31:
        raise ValueError(f"{n!r} does not fit a 32-bit OSC integer")
    return n


_I, _FFFFI = packer("i"), packer("ffffi")
_ALIVE = PerNumber(lambda k: Chunk((PREFIX + "voice/alive", "i" * k)))  # by count alive
_SET = head(PREFIX + "voice/set", "isffffi")
_FRAME = element_head(PREFIX + "voice/frame", "i")
_FLOATS = PerNumber(lambda n: Chunk(*((f"{PREFIX}v/{n}/{a}", "f")
                                      for a in ("x", "y", "z", "gain", "mute"))))
