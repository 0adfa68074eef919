"""The judge's beat grid for a recording with no ground truth, estimated offline with hindsight.

From every player onset of the whole recording (never the agent's, never agent.listen.beat):
1. an onset-strength signal at 200 frames a second: each onset adds its velocity, spread by a
   20 ms Gaussian (loud notes mark beats more than soft ones);
2. the beat period from its autocorrelation, weighted by a log-normal prior around 120 BPM
   (one octave wide), as in Ellis 2007;
3. the beats by dynamic programming (Ellis 2007, "Beat tracking by dynamic programming"): each
   frame's best score is its strength plus the best earlier beat 0.5-2 periods back, minus
   ALPHA * log(interval / period)^2; backtraced from the best end;
4. each beat refined by a least-squares line through the onsets near the beats and half beats
   within four beats of it (the onsets' own jitter averages out); beats in a long silence are
   spaced evenly between the refined beats on either side;
5. the downbeat: of the `beats_per_bar` phases, the one whose beats carry the most velocity and
   note length (players lean on the bar's first beat and hold notes there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.record.judge import Grid, Note, extrapolated, grid_of

FPS = 200
SMOOTH_S = 0.020
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
BPM_RANGE = (40.0, 240.0)
PEAK_SHARE = 0.5  # peaks of the autocorrelation this close to the highest compete
ALPHA = 100.0  # how strongly beats keep the period (Ellis's tightness)
REFINE_BEATS = 4  # onsets within this many beats on either side fit a beat's line
NEAR_SHARE = 0.125  # an onset within this share of a beat of a beat or half beat belongs to it
MIN_FIT = 3  # onsets needed to refine a beat
# The players' notes may span this much at most (4.3 M frames, ~25 s of work): the frames cost
# memory and a Python loop each, so a log with a gap of days in it gets no grid.
MAX_GRID_S = 6 * 3600


def onset_strength(players: Sequence[Note]) -> tuple[np.ndarray, float]:
    """(signal, time of its frame 0 in s)."""
    onsets = np.array([n.onset for n in players], dtype=np.float64)
    start = float(onsets.min()) - 1.0
    frames = int((float(onsets.max()) - start + 2.0) * FPS) + 1
    signal = np.zeros(frames)
    np.add.at(signal, np.round((onsets - start) * FPS).astype(np.int64),
              np.array([n.velocity for n in players], dtype=np.float64) / 127.0)
    half = int(4 * SMOOTH_S * FPS)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / (SMOOTH_S * FPS)) ** 2)
    return np.convolve(signal, kernel, mode="same"), start


def beat_period(signal: np.ndarray) -> float:
    """The beat period in frames: the autocorrelation's peak under the tempo prior."""
    centred = signal - signal.mean()
    lo, hi = int(FPS * 60 / BPM_RANGE[1]), int(FPS * 60 / BPM_RANGE[0])
    lags = np.arange(lo, min(hi, len(signal) - 1))
    spectrum = np.fft.rfft(centred, 2 * len(centred))
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[lags]
    prior = np.exp(-0.5 * (np.log2(lags / (FPS * 60 / PRIOR_BPM)) / PRIOR_OCTAVES) ** 2)
    # Of the autocorrelation's peaks at least half as strong as the highest, the one the prior
    # likes best: a waltz's bar or a jig's dotted quarter must not beat the tune's beat by a
    # little more correlation.
    peaks = [i for i in range(1, len(lags) - 1) if acf[i] >= acf[i - 1] and acf[i] >= acf[i + 1]
             and acf[i] >= PEAK_SHARE * acf.max()]
    best = max(peaks, key=lambda i: prior[i]) if peaks else int(np.argmax(acf * prior))
    if 0 < best < len(lags) - 1:  # parabolic interpolation between frames
        a, b, c = acf[best - 1:best + 2]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
        return float(lags[best] + shift)
    return float(lags[best])


