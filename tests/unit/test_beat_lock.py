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


def test_order_is_kept_when_two_notes_fall_to_one_grid_point() -> None:
    # 1,130 is nearest to 1,250 and 1,120 to 1,000: the third note may not come first.
    locked = lock_to_grid(plan(1000, 1130, 1120), 0, 500 * MS, 1.0)
    assert starts(locked) == [1000.0, 1250.0, 1250.0]
    assert locked == sorted(locked, key=lambda n: n.start_ns)


def test_phase_is_respected() -> None:
    assert starts(lock_to_grid(plan(1000), 30 * MS, 500 * MS, 0.8)) == [1030.0]
