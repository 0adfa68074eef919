"""Beat lock on exact numbers: start on the grid, later onsets drawn part of the way to it."""

from __future__ import annotations

from agent.events import PlannedNote
from agent.policy.beat_lock import (
    call_goes_on,
    closes_there,
    lock_to_grid,
    next_closing,
)

MS = 1_000_000


def plan(*starts_ms: int) -> list[PlannedNote]:
    return [PlannedNote(t * MS, 60 + i, 80, 100 * MS) for i, t in enumerate(starts_ms)]


def starts(notes: list[PlannedNote]) -> list[float]:
    return [n.start_ns / MS for n in notes]


def test_start_on_the_next_half_beat_and_draw_the_rest_toward_the_grid() -> None:
    # Beat every 500 ms from 0: half beats every 250 ms. The answer may start at 1,010 ms.
    locked = lock_to_grid(plan(1010, 1270, 1490, 1800), 0, 500 * MS, strength=0.8)
    # Shifted by +240 to start at 1,250; then 1,510 -> 1,502, 1,730 -> 1,746, 2,040 -> 2,008.
    assert starts(locked) == [1250.0, 1502.0, 1746.0, 2008.0]
    assert [n.pitch for n in locked] == [60, 61, 62, 63]  # nothing else changes


def test_full_strength_quantises_and_zero_leaves_the_plan() -> None:
    original = plan(1010, 1270, 1490)
    assert starts(lock_to_grid(original, 0, 500 * MS, 1.0)) == [1250.0, 1500.0, 1750.0]
    assert lock_to_grid(original, 0, 500 * MS, 0.0) == original


def test_order_is_kept_and_no_two_notes_share_a_grid_point() -> None:
    # 1,130 is nearest to 1,250 and 1,120 to 1,000: the third note may not come first, nor
    # sound with the second (a chord the line never had): it takes the next eighth.
    locked = lock_to_grid(plan(1000, 1130, 1120), 0, 500 * MS, 1.0)
    assert starts(locked) == [1000.0, 1250.0, 1500.0]
    # Partly locked, two notes may still meet (their micro-timing is kept).
    assert starts(lock_to_grid(plan(1000, 1130, 1120), 0, 500 * MS, 0.5)) == [
        1000.0, 1190.0, 1190.0]


def test_a_chord_planned_together_stays_a_chord() -> None:
    # Three notes planned at 1,010 ms (a chord the model wrote), then a run: the chord comes on
    # one point, the run's notes each on their own.
    locked = lock_to_grid(plan(1010, 1010, 1020, 1270, 1400), 0, 500 * MS, 1.0)
    assert starts(locked) == [1250.0, 1250.0, 1250.0, 1500.0, 1750.0]
    # A pickup's chord stays with it when the rest moves onto the beats.
    # The chord must start by 1,200 ms: the eighth at 1,250 is too late, it comes in on the
    # sixteenth at 1,125 (a pickup), and the next note onto the beat at 1,500.
    pickup = lock_to_grid(plan(1010, 1010, 1260), 0, 500 * MS, 1.0, latest_ns=1200 * MS)
    assert starts(pickup) == [1125.0, 1125.0, 1500.0]


def test_a_compound_beat_locks_to_its_thirds() -> None:
    # A dotted-quarter beat of 750 ms: its eighths every 250 ms; a half beat (375) is no point.
    locked = lock_to_grid(plan(1000, 1300, 1490), 0, 750 * MS, 1.0, division=3)
    assert starts(locked) == [1000.0, 1250.0, 1500.0]


def test_entry_on_the_strong_beat_after_the_call() -> None:
    from agent.policy.beat_lock import entry_point
    beat, bar_half = 500 * MS, 1000 * MS  # strong beats every 2 beats from 0
    # The call ended at 2.1 s; the agent can sound from 2.8 s: the strong beat at 3 s is
    # within half a beat: it waits for it.
    assert entry_point(2800 * MS, 2100 * MS, 0, bar_half, 0, beat) == 3000 * MS
    assert entry_point(3000 * MS, 2100 * MS, 0, bar_half, 0, beat) == 3000 * MS
    # From 2.6 s the strong beat is further: it comes in at once, on the next eighth.
    assert entry_point(2600 * MS, 2100 * MS, 0, bar_half, 0, beat) == 2750 * MS
    # The strong beat has gone by: the next eighth, never a wait for the next strong beat.
    assert entry_point(3200 * MS, 2100 * MS, 0, bar_half, 0, beat) == 3250 * MS
    assert entry_point(4100 * MS, 2100 * MS, 0, bar_half, 0, beat) == 4250 * MS
    # In 6/8 (thirds of a 750 ms beat, every beat strong) the eighths are 250 ms apart.
    assert entry_point(2300 * MS, 2100 * MS, 0, 750 * MS, 0, 750 * MS, 3) == 2500 * MS


