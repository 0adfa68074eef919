"""Tempo and beat phase from onsets, on a manual time base: steady, subdivided, jittered, changing
tempo, rests, too little input, phase; and the pure helpers, exactly."""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.listen.beat import (
    CAND_PERIODS_NS,
    FADE_NS,
    IOI_MIN_NS,
    MERGE_NS,
    N_BINS,
    BeatTracker,
    bin_of,
    fit_grid,
    ioi_histogram,
    tempo_scores,
)

S = 1_000_000_000


def feed(tracker: BeatTracker, beats: Iterable[float], bpm: float, start_ns: int = 0,
         jitter_ms: float = 0.0, seed: int = 0) -> int:
    """Play onsets at beat positions; returns the time of the last one."""
    rng = random.Random(seed)
    t = start_ns
    for b in beats:
        t = start_ns + round(b * 60 * S / bpm + rng.uniform(-jitter_ms, jitter_ms) * 1e6)
        tracker.on_onset(t)
    return t


def bpm_after(beats: Iterable[float], bpm: float, **kw: float) -> float:
    tracker = BeatTracker()
    t = feed(tracker, beats, bpm, **kw)  # type: ignore[arg-type]
    est = tracker.estimate(t)
    assert est is not None
    return est.bpm


def near(got: float, want: float, tolerance: float = 0.02) -> bool:
    return abs(got / want - 1) <= tolerance


