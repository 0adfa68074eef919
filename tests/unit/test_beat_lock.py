"""Beat lock on exact numbers: start on the grid, later onsets drawn part of the way to it."""

from __future__ import annotations

from agent.events import PlannedNote
from agent.policy.beat_lock import lock_to_grid

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


def test_a_compound_beat_locks_to_its_thirds() -> None:
    # A dotted-quarter beat of 750 ms: its eighths every 250 ms; a half beat (375) is no point.
    locked = lock_to_grid(plan(1000, 1300, 1490), 0, 750 * MS, 1.0, division=3)
    assert starts(locked) == [1000.0, 1250.0, 1500.0]


def test_entry_on_the_strong_beat_after_the_call() -> None:
    from agent.policy.beat_lock import entry_point
    beat, bar_half = 500 * MS, 1000 * MS  # strong beats every 2 beats from 0
    # The call ended at 2.1 s; the agent can sound from 2.3 s: the strong beat at 3 s.
    assert entry_point(2300 * MS, 2100 * MS, 0, bar_half, 0, beat) == 3000 * MS
    # It can sound only from 3.2 s: the beat at 3.5 s, within a beat of that strong beat.
    assert entry_point(3200 * MS, 2100 * MS, 0, bar_half, 0, beat) == 3500 * MS
    # From 3.6 s: 4 s, exactly a beat after the strong beat, still within a beat of it.
    assert entry_point(3600 * MS, 2100 * MS, 0, bar_half, 0, beat) == 4000 * MS
    # From 4.1 s the beats it can reach are more than a beat late: the next strong beat.
    assert entry_point(4100 * MS, 2100 * MS, 0, bar_half, 0, beat) == 5000 * MS


def test_phase_is_respected() -> None:
    assert starts(lock_to_grid(plan(1000), 30 * MS, 500 * MS, 0.8)) == [1030.0]


# -- latest_ns: a pickup when the grid point is too late ----------------------------------------
# Beat every 500 ms from 0: half beats every 250 ms, sixteenths every 125 ms. The plan may start
# at 1,010: its half-beat grid point is 1,250 (a shift of +240 for the whole phrase).


def test_first_note_is_a_pickup_on_the_sixteenth_when_the_half_beat_is_too_late() -> None:
    locked = lock_to_grid(plan(1010, 1270, 1490, 1800), 0, 500 * MS, 0.8, latest_ns=1200 * MS)
    # The first note on the sixteenth at or after 1,010: 1,125; the rest as without latest_ns.
    assert starts(locked) == [1125.0, 1502.0, 1746.0, 2008.0]
    assert [n.pitch for n in locked] == [60, 61, 62, 63]
    quantised = lock_to_grid(plan(1010, 1270, 1490), 0, 500 * MS, 1.0, latest_ns=1200 * MS)
    assert starts(quantised) == [1125.0, 1500.0, 1750.0]


def test_the_pickup_may_land_exactly_on_latest() -> None:
    locked = lock_to_grid(plan(1010, 1270), 0, 500 * MS, 1.0, latest_ns=1125 * MS)
    assert starts(locked) == [1125.0, 1500.0]


def test_first_note_stays_put_when_even_the_sixteenth_is_too_late() -> None:
    locked = lock_to_grid(plan(1010, 1270, 1490, 1800), 0, 500 * MS, 0.8, latest_ns=1100 * MS)
    assert starts(locked) == [1010.0, 1502.0, 1746.0, 2008.0]  # the rest keeps the +240 shift
    # Just before a half beat, the next sixteenth is that half beat: too late as well.
    locked = lock_to_grid(plan(1200, 1400), 0, 500 * MS, 1.0, latest_ns=1220 * MS)
    assert starts(locked) == [1200.0, 1500.0]  # 1,400 + 50 -> 1,500


def test_a_half_beat_at_latest_is_not_too_late() -> None:
    locked = lock_to_grid(plan(1010, 1270), 0, 500 * MS, 0.8, latest_ns=1250 * MS)
    assert starts(locked) == [1250.0, 1502.0]
    locked = lock_to_grid(plan(1010, 1270), 0, 500 * MS, 0.8, latest_ns=5000 * MS)
    assert starts(locked) == [1250.0, 1502.0]


def test_a_plan_already_on_the_grid_is_not_moved_by_latest() -> None:
    locked = lock_to_grid(plan(1000, 1250), 0, 500 * MS, 1.0, latest_ns=900 * MS)
    assert starts(locked) == [1000.0, 1250.0]


def test_the_pickup_grid_follows_the_phase() -> None:
    # Phase 30: half beats at ..., 1,030, 1,280; sixteenths at 1,155. The plan starts at 1,100.
    locked = lock_to_grid(plan(1100, 1300), 30 * MS, 500 * MS, 1.0, latest_ns=1200 * MS)
    assert starts(locked) == [1155.0, 1530.0]  # 1,300 + 180 = 1,480 -> 1,530


def test_latest_changes_nothing_at_zero_strength() -> None:
    original = plan(1010, 1270)
    assert lock_to_grid(original, 0, 500 * MS, 0.0, latest_ns=1100 * MS) == original
