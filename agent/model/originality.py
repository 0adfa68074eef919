"""How much of the agent's line is copied from the corpus: the longest shared run of intervals.

A "run" is a stretch of consecutive melodic intervals (transposition does not make a copy new).
The corpus side is every voice of every work, each voice a melodic line; the agent side is the
agent's notes in the order it plays them. A run of k shared intervals is reported as k + 1 notes.

Windows of intervals are compared by a 64-bit polynomial hash, sum of a[i+j] * B^j (numpy
uint64 arithmetic wraps, which is the modulus). With prefix sums of a[i] * B^i and the powers of
B's inverse (B is odd, so invertible modulo 2^64), every window of any length hashes in one
vector operation over the corpus. Lines are joined with a SEPARATOR value that no interval can
take, so no window spans two lines; a hash collision could only over-report a copy, never hide
one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

DEFAULT_BOUND = 12  # notes; the sampler never completes a shared run longer than this
MAX_BOUND = 255  # notes: model.originality_bound's range is 2..MAX_BOUND
SEPARATOR = 1000
ALL_PITCHES = np.arange(128)  # the candidates a proposer asks the guard about
_OFFSET = 128  # intervals -127..127 become 1..255, so 0 never appears inside a line
_BASE = int(np.random.default_rng(20261121).integers(1, 2**63)) | 1  # odd: invertible


def join_lines(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Melodic lines (pitches) -> one int64 array of offset intervals with separators."""
    parts = []
    for line in lines:
        parts.append(np.diff(np.asarray(line, dtype=np.int64)) + _OFFSET)
        parts.append(np.array([SEPARATOR], dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def window_hash(symbols: np.ndarray) -> np.uint64:
    """The hash CorpusIndex.hashes gives a window holding these symbols (uint64 [n] or int).
    Called for every note the model or the memory proposes: the powers come from a table."""
    n = len(symbols)
    powers = _WINDOW_POWERS[:n] if n <= len(_WINDOW_POWERS) else _powers(n, _BASE)
    with np.errstate(over="ignore"):
        digest: np.uint64 = (symbols.astype(np.uint64) * powers).sum(dtype=np.uint64)
    return digest


def _powers(n: int, base: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64. uint64 [n]."""
    factors = np.full(max(n, 1), base, dtype=np.uint64)
    factors[0] = 1
    powers: np.ndarray = np.cumprod(factors, dtype=np.uint64)[:n]
    return powers


_WINDOW_POWERS = _powers(MAX_BOUND + 1, _BASE)  # every window a guard hashes (<= MAX_BOUND)


class CorpusIndex:
    """Every window of the corpus's intervals, hashed for any run length on demand."""

    def __init__(self, corpus: np.ndarray) -> None:
        symbols = corpus.astype(np.uint64)
        self.size = len(symbols)
        with np.errstate(over="ignore"):
            self._prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(
                symbols * _powers(self.size, _BASE), dtype=np.uint64)])
        self._unscale = _powers(self.size, pow(_BASE, -1, 2**64))

    def hashes(self, length: int) -> np.ndarray:
        """The hash of every window of `length` intervals. uint64 [size - length + 1]."""
        count = self.size - length + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            windows: np.ndarray = (self._prefix[length:length + count] - self._prefix[:count]) \
                * self._unscale[:count]
        return windows

    def longest_shared_run(self, line: Sequence[int]) -> int:
        """Longest run of the line's notes whose intervals all appear, in order, in the corpus.

        Returns notes (0 for an empty line, 1 if no interval is shared). A shared run of k
        intervals implies one of k - 1, so: double the length until a probe fails, then bisect.
        """
        if len(line) < 2:
            return len(line)
        mine = CorpusIndex(join_lines([np.asarray(line, dtype=np.int64)])[:-1])

        def shared(k: int) -> bool:
            return bool(_contains(np.sort(self.hashes(k)), mine.hashes(k)).any())

        low, high = 0, 1  # low intervals are known shared; find a high that is not
        while high <= mine.size and shared(high):
            low, high = high, high * 2
        high = min(high, mine.size + 1)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if shared(mid) else (low, mid)
        return low + 1


def longest_shared_run(line: Sequence[int], corpus: np.ndarray) -> int:
    """CorpusIndex(corpus).longest_shared_run(line); build the index once to ask often."""
    return CorpusIndex(corpus).longest_shared_run(line)


class CopyGuard:
    """Tells the sampler which next pitches would complete a run longer than `bound` notes."""

    def __init__(self, corpus: np.ndarray, bound: int = DEFAULT_BOUND) -> None:
        if not 2 <= bound <= MAX_BOUND:
            raise ValueError(f"originality bound must be 2..255 notes, got {bound}")
        index = CorpusIndex(corpus)
        self.bound = bound
        self._intervals = bound  # a forbidden run: bound + 1 notes = bound intervals
        self._full = np.sort(index.hashes(self._intervals))
        # Prefixes (bound - 1 intervals): if the recent line is not one, nothing can be forbidden.
        self._prefixes = np.sort(index.hashes(self._intervals - 1))
        self._powers = _powers(self._intervals, _BASE)

    def forbidden(self, line: Collection[int], candidates: np.ndarray) -> np.ndarray | None:
        """bool [len(candidates)] for the pitches that would copy too much, or None if none can.

        line: the agent's recent pitches, oldest first (only the last `bound` matter).
        """
        if len(line) < self._intervals:
            return None
        recent = np.fromiter(line, dtype=np.int64)[-self._intervals:]
        prefix_hash = window_hash(np.diff(recent) + _OFFSET)
        if not _contains(self._prefixes, np.array([prefix_hash]))[0]:
            return None
        with np.errstate(over="ignore"):
            last = (candidates.astype(np.int64) - recent[-1] + _OFFSET).astype(np.uint64)
            hashes = prefix_hash + last * self._powers[len(recent) - 1]
        return _contains(self._full, hashes)


def _contains(sorted_hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """bool [len(values)]: which values occur in sorted_hashes (sorting beats np.unique/isin's
    hashing here by ~8x at corpus size)."""
    at = np.minimum(np.searchsorted(sorted_hashes, values), max(len(sorted_hashes) - 1, 0))
    if len(sorted_hashes) == 0:
        return np.zeros(len(values), dtype=bool)
    found: np.ndarray = sorted_hashes[at] == values
    return found