def test_a_phrase_ending_at_a_phrase_boundary_is_expected() -> None:
    from agent.policy.beat_lock import phrase_boundary_check
    beat, bar, gap = 500 * MS, 2000 * MS, 150 * MS

    def check(silent: int, strong: int, start: int | None, bar_line: bool = True) -> int | None:
        return phrase_boundary_check(silent * MS, strong * MS, bar_line, bar, beat,
                                     None if start is None else start * MS, gap)

    # A phrase from 1 s (a bar line) whose last note ends at 8.9 s, just before the bar line at
    # 9 s that closes its fourth bar: over 0.15 beat after that bar line, if nobody plays.
    assert check(8900, 9000, 1000) == 9075 * MS
    assert check(8990, 9000, 1000) == 9140 * MS  # ...at least the shortest gap after it
    # A phrase that began with a pickup (half a bar before a bar line): 4 bars and a half.
    assert check(8900, 9000, 500) == 9075 * MS
    # Begun on a bar line, 3 bars (or 1) is no phrase boundary; nor is a silence more than
    # half a beat before the bar line, or a phrase not known.
    assert check(8900, 9000, 3000) is None
    assert check(6900, 7000, 1000) is None
    assert check(8700, 9000, 1000) is None
    assert check(8900, 9000, None) is None
    # A mid-bar strong beat (beat 3) closes a phrase of two bars or more, however long.
    assert check(5900, 6000, 1000, bar_line=False) == 6075 * MS
    assert check(3900, 4000, 1000, bar_line=False) is None  # a bar and a half


def test_a_point_of_a_fractional_grid_stays_where_it_is() -> None:
    from agent.policy.beat_lock import grid_point_at_or_after
    # A beat of 499,313,825 ns: its eighths are fractional; a point computed once (and rounded
    # to whole ns) is on the grid when the lock sees it again, not an eighth later.
    phase, period = 6_434_083_409, 499_313_825
    point = grid_point_at_or_after(6_600_000_000, phase, period / 2)
    assert grid_point_at_or_after(point, phase, period / 2) == point
    line = [PlannedNote(point, 60, 80, 100 * MS), PlannedNote(point + period, 62, 80, 100 * MS)]
    assert lock_to_grid(line, phase, period, 1.0)[0].start_ns == point


def test_a_line_that_comes_in_on_the_beat_keeps_its_syncopations() -> None:
    line = [PlannedNote(t * MS, 60, 80, 100 * MS) for t in (0, 1500, 2500, 3500)]
    assert starts(lock_to_grid(line, 0, 1000 * MS, 1.0)) == [0.0, 1500.0, 2500.0, 3500.0]



def test_the_next_closing_comes_a_steady_period_of_whole_bars_after_the_last() -> None:
    assert next_closing([8.0, 24.0], 4) is None  # one period: no form yet
    assert next_closing([8.0, 24.0, 40.0], 4) == 56.0
    assert next_closing([8.0, 24.0, 40.25], 4) == 56.375  # alike to half a beat
    assert next_closing([8.0, 24.0, 40.75], 4) is None  # not alike
    assert next_closing([0.0, 8.0, 24.0, 40.0], 4) == 56.0  # the last three count
    assert next_closing([6.0, 23.0, 40.0], 4) is None  # 17 beats: not whole bars of 4/4
    assert next_closing([6.0, 23.0, 40.0], 17) == 57.0
    assert next_closing([8.0, 9.0, 10.0], 4) is None  # under a bar is no form
    assert closes_there(56.0, 55.6) and not closes_there(56.0, 55.4)


def test_a_rest_within_a_bar_before_the_expected_closing_is_within_the_call() -> None:
    assert call_goes_on(56.0, 54.0, 4)  # two beats before it: the call goes on
    assert call_goes_on(56.0, 52.0, 4)
    assert not call_goes_on(56.0, 51.5, 4)  # more than a bar before: a phrase end
    assert not call_goes_on(56.0, 55.7, 4)  # at it: the call's end