def test_no_onsets_or_one_onset_gives_no_estimate_and_no_crash() -> None:
    tracker = BeatTracker()
    assert tracker.estimate(0) is None
    assert tracker.next_beat(5) == 5 and tracker.nearest_beat(5) == 5  # nothing to align to
    tracker.on_onset(1 * S)
    assert tracker.estimate(2 * S) is None
    tracker.on_onset(1 * S + MERGE_NS // 2)  # the same chord
    assert tracker.estimate(2 * S) is None
    assert tracker.next_beat(7) == 7


def test_steady_quarters_at_120_within_2_percent_after_4_beats() -> None:
    tracker = BeatTracker()
    t = feed(tracker, range(4), 120)
    est = tracker.estimate(t)
    assert est is not None
    assert near(est.bpm, 120) and est.period_ns == 500_000_000
    assert est.beats_seen == 4
    assert 0 < est.confidence <= 1


def test_chords_count_once() -> None:
    """Four voices a few ms apart on every beat are one onset each: still 120, not faster."""
    tracker = BeatTracker()
    for beat in range(8):
        for voice in range(4):
            tracker.on_onset(beat * S // 2 + voice * 7_000_000)
    est = tracker.estimate(4 * S)
    assert est is not None and near(est.bpm, 120)
    assert abs(tracker.nearest_beat(2 * S) - (2 * S + 10_500_000)) < 1_000_000  # chords' mean


def test_eighth_note_runs_at_90_are_not_taken_at_180() -> None:
    assert near(bpm_after([i / 2 for i in range(16)], 90), 90)


def test_dotted_rhythms_at_90() -> None:
    dotted = [b + d for b in range(8) for d in (0.0, 0.75)]
    assert near(bpm_after(dotted, 90), 90)


def test_quarters_and_eighths_with_rests_and_syncopation() -> None:
    bar = [0, 1, 1.5, 2.5, 3, 3.5]  # syncopated: the third beat is tied over
    assert near(bpm_after([4 * b + x for b in range(4) for x in bar], 100), 100)


def test_triplets_do_not_disturb_the_tempo() -> None:
    bar = [0, 1, 1 + 1 / 3, 1 + 2 / 3, 2, 3]
    assert near(bpm_after([4 * b + x for b in range(4) for x in bar], 110), 110)


@settings(max_examples=40, deadline=None)
@given(st.floats(70, 140), st.integers(0, 2**32))
def test_jittered_quarters_within_2_percent_after_8_beats(bpm: float, seed: int) -> None:
    assert near(bpm_after(range(8), bpm, jitter_ms=15, seed=seed), bpm)


@settings(max_examples=40, deadline=None)
@given(st.floats(140, 170), st.integers(0, 2**32))
def test_fast_jittered_quarters_are_heard_at_the_tempo_or_half_of_it(bpm: float,
                                                                    seed: int) -> None:
    """Above 140 BPM the tempo prior (centred on 110) can prefer the half-tempo level: 2% of
    600 random cases here (a musically valid beat, every other quarter). Known limit."""
    got = bpm_after(range(8), bpm, jitter_ms=15, seed=seed)
    assert near(got, bpm) or near(got, bpm / 2)


def test_a_tempo_change_from_100_to_120_is_followed_within_8_beats() -> None:
    tracker = BeatTracker()
    t = feed(tracker, range(16), 100, jitter_ms=10, seed=1)
    est = tracker.estimate(t)
    assert est is not None and near(est.bpm, 100)
    start = t + S // 2
    t = feed(tracker, range(8), 120, start_ns=start, jitter_ms=10, seed=2)
    est = tracker.estimate(t)
    assert est is not None and near(est.bpm, 120)


def test_gradual_accelerando_is_followed() -> None:
    """100 -> 110 BPM over 40 beats. The fit lags such a change by about FIT_TAU_BEATS beats'
    worth of it (here 1%)."""
    tracker = BeatTracker()
    t, bpm = 0.0, 100.0
    for _ in range(40):
        tracker.on_onset(round(t))
        t += 60 * S / bpm
        bpm *= 1.0024
    est = tracker.estimate(round(t))
    assert est is not None and near(est.bpm, bpm / 1.0024)


def test_a_long_rest_keeps_the_estimate_and_resuming_keeps_the_tempo() -> None:
    tracker = BeatTracker()
    t = feed(tracker, range(12), 96, jitter_ms=10, seed=3)
    later = t + 20 * S
    est = tracker.estimate(later)
    assert est is not None and near(est.bpm, 96)
    assert est.confidence < 0.1  # 20 s of silence: the grid is a guess now
    start = later + 137_000_000  # the players come back, not on the old grid
    t = feed(tracker, [0, 0.5, 1], 96, start_ns=start)  # a few notes, eighths among them
    est = tracker.estimate(t)
    assert est is not None and near(est.bpm, 96)
    assert abs(tracker.nearest_beat(start + 625_000_000) - (start + 625_000_000)) < 20_000_000


@pytest.mark.parametrize("bpm", [72.0, 120.0, 150.0])
def test_nearest_beat_of_on_beat_onsets_within_20_ms(bpm: float) -> None:
    """Predicted before each onset is heard, after 8 beats of a melody with off-beat notes."""
    rng = random.Random(4)
    tracker = BeatTracker()
    bar = [0, 0.5, 1, 2, 2.5, 3, 3.75]
    errors = []
    for b in [4 * k + x for k in range(8) for x in bar]:
        true_ns = round(b * 60 * S / bpm)
        if b >= 8 and b % 1 == 0:
            errors.append(abs(tracker.nearest_beat(true_ns) - true_ns))
        tracker.on_onset(true_ns + round(rng.gauss(0, 10) * 1e6))
    assert np.median(errors) <= 20e6
    after = tracker.next_beat(round(31.75 * 60 * S / bpm))  # at 72 BPM the tracker feels 144
    assert abs(after - 32 * 60 * S / bpm) <= 20e6


def test_out_of_order_onset_is_ignored() -> None:
    tracker = BeatTracker()
    t = feed(tracker, range(6), 120)
    tracker.on_onset(t - S)
    est = tracker.estimate(t)
    assert est is not None and near(est.bpm, 120)


def test_ioi_histogram_counts_every_pair_in_range() -> None:
    times = [0, 500_000_000, 1_000_000_000, 1_250_000_000]
    hist = ioi_histogram(times, [1.0, 2.0, 1.0, 1.0])
    assert hist.shape == (N_BINS,)
    # pairs (interval ms, weight, the later onset's time ms): the 250 ms pair is too short
    want = np.zeros(N_BINS)
    for ioi, w, later in [(500, 2, 500), (1000, 1, 1000), (1250, 1, 1250), (500, 2, 1000),
                          (750, 2, 1250)]:
        want[round(bin_of(ioi * 1e6))] += w * np.exp(later * 1e6 / FADE_NS)
    np.testing.assert_allclose(hist, want)
    assert bin_of(IOI_MIN_NS) == 0


def test_the_tracker_histogram_is_the_batch_histogram_of_its_window() -> None:
    rng = random.Random(5)
    tracker = BeatTracker()
    t = 0
    for _ in range(60):  # more than the window holds: onsets are evicted
        t += rng.choice([250, 500, 750, 1000]) * 1_000_000 + rng.randrange(-9, 9) * 1_000_000
        tracker.on_onset(t)
    times = np.array(tracker._t)  # white-box: the incremental histogram must equal the batch one
    want = ioi_histogram(times, fade_ref_ns=int(tracker._fade_ref))
    np.testing.assert_allclose(tracker._hist, want, rtol=1e-9, atol=1e-9 * want.max())


def test_tempo_scores_peak_at_the_steady_period() -> None:
    hist = ioi_histogram([i * 600_000_000 for i in range(8)])  # 100 BPM
    best = CAND_PERIODS_NS[int(np.argmax(tempo_scores(hist)))]
    assert near(float(best), 600e6, 0.011)
    assert not tempo_scores(np.zeros(N_BINS)).any()


def test_fit_grid_exact_on_a_half_beat_grid() -> None:
    period = 600_000_000
    beats = [0, 0.5, 1, 1.25, 2, 3, 3.5]  # 1.25 is a sixteenth: off the half-beat grid
    times = [1_000_000_000 + round(b * 610_000_000) for b in beats]  # played at 610 ms a beat
    fit = fit_grid(times, period)
    assert fit.fitted and fit.start == 0
    assert fit.period_ns == pytest.approx(610_000_000)
    np.testing.assert_array_equal(np.isnan(fit.positions), [b == 1.25 for b in beats])
    np.testing.assert_allclose(fit.positions[~np.isnan(fit.positions)] + 3.5,
                               [0, 0.5, 1, 2, 3, 3.5])
    np.testing.assert_allclose(fit.residuals_ns[~np.isnan(fit.residuals_ns)], 0, atol=1e-3)
    assert fit.phase_ns == pytest.approx(times[-1])  # position 0: the newest on-grid onset


def test_fit_grid_starts_after_a_long_gap() -> None:
    times = [0, 500_000_000, 1_000_000_000, 9_000_000_000, 9_500_000_000, 10_000_000_000]
    fit = fit_grid(times, 500_000_000)
    assert fit.start == 3 and fit.positions.size == 3
    assert fit.period_ns == pytest.approx(500_000_000)
    empty = fit_grid([], 500_000_000)
    assert not empty.fitted and empty.on_grid == 0
