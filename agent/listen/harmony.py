"""Key and current chord from pitch-class profiles, updated note by note.

A profile is twelve weights, one per pitch class: how much each has sounded, each moment of sound
counting less the longer ago it was (exponential decay with a half-life). One kind of profile
serves both questions: the key changes slowly, so its profile has a long half-life (or none); the
chord changes every beat or two, so its profile has a half-life of about half a beat.

A note adds the integral of the decay over the time it sounded, so a held note counts by its length
and a note that ended long ago counts little. When only the onset is known (a live note-on), it
counts as one time unit of sound at its onset. Times are in any unit (seconds, beats, ns) as long as
the half-life is in the same unit. No I/O and no clock: every call takes the event time.

The key is the major or minor key that best explains what was heard. The default model was learned
from the training splits of the corpora (bench/learn_key_profiles.py): for each mode, the mean
share of sounding time of each pitch class and the distribution of the opening note, both relative
to the tonic; a key's score is the log-likelihood of the heard profile (as if drawn as a fixed
number of notes) plus that of the opening note, which fades with the profile's half-life. The
published profiles (Krumhansl-Kessler, Temperley, Aarden-Essen) remain selectable and are scored
by correlation (Krumhansl-Schmuckler). The note the music comes to rest on would be a stronger cue
still (cross-validated on the training splits it added 3 points on whole pieces), but a listener
reading the key mid-phrase cannot tell the latest note from a resting one without the read time,
and used as is it cost 1-3 points after four bars; it is left out.

The chord is the template with the highest cosine similarity, the bass note breaking ties.
bench/key_accuracy.py measures both on the corpora.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

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
    """Expected pitch-class weights in a major and a minor key with tonic C.

    Published profiles are ratings or counts on their own scales and are compared by correlation.
    A learned model (`opening` set) holds distributions instead, scored by likelihood: then
    `evidence_weight` is how many notes the heard profile counts as, `opening_weight` how much the
    opening note counts, `minor_share` the prior share of minor keys.
    """

    name: str
    major: tuple[float, ...]
    minor: tuple[float, ...]
    opening: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # major, minor
    minor_share: float = 0.5
    evidence_weight: float = 20.0
    opening_weight: float = 0.5


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
# Learned by bench/learn_key_profiles.py from the training splits of bach-chorales and
# oneill-1850 (each corpus weighted alike; modal tunes as the major or minor of their third);
# the two weights were chosen on the validation splits (`--tune`). Regenerate, do not edit.
PROFILES["corpus-trained"] = KeyProfiles(
    "corpus-trained",
    (0.22792, 0.00457, 0.13418, 0.00217, 0.14746, 0.08089, 0.01019, 0.18769,
     0.00589, 0.10531, 0.00863, 0.08509),
    (0.22273, 0.00787, 0.11234, 0.13539, 0.01211, 0.11803, 0.00467, 0.17506,
     0.04934, 0.01894, 0.11724, 0.02628),
    opening=((0.40032, 0.03125, 0.04595, 0.03125, 0.08120, 0.03780, 0.03125, 0.17614,
              0.03125, 0.05568, 0.03432, 0.04359),
             (0.33513, 0.03125, 0.04573, 0.09019, 0.04072, 0.09888, 0.03125, 0.16096,
              0.03487, 0.03125, 0.06615, 0.03362)),
    minor_share=0.335, evidence_weight=10.0, opening_weight=0.25)
DEFAULT_PROFILES = "corpus-trained"


@dataclass(frozen=True)
class KeyEvidence:
    """What a key is estimated from: the pitch-class profile, and the opening note.

    The opening note (the lowest of the first notes heard) is where most pieces start: on the
    tonic, its third or its fifth (bench/learn_key_profiles.py prints how often). It tells a key
    from its relative major or minor, which share their notes; its weight fades with the profile's
    half-life, so on a long night the first note of the evening stops counting.
    """

    weights: np.ndarray  # twelve pitch-class weights
    opening: int | None = None  # pitch class 0-11 of the opening note, if any was heard
    opening_weight: float = 0.0  # 1 when the opening note has just sounded, toward 0 long after


def _decay(elapsed: float, half_life: float) -> float:
    return 1.0 if math.isinf(half_life) else 0.5 ** (elapsed / half_life)


@dataclass
class PitchClassProfile:
    """A decayed pitch-class histogram, updated in O(12) per note, and the opening note.

    The weights are kept as of `time`, the latest moment any note reached; reading them at a later
    moment decays them by the time in between. Notes may arrive out of order (one player's note
    ends after another's): each is weighted from wherever it sounded, and the opening note is the
    earliest onset seen so far (the lowest pitch among equal onsets).
    """

    half_life: float = math.inf
    by_velocity: bool = False  # weight each note by velocity / 127 as well
    time: float | None = None
    _weights: np.ndarray = field(default_factory=lambda: np.zeros(12))
    _opening: tuple[float, int] | None = None  # (onset, pitch)

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
        if self._opening is None or (onset, pitch) < self._opening:
            self._opening = (onset, pitch)
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

    def evidence(self, time: float | None = None) -> KeyEvidence:
        """The profile and the opening note as of `time` (default: the latest note's end)."""
        if self.time is None or self._opening is None:
            return KeyEvidence(np.zeros(12))
        now = self.time if time is None else max(time, self.time)
        onset, pitch = self._opening
        return KeyEvidence(self.at(time), pitch % 12, _decay(now - onset, self.half_life))


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


def key_evidence(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray | None = None,
                 velocity: np.ndarray | None = None, *, at: float | None = None,
                 half_life: float = math.inf, by_velocity: bool = False) -> KeyEvidence:
    """The evidence of many notes at once, as PitchClassProfile.evidence would give it at `at`."""
    weights = profile_of(pitch, onset, duration, velocity, at=at, half_life=half_life,
                         by_velocity=by_velocity)
    onset = np.asarray(onset, dtype=np.float64)
    pitch = np.asarray(pitch, dtype=np.int64)
    if at is None:
        end = onset if duration is None else onset + np.maximum(np.asarray(duration, float), 0)
        at = float(end.max()) if end.size else 0.0
    heard = np.flatnonzero(onset <= at)
    if not heard.size:
        return KeyEvidence(weights)
    first = heard[np.lexsort((pitch[heard], onset[heard]))[0]]
    return KeyEvidence(weights, int(pitch[first]) % 12,
                       _decay(at - float(onset[first]), half_life))


def _vector(profile: PitchClassProfile | KeyEvidence | np.ndarray) -> np.ndarray:
    if isinstance(profile, PitchClassProfile):
        v = profile.at()
    elif isinstance(profile, KeyEvidence):
        v = np.asarray(profile.weights, np.float64)
    else:
        v = np.asarray(profile, np.float64)
    if v.shape != (12,):
        raise ValueError(f"a pitch-class profile has 12 weights, not shape {v.shape}")
    return v


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class 0-11 (0 = C)
    mode: str  # "major" | "minor"
    name: str  # e.g. "F major", "C# minor"
    # Published profiles: the Pearson correlation with the key's profile; a learned model: the
    # key's posterior probability among the 24. In (0, 1] either way.
    confidence: float
    margin: float  # how far the runner-up key's confidence is below
    scale: frozenset[int]  # the key signature's pitch classes


@dataclass(frozen=True)
class _KeyMatrices:
    """24 x 12 matrices; row mode * 12 + tonic belongs to that key."""

    centred: np.ndarray  # the key's profile, centred and unit length (for correlation)
    log_profile: np.ndarray | None  # log of a learned model's distribution, rotated
    log_opening: np.ndarray | None  # log-probability of each opening pitch class
    log_prior: np.ndarray | None  # 24: log prior of each key


def _rotate(major: tuple[float, ...], minor: tuple[float, ...]) -> np.ndarray:
    return np.array([np.roll(np.array(p, np.float64), t) for p in (major, minor)
                     for t in range(12)])


@lru_cache(maxsize=32)
def _matrices(model: KeyProfiles) -> _KeyMatrices:
    m = _rotate(model.major, model.minor)
    centred = m - m.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    if model.opening is None:
        return _KeyMatrices(centred, None, None, None)
    opening = _rotate(*model.opening)
    prior = np.repeat([(1 - model.minor_share) / 12, model.minor_share / 12], 12)
    return _KeyMatrices(centred, np.log(m / m.sum(axis=1, keepdims=True)),
                        np.log(opening / opening.sum(axis=1, keepdims=True)), np.log(prior))


def _model(profiles: str | KeyProfiles) -> KeyProfiles:
    return PROFILES[profiles] if isinstance(profiles, str) else profiles


def key_correlations(profile: PitchClassProfile | KeyEvidence | np.ndarray,
                     profiles: str | KeyProfiles = DEFAULT_PROFILES) -> np.ndarray | None:
    """Pearson correlation with each of the 24 keys (major C..B, then minor C..B); None when
    every pitch class has the same weight (nothing heard, or all twelve alike)."""
    unit = _centred_unit(_vector(profile))
    return None if unit is None else np.asarray(_matrices(_model(profiles)).centred @ unit)


def _centred_unit(v: np.ndarray) -> np.ndarray | None:
    """v minus its mean, at unit length; None when all twelve weights are (nearly) equal."""
    centred = v - v.mean()
    norm = float(np.linalg.norm(centred))
    if norm <= 1e-12 * max(float(np.abs(v).max()), 1e-300):
        return None
    unit: np.ndarray = centred / norm
    return unit


def key_scores(evidence: PitchClassProfile | KeyEvidence | np.ndarray,
               profiles: str | KeyProfiles = DEFAULT_PROFILES) -> np.ndarray | None:
    """Each of the 24 keys' score: the correlation for published profiles; for a learned model,
    the log-likelihood of the evidence plus the key's log prior. None as key_correlations.

    A learned model reads the profile as shares of the sounding time, counted as
    `evidence_weight` notes however much was heard, so that a long piece does not drown the
    opening note, nor a short one make it decide alone.
    """
    model = _model(profiles)
    mats = _matrices(model)
    if mats.log_profile is None:
        return key_correlations(evidence, model)
    assert mats.log_opening is not None and mats.log_prior is not None
    ev = evidence.evidence() if isinstance(evidence, PitchClassProfile) else evidence
    v = np.maximum(_vector(ev), 0.0)
    if _centred_unit(v) is None:
        return None
    scores = mats.log_prior + model.evidence_weight * (mats.log_profile @ (v / v.sum()))
    if isinstance(ev, KeyEvidence) and ev.opening is not None:
        scores += model.opening_weight * ev.opening_weight * mats.log_opening[:, ev.opening]
    return np.asarray(scores)


def estimate_key(evidence: PitchClassProfile | KeyEvidence | np.ndarray,
                 profiles: str | KeyProfiles = DEFAULT_PROFILES) -> KeyEstimate | None:
    """The best-scoring key, or None when nothing distinguishes one key from another.

    A PitchClassProfile or KeyEvidence gives the opening note too; a bare array, the profile only.
    """
    s = key_scores(evidence, profiles)
    if s is None:
        return None
    best = int(np.argmax(s))  # ties: the first, i.e. major before minor, then lowest tonic
    if _model(profiles).opening is not None:  # log-likelihoods -> posterior probabilities
        s = np.exp(s - s[best])
        s /= s.sum()
    runner_up = float(np.max(np.delete(s, best)))
    mode, tonic = ("major", "minor")[best // 12], best % 12
    return KeyEstimate(tonic=tonic, mode=mode, name=f"{KEY_NAMES[mode][tonic]} {mode}",
                       confidence=float(s[best]), margin=float(s[best]) - runner_up,
                       scale=frozenset((tonic + d) % 12 for d in SCALES[mode]))


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
