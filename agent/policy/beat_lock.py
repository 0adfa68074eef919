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
                 strength: float, latest_ns: int | None = None,
                 division: int = SUBDIVISION) -> list[PlannedNote]:
    """`latest_ns`: the first note must start by then (a response within a beat of its call).
    `division`: grid points per beat (3 in a compound metre: its eighths). At full strength
    no two notes share a grid point: a note that would land on its predecessor's point takes
    the next one (a run of sixteenths becomes eighths rather than a chord)."""
    if not plan or strength <= 0:
        return plan
    step = period_ns / division
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
        if strength >= 1.0 and locked <= out[-1].start_ns:
            locked = round(out[-1].start_ns + step)
        out.append(replace(note, start_ns=max(locked, out[-1].start_ns)))
    return out


def entry_point(earliest_ns: int, after_ns: int, strong_ns: int, strong_every_ns: int,
                phase_ns: int, period_ns: int) -> int:
    """Where an answer comes in, as a player would: on the first strong beat (a half bar's
    start: beats 1 and 3 of a 4/4 bar, the downbeat of a 3/4 one) after the call's end
    (`after_ns`), if it can still be reached (not before `earliest_ns`, when the agent can
    first sound); else on the first beat it can reach, as long as that is within a beat of
    that strong beat; else on the next strong beat. `strong_ns` is any strong beat of the grid
    and `strong_every_ns` their spacing."""
    first_strong = grid_point_at_or_after(after_ns, strong_ns, strong_every_ns)
    if first_strong >= earliest_ns:
        return first_strong
    beat = grid_point_at_or_after(earliest_ns, phase_ns, period_ns)
    if beat - first_strong <= period_ns:
        return beat
    return grid_point_at_or_after(earliest_ns, strong_ns, strong_every_ns)
