"""Beat lock: planned onsets drawn softly onto the beat grid, keeping some micro-timing.

With a tempo known, an answer starts on the grid (the first half-beat at or after the earliest
moment it may start; if that is later than `latest_ns`, the first note comes as a pickup on
the sixteenth before, or where it was planned), and every later onset moves `strength` of the
way to its nearest half-beat: 1.0 quantises, 0.0 leaves the plan alone. The order of notes
never changes. Pure.
"""

from __future__ import annotations

from dataclasses import replace

from agent.events import PlannedNote

SUBDIVISION = 2  # half beats: quavers at a quarter-note beat


def grid_point_at_or_after(t_ns: int, phase_ns: int, step_ns: float) -> int:
    steps = -(-(t_ns - phase_ns) // step_ns)  # ceiling division
    return round(phase_ns + steps * step_ns)


def nearest_grid_point(t_ns: int, phase_ns: int, step_ns: float) -> int:
    return round(phase_ns + round((t_ns - phase_ns) / step_ns) * step_ns)


def lock_to_grid(plan: list[PlannedNote], phase_ns: int, period_ns: int,
                 strength: float, latest_ns: int | None = None) -> list[PlannedNote]:
    """`latest_ns`: the first note must start by then (a response within a beat of its call)."""
    if not plan or strength <= 0:
        return plan
    step = period_ns / SUBDIVISION
    on_grid = grid_point_at_or_after(plan[0].start_ns, phase_ns, step)
    shift = on_grid - plan[0].start_ns  # the phrase moves onto the grid as a whole...
    start = on_grid
    if latest_ns is not None and on_grid > latest_ns:
        # ...but its first note comes early, as a pickup, when the grid point is too late.
        start = grid_point_at_or_after(plan[0].start_ns, phase_ns, step / 2)
        if start > latest_ns:
            start = plan[0].start_ns
    out = [replace(plan[0], start_ns=start)]
    for note in plan[1:]:
        t = note.start_ns + shift
        grid = nearest_grid_point(t, phase_ns, step)
        locked = round(grid + (t - grid) * (1.0 - strength))
        out.append(replace(note, start_ns=max(locked, out[-1].start_ns)))
    return out
