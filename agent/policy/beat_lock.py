"""Beat lock: planned onsets drawn softly onto the beat grid, keeping some micro-timing.

With a tempo known, an answer starts on the grid (the first half-beat at or after the earliest
moment it may start; if that is later than `latest_ns`, the first note comes as a pickup on
the sixteenth before, or where it was planned), and every later onset moves `strength` of the
way to its nearest half-beat: 1.0 quantises, 0.0 leaves the plan alone. The order of notes
never changes. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise

from agent.events import PlannedNote

SUBDIVISION = 2  # half beats: quavers at a quarter-note beat
ENTRY_WAIT = 0.5  # beats: how long an answer may wait for the strong beat after the call
BOUNDARY_WAIT = 0.15  # beats after a phrase boundary before its silence counts as a phrase end
# Notes planned this close are one chord (the model writes a chord's notes with dt 0; a
# player's spread chord is under ~20 ms), never a run to spread onto the grid.
CHORD_SPREAD_NS = 15_000_000


def grid_point_at_or_after(t_ns: int, phase_ns: int, step_ns: float) -> int:
    # Ceiling division, with a nanosecond of slack: a point computed here (rounded to whole
    # ns from a fractional step) must count as on the grid when it comes back.
    steps = -(-(t_ns - phase_ns - 1) // step_ns)
    return round(phase_ns + steps * step_ns)


def nearest_grid_point(t_ns: int, phase_ns: int, step_ns: float) -> int:
    return round(phase_ns + round((t_ns - phase_ns) / step_ns) * step_ns)


def lock_to_grid(plan: list[PlannedNote], phase_ns: int, period_ns: int,
                 strength: float, latest_ns: int | None = None,
                 division: int = SUBDIVISION) -> list[PlannedNote]:
    """`latest_ns`: the first note must start by then (a response within a beat of its call).
    `division`: grid points per beat (3 in a compound metre: its eighths). At full strength
    no two notes share a grid point unless they were planned together (a chord, within
    CHORD_SPREAD_NS: it stays a chord): a note that would land on its predecessor's point
    takes the next one (a run of sixteenths becomes eighths rather than a chord)."""
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
    for before, note in pairwise(plan):
        if strength >= 1.0 and 0 <= note.start_ns - before.start_ns <= CHORD_SPREAD_NS:
            out.append(replace(note, start_ns=out[-1].start_ns))  # planned together
            continue
        t = note.start_ns + shift
        grid = nearest_grid_point(t, phase_ns, step)
        locked = round(grid + (t - grid) * (1.0 - strength))
        if strength >= 1.0 and locked <= out[-1].start_ns:
            locked = round(out[-1].start_ns + step)
        out.append(replace(note, start_ns=max(locked, out[-1].start_ns)))
    if strength >= 1.0 and len(out) > 1:
        out = _onto_the_beats(out, phase_ns, period_ns, division)
    return out


def _onto_the_beats(line: list[PlannedNote], phase_ns: int, period_ns: int,
                    division: int) -> list[PlannedNote]:
    """A quantised line whose first note came in off the beat (a pickup) keeps it there and
    moves the rest later by the eighths (0 to division - 1) that put most of its notes on
    beats: a phrase planned from its first note would otherwise be off the beat throughout."""
    step = period_ns / division
    if _on_a_beat(line[0].start_ns, phase_ns, period_ns):
        return line  # it came in on the beat: its rhythm (syncopations too) stays as it is

    rest = [n for n in line if n.start_ns != line[0].start_ns]  # not the first note's chord

    def on_beats(shift: int) -> int:
        return sum(_on_a_beat(round(n.start_ns + shift * step), phase_ns, period_ns)
                   for n in rest)

    best = max(range(division), key=lambda k: (on_beats(k), -k))
    if best == 0:
        return line
    return [n if n.start_ns == line[0].start_ns else  # the first note's chord stays with it
            replace(n, start_ns=round(n.start_ns + best * step)) for n in line]


def _on_a_beat(t_ns: int, phase_ns: int, period_ns: int) -> bool:
    return abs(t_ns - nearest_grid_point(t_ns, phase_ns, period_ns)) <= 2  # ns of rounding


def entry_point(earliest_ns: int, after_ns: int, strong_ns: int, strong_every_ns: int,
                phase_ns: int, period_ns: int, division: int = SUBDIVISION) -> int:
    """Where an answer comes in, as a player would, never before `earliest_ns` (when the agent
    can first sound): on the first strong beat (a half bar's start: beats 1 and 3 of a 4/4 bar,
    the downbeat of a 3/4 one) after the call's end (`after_ns`) when it comes within
    ENTRY_WAIT of a beat; else at once, on the first eighth (a pickup: the rest of the answer
    then keeps to the beats, see lock_to_grid). No player leaves a rest of beats after a call
    to wait for a strong beat. `strong_ns` is any strong beat of the grid and
    `strong_every_ns` their spacing."""
    first_strong = grid_point_at_or_after(after_ns, strong_ns, strong_every_ns)
    if earliest_ns <= first_strong <= earliest_ns + ENTRY_WAIT * period_ns:
        return first_strong
    return grid_point_at_or_after(earliest_ns, phase_ns, period_ns / division)


def phrase_boundary_check(silent_from_ns: int, strong_ns: int, bar_line: bool, bar_ns: int,
                          beat_ns: int, phrase_start_ns: int | None,
                          min_gap_ns: int) -> int | None:
    """When to decide that a phrase has ended if it ends at a phrase boundary, as a player
    expects it to: the silence began (`silent_from_ns`) within half a beat before the next
    strong beat (`strong_ns`), and that beat closes the phrase: a bar line closing a whole
    number of pairs of bars since the phrase began (2, 4, 6, 8 bars; a phrase that began with
    a pickup may count the pickup's bar or not), or a mid-bar strong beat (a hymn's line ends
    on beat 3) two bars or more after it began. Then the phrase is taken as over
    BOUNDARY_WAIT of a beat after that beat, if nobody has played by then: late enough for a
    player's late beat, early enough to come in on the next eighth. None when the silence is
    no such ending."""
    if phrase_start_ns is None or not 0 <= strong_ns - silent_from_ns <= beat_ns // 2:
        return None
    bars = (strong_ns - phrase_start_ns) / bar_ns
    if not bar_line:
        if bars < 2 - beat_ns / (2 * bar_ns):
            return None
    elif abs(bars - round(bars)) * bar_ns <= beat_ns / 2:  # the phrase began on a bar line
        if round(bars) < 2 or round(bars) % 2:
            return None
    elif bars < 1:
        # It began with a pickup: whether the pickup's bar counts is the tune's business
        # (a written pickup does not; a bar padded before it does): one of the two counts is
        # even, so any bar line from the first on may close it.
        return None
    return max(silent_from_ns + min_gap_ns, strong_ns + round(BOUNDARY_WAIT * beat_ns))




# The game of call and response, heard as a form: when the calls have ended on beats coming
# round at a steady period of whole bars (FORM_CALLS endings, alike to half a beat), the next call
# is expected to end one period after the last, and the answer is decided in time to come in on
# that beat, as a player who has caught the form does, instead of after hearing the silence
# (which puts it half a beat to a beat late). Endings, not lengths: a call may begin with a
# pickup or after a rest of its own, but it ends where the form says. Beats, not bar lines: the
# form holds even where the bar's phase is heard wrong (a 3/4 tune's downbeat from accents).
FORM_CALLS = 3
FORM_TOLERANCE_BEATS = 0.5


def next_closing(closings: Sequence[float], bar_beats: int) -> float | None:
    """The beat (numbered as the bars count them) the call playing is expected to end on,
    from the beats the last calls ended on; None until FORM_CALLS of them came round at a
    steady period of whole bars (a game played in bars: calls ending anywhere in the bar,
    as a hymn's lines with their held last notes do, are answered when they are heard to
    end, on the strong beat after)."""
    if len(closings) < FORM_CALLS:
        return None
    recent = list(closings)[-FORM_CALLS:]
    periods = [b - a for a, b in pairwise(recent)]
    period = sum(periods) / len(periods)
    bars = round(period / bar_beats)
    if max(periods) - min(periods) > FORM_TOLERANCE_BEATS or bars < 1 or \
            abs(period - bars * bar_beats) > FORM_TOLERANCE_BEATS:
        return None
    return recent[-1] + period


def closes_there(expected_beat: float, beat: float) -> bool:
    return abs(beat - expected_beat) <= FORM_TOLERANCE_BEATS


def call_goes_on(expected_beat: float, end_beat: float, bar_beats: int) -> bool:
    """A phrase that stops at `end_beat`, more than half a beat and at most a bar before the
    beat its call is expected to end on, is a rest within the call: a player who knows the
    form waits for its end (which is answered on, anticipated). Farther from it, the form may
    have changed: it is a phrase end like any other."""
    return FORM_TOLERANCE_BEATS < expected_beat - end_beat <= bar_beats
