"""How much of the agent's line is copied from the corpus: the longest shared run of intervals.

A "run" is a stretch of consecutive melodic intervals (transposition does not make a copy new).
The corpus side is every voice of every work, each voice a melodic line; the agent side is the
agent's notes in the order it plays them. A run of k shared intervals is reported as k + 1 notes.

Windows of intervals are compared by a 64-bit polynomial hash (numpy uint64 arithmetic wraps,
which is the modulus). Lines are joined with a SEPARATOR value that no interval can take, so no
window spans two lines; a hash collision could only over-report a copy, never hide one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DEFAULT_BOUND = 12  # notes; the sampler never completes a shared run longer than this
SEPARATOR = 1000
_OFFSET = 128  # intervals -127..127 become 1..255, so 0 never appears inside a line
_WEIGHTS = np.random.default_rng(20261121).integers(1, 2**63, size=256, dtype=np.uint64) | 1


def join_lines(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Melodic lines (pitches) -> one int64 array of offset intervals with separators."""
    parts = []
    for line in lines:
        parts.append(np.diff(np.asarray(line, dtype=np.int64)) + _OFFSET)
        parts.append(np.array([SEPARATOR], dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _window_hashes(symbols: np.ndarray, length: int) -> np.ndarray:
    """uint64 hash of every window of `length` symbols. [len(symbols) - length + 1]."""
    if len(symbols) < length:
        return np.zeros(0, dtype=np.uint64)
    windows = sliding_window_view(symbols.astype(np.uint64), length)
    with np.errstate(over="ignore"):
        hashes: np.ndarray = (windows * _WEIGHTS[:length]).sum(axis=1, dtype=np.uint64)
    return hashes


def longest_shared_run(line: Sequence[int], corpus: np.ndarray) -> int:
    """Longest run of the line's notes whose intervals all appear, in order, in the corpus.

    corpus: join_lines(...) of the training pieces. Returns notes (0 for an empty line, 1 if no
    interval is shared). Binary search on the run length: a shared run of k implies one of k - 1.
    """
    symbols = join_lines([np.asarray(line, dtype=np.int64)])[:-1]
    if len(symbols) == 0:
        return min(len(line), 1)
    low, high = 0, min(len(symbols), 255)  # low intervals are known shared
    while low < high:
        mid = (low + high + 1) // 2
        if np.isin(_window_hashes(symbols, mid), _window_hashes(corpus, mid)).any():
            low = mid
        else:
            high = mid - 1
    return low + 1


class CopyGuard:
    """Tells the sampler which next pitches would complete a run longer than `bound` notes."""

    def __init__(self, corpus: np.ndarray, bound: int = DEFAULT_BOUND) -> None:
        if not 2 <= bound <= 255:
            raise ValueError(f"originality bound must be 2..255 notes, got {bound}")
        self.bound = bound
        self._intervals = bound  # a forbidden run: bound + 1 notes = bound intervals
        self._full = np.unique(_window_hashes(corpus, self._intervals))
        # Prefixes (bound - 1 intervals): if the recent line is not one, nothing can be forbidden.
        self._prefixes = set(np.unique(_window_hashes(corpus, self._intervals - 1)).tolist())

    def forbidden(self, line: Collection[int], candidates: np.ndarray) -> np.ndarray | None:
        """bool [len(candidates)] for the pitches that would copy too much, or None if none can.

        line: the agent's recent pitches, oldest first (only the last `bound` matter).
        """
        if len(line) < self._intervals:
            return None
        recent = np.fromiter(line, dtype=np.int64)[-self._intervals:]
        prefix = np.diff(recent) + _OFFSET
        with np.errstate(over="ignore"):
            prefix_hash = (prefix.astype(np.uint64) * _WEIGHTS[:len(prefix)]).sum(dtype=np.uint64)
            if int(prefix_hash) not in self._prefixes:
                return None
            last = (candidates.astype(np.int64) - recent[-1] + _OFFSET).astype(np.uint64)
            hashes = prefix_hash + last * _WEIGHTS[len(prefix)]
        return np.isin(hashes, self._full)
