"""The "style is heard" measure (agent.record.style_match): exact histograms and distances on
tiny hand-made lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.model.corpus import Work
from agent.record.judge import Note
from agent.record.style_match import (
    Histograms,
    interval_histogram,
    js_bits,
    length_bin,
    length_histogram,
    line,
    pitch_class_histogram,
    played_line,
    style_distance,
    top_notes,
    work_lines,
)


def bins(counts: np.ndarray) -> dict[int, float]:
    return {i: float(c) for i, c in enumerate(counts) if c}


def test_pitch_classes_are_counted_from_the_tonic() -> None:
    in_d = line([0, 1, 2, 3], [1, 1, 1, 1], [62, 66, 69, 74], tonic=2)  # D F# A D
    in_c = line([0, 1], [1, 1], [60, 71], tonic=0)  # C B
    assert bins(pitch_class_histogram([in_d, in_c])) == {0: 3.0, 4: 1.0, 7: 1.0, 11: 1.0}


def test_intervals_follow_the_top_note_of_each_moment_and_stop_at_long_rests() -> None:
    # C, then a chord E+G (G on top), then A; a rest of 3 beats; then B (not joined), C.
    ln = line([0, 1, 1.02, 2, 6, 7], [1, 1, 1, 1, 1, 1], [60, 64, 67, 69, 71, 72], tonic=0)
    onset, end, pitch = top_notes(ln)
    assert onset.tolist() == [0, 1, 2, 6, 7] and pitch.tolist() == [60, 67, 69, 71, 72]
    assert end.tolist() == [1, 2.02, 3, 7, 8]
    # +7, +2, (rest of 3 beats), +1; bin of interval i is i + 13.
    assert bins(interval_histogram([ln])) == {20: 1.0, 15: 1.0, 14: 1.0}


def test_leaps_beyond_an_octave_share_an_end_bin() -> None:
    ln = line([0, 1, 2, 3], [1, 1, 1, 1], [60, 80, 60, 48], tonic=0)  # +20, -20, -12
    assert bins(interval_histogram([ln])) == {26: 1.0, 0: 1.0, 1: 1.0}


def test_lengths_fall_in_half_octave_bins() -> None:
    beats = np.array([1.0, 0.9, 1.18, 0.75, 1.5, 0.25, 0.01, 40.0])
    # 1 -> k 0; 0.9 -> 2*log2 = -0.30 -> 0; 1.18 -> 0.48 -> 0 (the bin ends at 2 ** 0.25 = 1.189);
    # 0.75 -> -0.83 -> -1; 1.5 -> 1.17 -> 1; 0.25 -> -4; 0.01 and 40 clipped to -8 and 8.
    assert (length_bin(beats) - 8).tolist() == [0, 0, 0, -1, 1, -4, -8, 8]
    ln = line(list(range(8)), beats.tolist(), [60] * 8, tonic=0)
    assert bins(length_histogram([ln])) == {8: 3.0, 7: 1.0, 9: 1.0, 4: 1.0, 0: 1.0, 16: 1.0}


def test_jensen_shannon_in_bits() -> None:
    assert js_bits(np.array([1.0, 0.0]), np.array([0.0, 5.0])) == pytest.approx(1.0)
    assert js_bits(np.array([2.0, 2.0]), np.array([7.0, 7.0])) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    # (KL(p|m) + KL(q|m)) / 2 = (1/2 log2(2/3) + 1/2 log2(2) + log2(4/3)) / 2
    expected = (0.5 * math.log2(2 / 3) + 0.5 + math.log2(4 / 3)) / 2
    assert js_bits(np.array([1.0, 1.0]), np.array([3.0, 0.0])) == pytest.approx(expected)
    assert expected == pytest.approx(0.3112781)
    with pytest.raises(ValueError, match="empty histogram"):
        js_bits(np.zeros(2), np.array([1.0, 0.0]))


def test_style_distance_per_histogram_and_mean() -> None:
    a = Histograms.of([line([0, 1], [1, 1], [60, 62], tonic=0)])  # C D: +2; two 1-beat notes
    b = Histograms.of([line([0, 1], [0.5, 0.5], [60, 62], tonic=0)])  # the same, half beats
    d = style_distance(a, b)
    assert (d.pitch_class, d.interval) == (pytest.approx(0.0), pytest.approx(0.0))
    assert d.length == pytest.approx(1.0)
    assert d.mean == pytest.approx(1 / 3)
    both = a + b
    assert bins(both.length) == {8: 2.0, 6: 2.0} and bins(both.pitch_class) == {0: 2.0, 2: 2.0}


def test_a_work_is_read_voice_by_voice_in_its_own_key() -> None:
    # G major: the soprano G A B G, the bass G D G (one voice each), G the tonic.
    work = Work(id="w", collection="c", split="test", bpm=100.0, bar_beats=4.0, key=None,
                onset=np.array([0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0]),
                duration=np.array([1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 4.0]),
                pitch=np.array([67, 43, 69, 71, 50, 67, 43], dtype=np.int16),
                velocity=np.full(7, 80, dtype=np.int16),
                voice=np.array([0, 1, 0, 0, 1, 0, 1], dtype=np.int16))
    soprano, bass = work_lines(work)
    assert soprano.tonic == bass.tonic == 7
    assert soprano.pitch.tolist() == [67, 69, 71, 67] and bass.pitch.tolist() == [43, 50, 43]
    h = Histograms.of([soprano, bass])
    assert bins(h.pitch_class) == {0: 4.0, 2: 1.0, 4: 1.0, 7: 1.0}
    assert bins(h.interval) == {15: 2.0, 9: 1.0, 20: 1.0, 6: 1.0}  # +2 +2 -4; +7 -7


def test_the_agent_line_is_in_beats_and_in_the_players_key() -> None:
    players = [Note(0.0, 2.0, 62, "melody"), Note(0.0, 2.0, 50, "bass"),
               Note(2.0, 3.0, 66, "melody"), Note(3.0, 4.0, 69, "melody")]  # D major
    agent = [Note(4.0, 4.25, 74, "solo"), Note(4.25, 5.0, 73, "solo")]
    ln = played_line(agent, beat_s=0.5, around=players)
    assert ln.tonic == 2
    assert ln.onset.tolist() == [8.0, 8.5] and ln.duration.tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match="longer than 0 s"):
        played_line(agent, 0.0, players)
