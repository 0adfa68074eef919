"""Chord charts as a lead sheet writes them: `"G | D/F# | Em | C D"`. Pure.

Bars are separated by `|`; a bar holds one or more chord symbols separated by spaces, shared out
evenly over the bar; `%` repeats the bar before; `N.C.` is no chord (the comp listens there).
A symbol is a root (A-G, with # or b), a quality and anything after it: `m`, `min`, `-` minor;
`dim`, `o`, `°`, `m7b5`, `ø` diminished; anything else (`7`, `maj7`, `6`, `9`, `sus4`, `add9`,
`aug`, `+`) is heard as its major or minor triad, which is what a comp of triads plays. A slash
bass (`D/F#`) is read and kept out of the triad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_CHORD = "N.C."
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SYMBOL = re.compile(r"^([A-G])([#b]?)([^/]*)(?:/([A-G][#b]?))?$")
QUALITIES = ("maj", "min", "dim")


class ChartError(ValueError):
    """A chart that cannot be read; the message says which symbol and why."""


@dataclass(frozen=True)
class ChartChord:
    root: int  # pitch class 0-11
    quality: str  # "maj" | "min" | "dim"
    symbol: str  # as written

    @property
    def triad(self) -> int:
        """The index of its triad in agent.listen.progression.TRIADS (quality * 12 + root)."""
        return QUALITIES.index(self.quality) * 12 + self.root


Bar = tuple[ChartChord | None, ...]  # the chords of one bar, in order (None: no chord)


def parse_symbol(symbol: str) -> ChartChord | None:
    if symbol.upper() == NO_CHORD:
        return None
    m = _SYMBOL.match(symbol)
    if m is None:
        raise ChartError(f"{symbol!r} is not a chord symbol (e.g. G, Em, D7, F#m7b5, D/F#)")
    letter, accidental, rest, _bass = m.groups()
    root = (_LETTERS[letter] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    if rest.startswith(("dim", "o", "°", "ø")) or rest.startswith("m7b5"):
        quality = "dim"
    elif rest.startswith(("min", "-")) or (rest.startswith("m") and not rest.startswith("maj")):
        quality = "min"
    else:
        quality = "maj"
    return ChartChord(root, quality, symbol)


def parse_chart(text: str) -> tuple[Bar, ...]:
    """The bars of a chart (empty text: no chart)."""
    bars: list[Bar] = []
    for i, written in enumerate(text.split("|")) if text.strip() else ():
        symbols = written.split()
        if symbols == ["%"]:
            if not bars:
                raise ChartError("'%' repeats the bar before, but it is the first bar")
            bars.append(bars[-1])
            continue
        if not symbols:
            raise ChartError(f"bar {i + 1} is empty (write N.C. for no chord)")
        bars.append(tuple(parse_symbol(s) for s in symbols))
    return tuple(bars)


def chord_at(chart: tuple[Bar, ...], bar: int, position: float) -> ChartChord | None:
    """The chord sounding `position` (0 <= position < 1) of the way through bar number `bar`
    (from 0; the chart goes round)."""
    chords = chart[bar % len(chart)]
    return chords[min(int(position * len(chords)), len(chords) - 1)]