def dp_beats(signal: np.ndarray, period: float) -> np.ndarray:
    """Beat frames by Ellis's dynamic programming."""
    strength = signal / (signal.std() or 1.0)
    score = strength.copy()
    back = np.full(len(signal), -1, dtype=np.int64)
    steps = np.arange(-round(2 * period), -round(period / 2) + 1)
    penalty = -ALPHA * np.log(-steps / period) ** 2
    for t in range(len(signal)):
        earlier = t + steps
        ok = earlier >= 0
        if not ok.any():
            continue
        candidates = score[earlier[ok]] + penalty[ok]
        best = int(np.argmax(candidates))
        if candidates[best] > 0:
            score[t] = strength[t] + candidates[best]
            back[t] = earlier[ok][best]
    tail = len(signal) - int(period)
    t = tail + int(np.argmax(score[tail:]))
    frames = [t]
    while back[frames[-1]] >= 0:
        frames.append(int(back[frames[-1]]))
    return np.array(frames[::-1], dtype=np.float64)


def refine(beats: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Each beat on a least-squares line through the nearby onsets (on beats or half beats);
    beats without enough onsets around are spaced evenly between refined ones."""
    positions = np.arange(len(beats), dtype=np.float64)
    # Each onset's position in beats, snapped to the nearest beat or half beat when close.
    index = extrapolated(onsets, beats, positions)
    snapped = np.round(index * 2) / 2
    near = (np.abs(index - snapped) <= NEAR_SHARE) & (snapped >= 0) & (snapped <= positions[-1])
    pos, times = snapped[near], onsets[near]
    refined = np.full(len(beats), np.nan)
    for i in range(len(beats)):
        mask = np.abs(pos - i) <= REFINE_BEATS
        if mask.sum() >= MIN_FIT and np.ptp(pos[mask]) > 0:
            slope, intercept = np.polyfit(pos[mask], times[mask], 1)
            refined[i] = intercept + slope * i
    known = ~np.isnan(refined)
    if known.sum() < 2:
        return beats
    out = extrapolated(positions, positions[known], refined[known])
    # Refining must not reorder beats (a sparse stretch fitted badly): keep the path there.
    return out if (np.diff(out) > 0).all() else beats


def downbeat_phase(beats: np.ndarray, players: Sequence[Note], beats_per_bar: int) -> int:
    """The beat number (0 .. beats_per_bar - 1) of the first downbeat."""
    weight = np.zeros(len(beats))
    for n in players:
        i = int(np.argmin(np.abs(beats - n.onset)))
        length = float(beats[min(i + 1, len(beats) - 1)] - beats[max(i - 1, 0)]) / 2 or 1.0
        if abs(beats[i] - n.onset) <= NEAR_SHARE * length:
            weight[i] += n.velocity / 127.0 + min((n.end - n.onset) / length, 2.0)
    scores = [float(weight[p::beats_per_bar].mean()) if len(weight[p::beats_per_bar]) else 0.0
              for p in range(beats_per_bar)]
    return int(np.argmax(scores))


def estimate_beats(players: Sequence[Note]) -> np.ndarray:
    """The players' beat times (s), tracked with hindsight."""
    signal, start = onset_strength(players)
    frames = dp_beats(signal, beat_period(signal))
    onsets = np.array(sorted(n.onset for n in players), dtype=np.float64)
    beats = start + frames / FPS
    # The path may start late or end early (a weak first beat): extend it over every onset.
    period = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    before = np.arange(beats[0] - period, onsets[0] - period / 2, -period)[::-1]
    after = np.arange(beats[-1] + period, onsets[-1] + period / 2, period)
    return refine(np.concatenate([before, beats, after]), onsets)


def estimate_grid(players: Sequence[Note], beats_per_bar: int) -> Grid | None:
    """The grid of a recording from its players' notes, in bars of beats_per_bar beats; None
    with too few notes to find a beat, or notes spread over more than MAX_GRID_S."""
    if len(players) < 8:
        return None
    onsets = [n.onset for n in players]
    if max(onsets) - min(onsets) > MAX_GRID_S:
        return None
    beats = estimate_beats(players)
    if len(beats) < 4:
        return None
    return grid_of(beats, beats_per_bar, downbeat_phase(beats, players, beats_per_bar))


def beats_found(estimated: np.ndarray, true: np.ndarray, tolerance_s: float = 0.025) -> float:
    """Share of the true beats with an estimated beat within the tolerance."""
    if len(true) == 0 or len(estimated) == 0:
        return 0.0
    i = np.clip(np.searchsorted(estimated, true), 1, len(estimated) - 1)
    distance = np.minimum(np.abs(true - estimated[i - 1]), np.abs(true - estimated[i]))
    return float((distance <= tolerance_s).mean())
