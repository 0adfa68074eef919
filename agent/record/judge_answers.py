"""The judge's figures for the agent's answers (its notes of part "answer"), with hindsight.

The players' phrases are their notes split at silences longer than a beat; a rest is a silence of
two beats or more between their notes (the silenced phrases of a call-and-response rehearsal).
An answer is a run of the agent's answer notes: a new one starts after more than a beat without
them, or when a player came in between. Its call is the players' phrase that started last before
it. Melodies are compared by their top line (the highest note of each onset within 40 ms) in
scale steps of the key (agent.record.judge.scale_step), so "the motif a third up" is the motif.

Baseline (c), the call echoed a diatonic third up, is made here: in each rest, the top line of
the phrase before it, two scale steps up, its rhythm kept, from the first strong beat after the
call's end, stopping when the players come back.

Baseline (d), random in-key notes in time kept, is made here too: baseline (b)'s random scale
notes on the 8th grid, but in the rests only, and on the grid a listener keeps when the players
stop: the last beat before the rest continued at its tempo. The true grid of a rest is where the
resting players' own beat wandered, which only hindsight knows; (d) is the best any answer can do
on the beat without it, so it shows how much of the target the material allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.model.originality import join_lines, longest_shared_run
from agent.record.judge import (
    ON_GRID_S,
    SOUNDING_TOLERANCE_S,
    Grid,
    Key,
    Note,
    Window,
    register_scale,
    scale_step,
    step_pitch,
    triad_share,
)

CHORD_S = 0.040  # onsets this close are one moment: the top line keeps its highest note
PHRASE_GAP_BEATS = 1.0  # a silence longer than this ends a phrase (and an answer)
REST_BEATS = 2.0  # a silence this long is a rest the agent may answer in
ECHO_STEPS = 2  # a diatonic third


@dataclass(frozen=True)
class Phrase:
    notes: tuple[Note, ...]  # every player's, in onset order

    @property
    def start(self) -> float:
        return self.notes[0].onset

    @property
    def end(self) -> float:
        return max(n.end for n in self.notes)


def top_line(notes: Sequence[Note]) -> list[Note]:
    """The highest note of each moment (onsets within 40 ms of the moment's first)."""
    out: list[Note] = []
    first = -np.inf
    for n in sorted(notes, key=lambda n: (n.onset, -n.pitch)):
        if n.onset - first > CHORD_S:
            first = n.onset
            out.append(n)
        elif n.pitch > out[-1].pitch:
            out[-1] = n
    return out


def phrases_of(players: Sequence[Note], grid: Grid) -> list[Phrase]:
    """The players' phrases: split where no player sounds for more than a beat."""
    out: list[list[Note]] = []
    sounding_until = -np.inf
    for n in sorted(players, key=lambda n: (n.onset, n.pitch)):
        if n.onset - sounding_until > PHRASE_GAP_BEATS * grid.beat_length_at(n.onset):
            out.append([])
        out[-1].append(n)
        sounding_until = max(sounding_until, n.end)
    return [Phrase(tuple(p)) for p in out]


def rests_of(players: Sequence[Note], grid: Grid) -> list[tuple[float, float]]:
    """(start, end) of every silence of the players of two beats or more between their notes."""
    phrases = phrases_of(players, grid)
    return [(a.end, b.start) for a, b in itertools.pairwise(phrases)
            if b.start - a.end >= REST_BEATS * grid.beat_length_at(a.end) - 1e-9]


def answers_of(notes: Sequence[Note], players: Sequence[Note], grid: Grid) -> list[list[Note]]:
    """The agent's answer notes grouped into answers (a gap of more than a beat, or a player
    onset in between, starts a new one)."""
    onsets = np.sort(np.array([n.onset for n in players], dtype=np.float64))
    out: list[list[Note]] = []
    sounding_until = -np.inf
    for n in sorted(notes, key=lambda n: (n.onset, n.pitch)):
        gap = n.onset - sounding_until > PHRASE_GAP_BEATS * grid.beat_length_at(n.onset)
        player_between = bool(out) and bool(
            ((onsets > out[-1][-1].onset) & (onsets < n.onset)).any())
        if not out or gap or player_between:
            out.append([])
        out[-1].append(n)
        sounding_until = max(sounding_until, n.end)
    return out


def patterns(line: Sequence[Note], key: Key) -> set[tuple[int, int]]:
    """The distinct 3-note patterns of a top line: pairs of consecutive scale-step intervals."""
    steps = [scale_step(n.pitch, key) for n in line]
    return {(b - a, c - b) for a, b, c in zip(steps, steps[1:], steps[2:], strict=False)}


def shared(answer: set[tuple[int, int]], phrase: set[tuple[int, int]]) -> float:
    return len(answer & phrase) / len(answer)


def first_strong_after(grid: Grid, t: float) -> float | None:
    later = grid.strong[grid.strong >= t]
    return float(later[0]) if len(later) else None


@dataclass(frozen=True)
class AnswerFigures:
    answers: int
    notes: int
    on_beat: float | None  # share of answer onsets within 25 ms of a felt beat; >= 0.45
    entry_within_beat: float | None  # first note within a beat of the first strong beat after
    entry_offset_beats_p50: float | None  # the call's end (signed, beats)
    call_share: float | None  # mean share of an answer's 3-note patterns found in its call
    other_share: float | None  # ... and in the piece's other phrases (mean over them)
    lift: float | None  # call_share - other_share; target >= 0.15
    triad_share: float | None  # answer note-time on the players' triad; target >= 0.55
    copy_from_call: int | None  # longest run of an answer's pitches found in its call; <= 12
    rests: int  # the players' rests of two beats or more
    rests_answered: float | None  # share of them with an answer note starting in them
    over_players: float | None = None  # share of answer onsets struck over a player's note


def answer_figures(notes: Sequence[Note], players: Sequence[Note], windows: Sequence[Window],
                   grid: Grid, key: Key) -> AnswerFigures:
    phrases = phrases_of(players, grid)
    rests = rests_of(players, grid)
    answers = answers_of(notes, players, grid)
    onsets = np.array([n.onset for n in notes], dtype=np.float64)
    on_beat = None
    if len(onsets):
        distance = np.abs(onsets[:, None] - grid.felt[None, :]).min(axis=1)
        on_beat = float((distance <= ON_GRID_S + 1e-9).mean())
    offsets: list[float] = []
    in_call: list[float] = []
    elsewhere: list[float] = []
    copies: list[int] = []
    phrase_lines = [top_line(p.notes) for p in phrases]
    phrase_patterns = [patterns(line, key) for line in phrase_lines]
    answered_calls: set[int] = set()
    for answer in answers:
        starts = [i for i, p in enumerate(phrases) if p.start < answer[0].onset]
        if not starts:
            continue
        call = starts[-1]
        strong = first_strong_after(grid, phrases[call].end)
        # The entry is the first answer note after the call: an answer that goes on after a
        # rest of its own (a new group here) does not come in again.
        if strong is not None and call not in answered_calls:
            offsets.append((answer[0].onset - strong) / grid.beat_length_at(strong))
        answered_calls.add(call)
        line = top_line(answer)
        if len(phrase_lines[call]) > 1:
            copies.append(longest_shared_run([n.pitch for n in line],
                                             join_lines([np.array([n.pitch for n in
                                                                   phrase_lines[call]])])))
        mine = patterns(line, key)
        others = [p for i, p in enumerate(phrase_patterns) if i != call]
        if mine and others:
            in_call.append(shared(mine, phrase_patterns[call]))
            elsewhere.append(float(np.mean([shared(mine, p) for p in others])))
    answered = [bool(((onsets >= a) & (onsets < b)).any()) for a, b in rests]
    return AnswerFigures(
        answers=len(answers), notes=len(notes), on_beat=on_beat,
        entry_within_beat=_mean([abs(o) <= 1.0 + 1e-9 for o in offsets]),
        entry_offset_beats_p50=float(np.median(offsets)) if offsets else None,
        call_share=_mean(in_call), other_share=_mean(elsewhere),
        lift=float(np.mean(in_call) - np.mean(elsewhere)) if in_call else None,
        triad_share=triad_share(notes, windows),
        copy_from_call=max(copies) if copies else None,
        rests=len(rests), rests_answered=_mean(answered),
        over_players=_mean(over_players(onsets, players).tolist()))


def over_players(onsets: np.ndarray, players: Sequence[Note]) -> np.ndarray:
    """Per onset, whether a player's note sounds then: struck before it (or within
    SOUNDING_TOLERANCE_S after) and ending more than ON_GRID_S after it (a call's last note,
    cut at the bar line an answer comes in on, is not played over)."""
    starts = np.array([n.onset for n in players], dtype=np.float64)
    ends = np.array([n.end for n in players], dtype=np.float64)
    t = onsets[:, None]
    sounding = (starts[None, :] - SOUNDING_TOLERANCE_S <= t) & (t < ends[None, :] - ON_GRID_S)
    return np.asarray(sounding.any(axis=1), dtype=bool)


def _mean(values: Sequence[float] | Sequence[bool]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def call_echo(players: Sequence[Note], grid: Grid, key: Key) -> list[Note]:
    """Baseline (c): in each rest, the call's top line a diatonic third up, its rhythm kept,
    from the first strong beat after the call's end, cut when the players come back."""
    phrases = phrases_of(players, grid)
    out: list[Note] = []
    for call, after in itertools.pairwise(phrases):
        if after.start - call.end < REST_BEATS * grid.beat_length_at(call.end) - 1e-9:
            continue
        start = first_strong_after(grid, call.end)
        if start is None:
            continue
        for n in top_line(call.notes):
            onset = start + n.onset - call.start
            if onset >= after.start:
                break
            out.append(Note(onset, min(onset + n.end - n.onset, after.start),
                            step_pitch(scale_step(n.pitch, key) + ECHO_STEPS, key), "call-echo"))
    return out


def kept_time_in_rests(players: Sequence[Note], grid: Grid, key: Key,
                       seed: int) -> list[Note]:
    """Baseline (d): in each rest, one random scale note of the comp register on every 8th of
    the last beat before the rest continued at a steady tempo (that beat's length), an 8th long
    (seeded)."""
    pitches = register_scale(key)
    rng = np.random.default_rng(seed)
    out: list[Note] = []
    for start, end in rests_of(players, grid):
        last = int(np.searchsorted(grid.beats, start + ON_GRID_S, side="right")) - 1
        if last < 1:
            continue
        eighth = (grid.beats[last] - grid.beats[last - 1]) / 2
        first = int(np.ceil((start - ON_GRID_S - grid.beats[last]) / eighth))
        points = grid.beats[last] + eighth * np.arange(first, first + int((end - start) / eighth)
                                                        + 2)
        points = points[(points >= start - ON_GRID_S) & (points < end)]
        out.extend(Note(float(t), float(t + eighth), int(p), "kept-time")
                   for t, p in zip(points, rng.choice(pitches, size=len(points)), strict=True))
    return out


def in_rests(notes: Sequence[Note], players: Sequence[Note], grid: Grid) -> list[Note]:
    """The notes starting in the players' rests (a comp baseline's notes judged as answers)."""
    rests = rests_of(players, grid)
    return [n for n in notes if any(a <= n.onset < b for a, b in rests)]
