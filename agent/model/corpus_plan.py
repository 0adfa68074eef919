"""The works of an imported corpus: their ids, and their split into train, valid and test.

From MIN_WORKS works, the split is by work id, as for the built corpora (corpus.split_of), except
that a split left empty takes the work of lowest sha256(id) from the largest split: validation
and test are never empty. Below MIN_WORKS works (a musician's few pieces are the normal case),
held-out works would be one or none: each work is cut into SEGMENT_BARS-bar segments at its bar
lines instead, each segment its own entry and MIDI file (`<work id>.b<first bar>`), and the
segments are split so; training and evaluation read them as works. Fewer than MIN_SEGMENTS
segments is too small to validate and refused, saying how much more music is needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from agent.errors import CorpusError
from agent.files import safe_name
from agent.model.corpus import SPLITS, TICKS_PER_BEAT, split_of
from agent.model.corpus_import import Piece

MIN_WORKS = 10  # from this many works, the split is by work
SEGMENT_BARS = 8  # below it, works are cut into segments of this many bars
MIN_SEGMENTS = 10  # and at least this many are needed: 8 to train, 1 to validate, 1 to test
ID_CHARS = 80


def _ids(stems: Sequence[str]) -> list[str]:
    """A file-name-safe, lowercase id per stem (a/b.mid -> a-b), unique in order: a second
    "a-b" is "a-b-2" (lowercase: a folder on a case-insensitive disk holds them apart)."""
    taken: set[str] = set()
    ids = []
    for stem in stems:
        base = safe_name(stem.lower(), "work", ID_CHARS)
        work_id, n = base, 2
        while work_id in taken:
            work_id, n = f"{base}-{n}", n + 1
        taken.add(work_id)
        ids.append(work_id)
    return ids


def plan(kept: Sequence[tuple[str, Piece]]) -> tuple[list[tuple[str, str, Piece]], str]:
    """(id, split, piece) of every entry, in id order, and the split's unit (work, segment),
    from each work's (stem, piece) in the order read. CorpusError when too small to validate."""
    named = list(zip(_ids([stem for stem, _ in kept]), [p for _, p in kept], strict=True))
    if len(named) >= MIN_WORKS:
        entries, unit = named, "work"
    else:
        entries, unit = [e for work_id, piece in named for e in _segments(work_id, piece)], \
            "segment"
        if len(entries) < MIN_SEGMENTS:
            missing = MIN_SEGMENTS - len(entries)
            raise CorpusError(
                f"too small to validate: {len(named)} works (fewer than {MIN_WORKS}, so cut "
                f"into {SEGMENT_BARS}-bar segments) give {len(entries)} segments, and at least "
                f"{MIN_SEGMENTS} are needed (8 to train, 1 to validate, 1 to test): add about "
                f"{missing * SEGMENT_BARS} bars of music, or {MIN_WORKS - len(named)} more "
                "works; nothing imported")
    splits = _splits([work_id for work_id, _ in entries])
    return sorted((work_id, splits[work_id], piece) for work_id, piece in entries), unit


def _segments(work_id: str, piece: Piece) -> list[tuple[str, Piece]]:
    """The work cut every SEGMENT_BARS bars (a last piece of fewer than half as many joins the
    one before it); segments without a note are left out."""
    starts = bar_starts(piece)
    cuts = list(range(0, len(starts), SEGMENT_BARS))
    if len(cuts) > 1 and len(starts) - cuts[-1] < SEGMENT_BARS // 2:
        cuts.pop()
    out = []
    for k, first in enumerate(cuts):
        last = cuts[k + 1] if k + 1 < len(cuts) else len(starts)
        end = starts[last] if last < len(starts) else 1 << 62
        part = segment(piece, starts[first], end, (first + 1, last))
        if part.notes:
            out.append((f"{work_id}.b{first + 1:04d}", part))
    return out


def _splits(ids: Sequence[str]) -> dict[str, str]:
    splits = {work_id: split_of(work_id) for work_id in ids}
    by_hash = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    for name in ("test", "valid", "train"):
        if name not in splits.values():
            sizes = {s: sum(1 for v in splits.values() if v == s) for s in SPLITS}
            donor = max(SPLITS, key=lambda s: sizes[s])
            moved = next(i for i in by_hash if splits[i] == donor)
            splits[moved] = name
    return splits


def bar_starts(piece: Piece) -> list[int]:
    """The tick of every bar line up to the piece's last note end, by its time signatures (a
    signature that changes mid-bar starts a new bar there)."""
    last = max(int(p.notes[:, 1].max()) for p in piece.parts)
    changes = list(piece.time_signatures) or [(0, 4, 4)]
    if changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))
    starts: list[int] = []
    for i, (tick, num, den) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else last
        bar = num * 4 * TICKS_PER_BEAT // den
        starts += range(tick, max(stop, tick + 1), bar)
    return starts


def segment(piece: Piece, start: int, end: int, bars: tuple[int, int]) -> Piece:
    """The notes that start in [start, end), moved to start at 0 (a note keeps its length, even
    past `end`), with the tempo, time and key signature in force at `start`."""
    parts = tuple(replace(p, notes=p.notes[(p.notes[:, 0] >= start) & (p.notes[:, 0] < end)]
                          - np.array([start, start, 0, 0]))
                  for p in piece.parts)
    return replace(piece, tempos=_window(piece.tempos, start, end),
                   time_signatures=_window(piece.time_signatures, start, end),
                   key_signatures=_window(piece.key_signatures, start, end),
                   parts=tuple(p for p in parts if len(p.notes)), bars=bars)


def _window(events: tuple[Any, ...], start: int, end: int) -> tuple[Any, ...]:
    """Timed events (tick first) seen from `start`: the one in force there, moved to 0, and
    those before `end`, moved back by `start`."""
    before = [e for e in events if e[0] <= start][-1:]
    inside = [e for e in events if start < e[0] < end]
    return tuple((max(e[0] - start, 0), *e[1:]) for e in [*before, *inside])
