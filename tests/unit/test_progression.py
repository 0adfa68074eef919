"""The chord expected next (listen/progression.py) and the bar's phase (listen/metre.py)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.listen.metre import MIN_VOTES, BarPhase
from agent.listen.progression import (
    START,
    TRIADS,
    HalfBar,
    Progression,
    absolute_triad,
    load_transitions,
    relative_triad,
    triad_name,
    triad_of,
    weights_in,
)

BEAT = 500_000_000  # 120 BPM
C, F, G, AM = 0, 5, 7, 12 + 9  # triad indices: major roots, then minor
CHORD_NOTES = {C: (48, 64, 67), F: (53, 65, 69), G: (43, 62, 67), AM: (45, 60, 64)}


def pcs(*pitches: int) -> np.ndarray:
    w = np.zeros(12)
    for p in pitches:
        w[p % 12] += 1.0
    return w


def test_triads_and_names() -> None:
    assert TRIADS[C] == frozenset({0, 4, 7}) and triad_name(C) == "C"
    assert TRIADS[AM] == frozenset({9, 0, 4}) and triad_name(AM) == "Am"
    assert triad_name(24 + 11) == "Bdim"
    assert triad_of(pcs(60, 64, 67)) == C
    assert triad_of(pcs(57, 60, 64)) == AM
    assert triad_of(np.zeros(12)) is None
    # C and E alone fit C major and A minor equally: the bass decides, else major.
    assert triad_of(pcs(60, 64), bass=57) == AM
    assert triad_of(pcs(60, 64)) == C
    # A bare fifth A-E: A minor in a key that has C, A major in one that has C#.
    assert triad_of(pcs(57, 64), scale=frozenset({9, 11, 0, 2, 4, 5, 7})) == AM
    assert triad_of(pcs(57, 64), scale=frozenset({9, 11, 1, 2, 4, 6, 8})) == 9


def test_relative_and_absolute_triads_round_trip() -> None:
    assert relative_triad(G, 7) == C  # G major in G is the tonic
    assert relative_triad(12 + 4, 7) == 12 + 9  # E minor in G is vi
    for t in range(36):
        assert absolute_triad(relative_triad(t, 5), 5) == t


def test_weights_in_clips_to_the_window() -> None:
    w = weights_in([(60, 0, 2 * BEAT), (64, BEAT, 3 * BEAT)], BEAT, 2 * BEAT)
    assert w[0] == pytest.approx(0.5) and w[4] == pytest.approx(0.5)
    assert w.sum() == pytest.approx(1.0)


def test_the_learned_table_is_a_distribution_per_row() -> None:
    table = load_transitions()
    for mode in ("major", "minor"):
        for place in table.logp[mode]:
            assert place.shape == (37, 36)
            assert np.allclose(np.exp(place).sum(axis=1), 1.0)
    major_downbeat = table.logp["major"][0]
    # After the dominant (G in C), the tonic is more likely than any other triad.
    assert int(np.argmax(major_downbeat[G])) == C
    assert int(np.argmax(major_downbeat[START])) == C


def half(index: int) -> HalfBar:
    return HalfBar(index, index * 2 * BEAT, 2 * BEAT, index % 2 == 0, BEAT)


def play(prog: Progression, index: int, triad: int) -> None:
    """The players outline `triad` over the whole half bar."""
    start = index * 2 * BEAT
    for p in CHORD_NOTES[triad]:
        prog.note(p, start, start + 2 * BEAT - 1)


def test_what_is_heard_in_the_half_bar_decides_against_the_prior() -> None:
    prog = Progression()
    start = 10 * 2 * BEAT
    prog.note(62, start, start + BEAT)  # D and B over a beat: G major, not the tonic
    prog.note(71, start, start + BEAT)
    exp = prog.expect(half(10), start + BEAT, (0, "major"), [(43, start)])
    assert exp is not None and exp.name == "G" and exp.source == "heard"
    assert exp.tones[0][0] == 7  # the root is the surest tone
    assert all(0 <= chance <= 1 for _pc, chance in exp.tones)


def test_with_nothing_heard_the_prior_expects_the_tonic() -> None:
    exp = Progression().expect(half(0), 0, (2, "major"), [])
    assert exp is not None and exp.name == "D" and exp.source == "prior"
    exp = Progression().expect(half(0), 0, (9, "minor"), [])
    assert exp is not None and exp.name == "Am"


def test_without_a_key_only_what_is_heard() -> None:
    prog = Progression()
    assert prog.expect(half(0), 0, None, []) is None
    exp = prog.expect(half(0), BEAT, None, [(57, 0), (60, 0), (64, 0)])
    assert exp is not None and exp.name == "Am"


def test_the_form_is_learned_as_it_goes_round() -> None:
    """A four-bar progression that no prior would guess (C Am F G ... with F on a downbeat
    after Am), played twice: in the third pass, before anything of a half bar is heard, its
    chord is expected from the matching half bar of the pass before."""
    form = [C, C, AM, AM, F, F, G, G]  # half bars of four bars
    prog = Progression()
    for i in range(16):  # two passes, each half bar asked about as it starts
        prog.expect(half(i), half(i).start_ns, (0, "major"), [])
        play(prog, i, form[i % 8])
    for i in range(16, 24):
        exp = prog.expect(half(i), half(i).start_ns, (0, "major"), [])
        assert exp is not None and exp.triad == form[i % 8], i
        assert prog.heard(i - 1) == form[(i - 1) % 8]
        play(prog, i, form[i % 8])
    assert prog.form_expects(24) == form[0]


def test_a_chart_is_followed_until_the_players_leave_it() -> None:
    prog = Progression()
    for i in range(2):
        exp = prog.expect(half(i), half(i).start_ns, (0, "major"), [], chart=F)
        assert exp is not None and exp.source == "chart" and exp.name == "F"
        play(prog, i, G)  # they play G instead
    # Two half bars finished off the chart: the comp listens instead.
    exp = prog.expect(half(2), half(2).start_ns + BEAT, (0, "major"), [], chart=F)
    assert not prog.chart_kept
    assert exp is not None and exp.source != "chart"
    play(prog, 2, F)
    exp = prog.expect(half(3), half(3).start_ns, (0, "major"), [], chart=F)
    assert prog.chart_kept and exp is not None and exp.source == "chart"


# -- the bar's phase ----------------------------------------------------------------------

def test_the_downbeat_is_where_the_accents_fall() -> None:
    phase = BarPhase(4)
    for bar in range(4):
        for beat in range(4):
            n = 10 + 4 * bar + beat
            loud = n % 4 == 3
            phase.onset(n + 0.01, 100 if loud else 70, 60)
            if bar == 0 and beat == 0:
                assert phase.downbeat() is None  # not enough heard yet
    assert phase.downbeat() == 3


def test_off_beat_notes_do_not_vote_and_long_notes_do() -> None:
    phase = BarPhase(3)
    for i in range(MIN_VOTES):
        phase.onset(3 * i + 1.5, 120, 40)  # loud, low, but between beats
    assert phase.downbeat() is None
    for i in range(MIN_VOTES):
        phase.onset(3 * i + 2, 80, 60)
        phase.ended(3 * i + 2, 2.0)  # held two beats: an agogic accent
        phase.onset(3 * i, 80, 60)
    assert phase.downbeat() == 2


def test_a_one_beat_bar_is_always_on_the_downbeat() -> None:
    assert BarPhase(1).downbeat() == 0


def test_the_bars_count_the_beats_that_pass_while_no_grid_is_heard() -> None:
    """Ticks in a rest come while the tracker's grid has faded: the beats they stand for are
    counted at the next tick with a grid, so the bar's phase (and a chord chart) survive."""
    from agent.listen.bars import Bars
    from agent.listen.pulse import Pulse
    pulse = Pulse(True, False)
    bars = Bars(pulse, 4)
    for i in range(16):  # four bars of quarter notes at 120 BPM
        pulse.on_onset(i * BEAT, 80)
    for i in range(4, 16):
        bars.tick(i * BEAT)
    assert bars.number == 15 - 4
    for i in range(16, 40):  # a long rest, ticks still coming (a key held)
        bars.tick(i * BEAT)
    assert pulse.grid(39 * BEAT) is None  # the grid has faded
    for i in range(40, 48):
        pulse.on_onset(i * BEAT, 80)
    bars.tick(47 * BEAT)
    assert bars.number == 47 - 4
