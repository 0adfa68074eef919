"""Key and current chord from pitch-class profiles, updated note by note.

A profile is twelve weights, one per pitch class: how much each has sounded, each moment of sound
counting less the longer ago it was (exponential decay with a half-life). One kind of profile
serves both questions: the key changes slowly, so its profile has a long half-life (or none); the
chord changes every beat or two, so its profile has a half-life of about half a beat.

A note adds the integral of the decay over the time it sounded, so a held note counts by its length
and a note that ended long ago counts little. When only the onset is known (a live note-on), it
counts as one time unit of sound at its onset. Times are in any unit (seconds, beats, ns) as long as
the half-life is in the same unit. No I/O and no clock: every call takes the event time.

The key is the major or minor key whose rotated key profile correlates best with the profile
(Krumhansl-Schmuckler); the chord is the template with the highest cosine similarity, the bass
note breaking ties. bench/key_accuracy.py measures both on the corpora.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TIE = 1e-9  # scores closer than this are equal: floating-point sums differ by rotation
_LN2 = math.log(2.0)
KEY_NAMES = {"major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
             "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")}
ROOT_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# The minor key's scale is its key signature (natural minor); the raised 6th and 7th of harmonic
# and melodic minor are alterations within the key, as accidentals are in the score.
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


@dataclass(frozen=True)
class KeyProfiles:
    """Expected pitch-class weights in a major and a minor key with tonic C."""

    name: str
    major: tuple[float, ...]
    minor: tuple[float, ...]


PROFILES = {p.name: p for p in (
    # Krumhansl & Kessler (1982): listeners' ratings of how well each pitch class fits a key.
    KeyProfiles("krumhansl-kessler",
                (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley (2007): share of segments containing each pitch class in the Kostka-Payne
    # harmony textbook excerpts (common-practice art music).
    KeyProfiles("temperley",
                (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057,
                 0.400),
                (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133,
                 0.330)),
    # Aarden (2003): pitch-class frequencies in the Essen folksong collection.
    KeyProfiles("aarden-essen",
                (17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062,
                 0.145624, 8.15494, 0.232998, 4.95122),
                (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161,
                 4.56621, 1.93186, 7.37619, 1.75623)),
)}
# Chosen on the training splits (bench/key_accuracy.py, whole piece / first 4 bars, strict):
# Temperley 75.1 / 69.1% of the chorales and 86.8 / 81.3% of the O'Neill tunes; Aarden-Essen is
# 3 points better on whole chorales but 11 worse on the tunes (it hears G major tunes as E minor);
# Krumhansl-Kessler trails on both, most of all after four bars. Temperley's profile is nearly
# zero off the scale, so a few bars of a diatonic tune already rule out the neighbouring keys.
DEFAULT_PROFILES = "temperley"


def _decay(elapsed: float, half_life: float) -> float:
    return 1.0 if math.isinf(half_life) else 0.5 ** (elapsed / half_life)


@dataclass
class PitchClassProfile:
    """A decayed pitch-class histogram, updated in O(12) per note.

    The weights are kept as of `time`, the latest moment any note reached; reading them at a later
    moment decays them by the time in between. Notes may arrive out of order (one player's note
    ends after another's): each is weighted from wherever it sounded.
    """

    half_life: float = math.inf
    by_velocity: bool = False  # weight each note by velocity / 127 as well
    time: float | None = None
    _weights: np.ndarray = field(default_factory=lambda: np.zeros(12))

    def __post_init__(self) -> None:
        if not self.half_life > 0:
            raise ValueError(f"half_life must be positive, not {self.half_life}")

    def add(self, pitch: int, onset: float, duration: float | None = None,
            velocity: int = 127) -> None:
        """One note: its whole sounding span, or just its onset when duration is None."""
        end = onset if duration is None else onset + max(duration, 0.0)
        if self.time is None:
            self.time = end
        elif end > self.time:
            self._weights *= _decay(end - self.time, self.half_life)
            self.time = end
        gain = velocity / 127 if self.by_velocity else 1.0
        if duration is None:
            weight = _decay(self.time - onset, self.half_life)
        elif math.isinf(self.half_life):
            weight = end - onset
        else:
            # The integral of 0.5 ** ((time - s) / half_life) for s from onset to end; expm1 keeps
            # it exact for notes much shorter than the half-life.
            tau = self.half_life / _LN2
            weight = tau * math.exp(-(self.time - end) / tau) * -math.expm1(-(end - onset) / tau)
        self._weights[pitch % 12] += gain * weight

    def at(self, time: float | None = None) -> np.ndarray:
        """The twelve weights as of `time` (default: the latest note's end); a copy."""
        if self.time is None:
            return np.zeros(12)
        elapsed = 0.0 if time is None else max(time - self.time, 0.0)
        return self._weights * _decay(elapsed, self.half_life)


def profile_of(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray | None = None,
               velocity: np.ndarray | None = None, *, at: float | None = None,
               half_life: float = math.inf, by_velocity: bool = False) -> np.ndarray:
    """The profile of many notes at once, as PitchClassProfile would hold it at time `at`.

    Notes starting after `at` are not heard yet; notes still sounding count up to `at`. `at`
    defaults to the end of the last note.
    """
    onset = np.asarray(onset, dtype=np.float64)
    end = onset if duration is None else onset + np.maximum(np.asarray(duration, np.float64), 0)
    if at is None:
        at = float(end.max()) if end.size else 0.0
    heard = onset <= at
    onset, end = onset[heard], np.minimum(end[heard], at)
    if duration is None:
        weight = 0.5 ** ((at - onset) / half_life)
    elif math.isinf(half_life):
        weight = end - onset
    else:
        tau = half_life / _LN2
        weight = tau * np.exp(-(at - end) / tau) * -np.expm1(-(end - onset) / tau)
    if by_velocity and velocity is not None:
        weight = weight * np.asarray(velocity, np.float64)[heard] / 127
    pcs = np.asarray(pitch, dtype=np.int64)[heard] % 12
    return np.bincount(pcs, weights=weight, minlength=12).astype(np.float64)


def _vector(profile: PitchClassProfile | np.ndarray) -> np.ndarray:
    v = profile.at() if isinstance(profile, PitchClassProfile) else np.asarray(profile, np.float64)
    if v.shape != (12,):
        raise ValueError(f"a pitch-class profile has 12 weights, not shape {v.shape}")
    return v


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class 0-11 (0 = C)
    mode: str  # "major" | "minor"
    name: str  # e.g. "F major", "C# minor"
    confidence: float  # Pearson correlation with the key's profile, in (0, 1]
    margin: float  # how far the runner-up key's correlation is below
    scale: frozenset[int]  # the key signature's pitch classes


def _rotations(profiles: KeyProfiles) -> np.ndarray:
    """24 x 12: row mode * 12 + tonic is the profile of that key, centred and unit length."""
    rows = [np.roll(np.array(p, np.float64), t) for p in (profiles.major, profiles.minor)
            for t in range(12)]
    m = np.array(rows)
    m -= m.mean(axis=1, keepdims=True)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


_KEY_MATRICES = {name: _rotations(p) for name, p in PROFILES.items()}


def key_correlations(profile: PitchClassProfile | np.ndarray,
                     profiles: str = DEFAULT_PROFILES) -> np.ndarray | None:
    """Pearson correlation with each of the 24 keys (major C..B, then minor C..B); None when
    every pitch class has the same weight (nothing heard, or all twelve alike)."""
    v = _vector(profile)
    centred = v - v.mean()
    norm = float(np.linalg.norm(centred))
    if norm <= 1e-12 * max(float(np.abs(v).max()), 1e-300):
        return None
    return np.asarray(_KEY_MATRICES[profiles] @ (centred / norm))


def estimate_key(profile: PitchClassProfile | np.ndarray,
                 profiles: str = DEFAULT_PROFILES) -> KeyEstimate | None:
    """The best-correlating key, or None when nothing distinguishes one key from another."""
    r = key_correlations(profile, profiles)
    if r is None:
        return None
    best = int(np.argmax(r))  # ties: the first, i.e. major before minor, then lowest tonic
    runner_up = float(np.max(np.delete(r, best)))
    mode, tonic = ("major", "minor")[best // 12], best % 12
    return KeyEstimate(tonic=tonic, mode=mode, name=f"{KEY_NAMES[mode][tonic]} {mode}",
                       confidence=float(r[best]), margin=float(r[best]) - runner_up,
                       scale=frozenset((tonic + s) % 12 for s in SCALES[mode]))


# Chord qualities: intervals above the root, and the suffix of the chord's name. Order matters
# only for exact ties: the simpler chord first.
QUALITIES: dict[str, tuple[tuple[int, ...], str]] = {
    "maj": ((0, 4, 7), ""), "min": ((0, 3, 7), "m"), "dim": ((0, 3, 6), "dim"),
    "aug": ((0, 4, 8), "aug"), "7": ((0, 4, 7, 10), "7"), "maj7": ((0, 4, 7, 11), "maj7"),
    "min7": ((0, 3, 7, 10), "m7"), "m7b5": ((0, 3, 6, 10), "m7b5"),
    "dim7": ((0, 3, 6, 9), "dim7"),
}
_CHORDS = [(root, quality) for quality in QUALITIES for root in range(12)]
_TEMPLATES = np.array([[1.0 if (pc - root) % 12 in QUALITIES[q][0] else 0.0 for pc in range(12)]
                       for root, q in _CHORDS])
_TEMPLATES /= np.linalg.norm(_TEMPLATES, axis=1, keepdims=True)
_QUALITY_ORDER = {q: i for i, q in enumerate(QUALITIES)}


@dataclass(frozen=True)
class ChordEstimate:
    root: int  # pitch class 0-11
    quality: str  # a key of QUALITIES: maj min dim aug 7 maj7 min7 m7b5 dim7
    name: str  # e.g. "G7", "F#m", "Bdim"
    pitch_classes: frozenset[int]
    confidence: float  # cosine similarity of profile and template, in (0, 1]


def estimate_chord(profile: PitchClassProfile | np.ndarray,
                   bass: int | None = None) -> ChordEstimate | None:
    """The chord template closest to the profile (cosine), or None when nothing sounds.

    Among equal scores, a chord whose root is the bass wins, then the simpler quality, then the
    root nearest above the bass (or above C without one). Breaking ties relative to the bass keeps
    the answer transposition-equivariant even for symmetric chords (aug, dim7).
    """
    v = np.maximum(_vector(profile), 0.0)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        return None
    scores = _TEMPLATES @ (v / norm)
    top = float(scores.max())
    ref = 0 if bass is None else bass % 12
    tied = np.flatnonzero(scores >= top - TIE)
    root, quality = min((_CHORDS[i] for i in tied),
                        key=lambda c: (c[0] != ref or bass is None, _QUALITY_ORDER[c[1]],
                                       (c[0] - ref) % 12))
    intervals, suffix = QUALITIES[quality]
    return ChordEstimate(root=root, quality=quality, name=ROOT_NAMES[root] + suffix,
                         pitch_classes=frozenset((root + i) % 12 for i in intervals),
                         confidence=top)
