"""OSC 1.0 written out from the spec, for byte-for-byte tests (not with any encoder under test):
a string is its UTF-8 bytes, a NUL, then NULs up to a multiple of 4; int32 and float32 are
big-endian; the type tag string starts ","."""

from __future__ import annotations

import struct


def s(text: str) -> bytes:
    b = text.encode() + b"\0"
    return b + b"\0" * (-len(b) % 4)


def i(x: int) -> bytes:
    return struct.pack(">i", x)


def f(x: float) -> bytes:
    return struct.pack(">f", x)
