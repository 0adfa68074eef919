"""The independent judge (agent.record.judge*): exact figures on small constructed examples."""

from __future__ import annotations

import random

import numpy as np
import pytest

from agent.model.corpus import Work
from agent.policy.modes import RESPONSES
from agent.record.judge import (
    Key,
    Note,
    dissonant_share,
    estimate_key,
    grid_figures,
    grid_of,
    players_triads,
    random_in_key,
    scale_step,
    static_triad,
    triad_share,
)
from agent.record.judge_answers import (
    answer_figures,
    call_echo,
    kept_time_in_rests,
    over_players,
    rests_of,
    top_line,
)
from agent.record.judge_grid import beats_found, estimate_beats, estimate_grid
from agent.record.judge_log import RESPONSE_KINDS
from agent.record.rehearsal import LEAD_IN_BEATS, perform_timed

BEAT = 0.5  # 120 BPM
GRID = grid_of(np.arange(64) * BEAT, 4, 0)  # 4/4, the first bar at 0 s
C_MAJOR, F_MAJOR, G_MAJOR = (60, 64, 67), (65, 69, 72), (67, 71, 74)


def chords(*triads: tuple[int, ...], who: str = "piano") -> list[Note]:
    """One triad per half bar (two beats), from 0 s."""
    return [Note(i * 2 * BEAT, (i + 1) * 2 * BEAT, p, who)
            for i, t in enumerate(triads) for p in t]


def line(pitches: list[int], start: float, who: str = "melody") -> list[Note]:
    """One note a beat from `start`."""
    return [Note(start + i * BEAT, start + (i + 1) * BEAT, p, who) for i, p in enumerate(pitches)]


def test_the_players_triad_of_each_half_bar() -> None:
    windows = players_triads(chords(C_MAJOR, F_MAJOR, G_MAJOR), GRID)
    judged = [w.triad for w in windows if w.triad is not None]
    assert judged == [frozenset({0, 4, 7}), frozenset({5, 9, 0}), frozenset({7, 11, 2})]
    # A lone fifth C-G: major and minor tie; the lowest note as root, then major first.
    fifth = players_triads([Note(0, 1, 48, "bass"), Note(0, 1, 55, "bass")], GRID)
    assert next(w.triad for w in fifth if w.triad is not None) == frozenset({0, 4, 7})


def test_a_comp_on_the_players_triads_scores_one_and_a_semitone_off_zero() -> None:
    windows = players_triads(chords(C_MAJOR, F_MAJOR, G_MAJOR), GRID)
    on = chords(tuple(p - 12 for p in C_MAJOR), tuple(p - 12 for p in F_MAJOR),
                tuple(p - 12 for p in G_MAJOR), who="comp")
    off = [Note(n.onset, n.end, n.pitch + 1, "comp") for n in on]
    assert triad_share(on, windows) == 1.0
    assert triad_share(off, windows) == 0.0
    # Half the comp's time on the triad: an E held over a C and an F half bar.
    assert triad_share([Note(0.0, 2.0, 52, "comp")], windows) == 0.5


def test_dissonant_onsets_against_sounding_player_notes() -> None:
    players = [Note(0.0, 2.0, 60, "melody"), Note(1.0, 2.0, 66, "bass")]
    comp = [Note(0.0, 0.5, 61, "comp"),  # minor second with 60, attacked together: counts
            Note(0.5, 1.0, 64, "comp"),  # a third: fine
            Note(1.5, 2.0, 48, "comp"),  # an octave with 60, a tritone with 66
            Note(2.0, 2.5, 61, "comp")]  # nothing sounds any more (end is exclusive)
    assert dissonant_share(comp, players) == 0.5
    # The players against each other: 66 enters against the sounding 60, a tritone.
    assert dissonant_share(players, players, others_only=True) == 0.5


def test_a_comp_a_sixteenth_late_is_never_on_the_8th_grid() -> None:
    late = [Note(t + BEAT / 4, t + BEAT, 48, "comp") for t in grid_of(np.arange(120) * BEAT, 4,
                                                                      0).beats]
    figures = grid_figures(late, grid_of(np.arange(120) * BEAT, 4, 0))
    assert figures is not None
    assert figures.on_grid == 0.0
    assert figures.drift_ms_per_100_beats is not None
    assert abs(figures.drift_ms_per_100_beats) < 1e-6  # late, but by the same every time
    on = [Note(t + 0.020, t + BEAT, 48, "comp") for t in GRID.eighths()[:40]]
    assert grid_figures(on, GRID) == grid_figures(on, GRID)
    assert grid_figures(on, GRID).on_grid == 1.0  # type: ignore[union-attr]
    assert grid_figures(on, GRID).drift_ms_per_100_beats is None  # type: ignore[union-attr]


def test_a_comp_following_a_strain_the_players_shift_by_a_sixteenth_is_in_time_with_them() -> None:
    """Beats 0-39 played on the written 8th grid, beats 40-79 a sixteenth late (a strain the
    source shifted): a comp striking with the players is off the written grid in the second
    half, which the figure where the players keep the grid leaves out."""
    grid = grid_of(np.arange(120) * BEAT, 4, 0)
    eighths = grid.eighths()[:160]
    players = [Note(t + (BEAT / 4 if t >= 40 * BEAT else 0.0), t + BEAT / 2, 72, "fiddle")
               for t in eighths]
    with_them = [Note(n.onset, n.end, 48, "comp") for n in players]
    figures = grid_figures(with_them, grid, players)
    assert figures is not None
    assert figures.on_grid == pytest.approx(0.5, abs=0.02)
    assert figures.where_players_keep == 1.0
    written = [Note(t, t + BEAT / 2, 48, "comp") for t in eighths]  # the written grid throughout
    assert grid_figures(written, grid, players).where_players_keep == 1.0  # type: ignore[union-attr]
    assert grid_figures(written, grid).where_players_keep is None  # type: ignore[union-attr]
    # A dotted rhythm keeps half its onsets on the grid: the players keep it there.
    dotted = [Note(t + d, t + d + 0.1, 72, "fiddle")
              for t in grid.beats[:40] for d in (0, 0.75 * BEAT)]
    assert grid_figures(written[:60], grid, dotted).where_players_keep == 1.0  # type: ignore[union-attr]


def test_scale_steps_round_off_scale_pitches_down() -> None:
    c = Key(0, False)
    assert [scale_step(p, c) for p in (60, 62, 64, 65, 67, 72)] == [35, 36, 37, 38, 39, 42]
    assert scale_step(61, c) == scale_step(60, c)  # C#: between C and D, the lower
    assert scale_step(66, c) == scale_step(65, c)


def test_the_lift_of_an_answer_that_is_its_call_a_third_up() -> None:
    # Three phrases with four beats' rest between them; the last is the call. Scale steps:
    # P0 G F E D C -> patterns {(-1,-1)}; P1 E F G G -> {(1,1), (1,0)}; call C D E C ->
    # {(1,1), (1,-2)}; the answer E F G E (a third up) -> {(1,1), (1,-2)}.
    p0, p1, call = [67, 65, 64, 62, 60], [64, 65, 67, 67], [60, 62, 64, 60]
    players = line(p0, 0.0) + line(p1, 4.5) + line(call, 8.5)
    assert estimate_key(players) == Key(0, False)
    answer = line([64, 65, 67, 64], 11.0, who="answer")  # the call ends at 10.5 s
    windows = players_triads(players, GRID)
    f = answer_figures(answer, players, windows, GRID, Key(0, False))
    assert f.answers == 1
    assert f.call_share == 1.0  # both patterns in the call
    assert f.other_share == (0.0 + 0.5) / 2  # none in P0, one of two in P1
    assert f.lift == 0.75
    assert f.copy_from_call == 2  # E F G E and C D E C share the rising second only
    # The first strong beat after the call's end (beat 21) is beat 22, where it starts.
    assert f.entry_within_beat == 1.0 and f.entry_offset_beats_p50 == 0.0
    assert f.on_beat == 1.0
    assert f.triad_share is None  # no player sounds in its half bars: nothing to judge
    assert rests_of(players, GRID) == [(2.5, 4.5), (6.5, 8.5)]
    assert f.rests == 2 and f.rests_answered == 0.0  # it answered after the last phrase


def test_an_answer_that_rests_inside_comes_in_once() -> None:
    # The call (C D E C from 0 s) ends at 2.0 s; the answer comes in on the downbeat (2.0 s),
    # rests two beats, goes on at 4.0 s: two groups, one entry, on time.
    players = [*line([60, 62, 64, 60], 0.0), *line([67, 65, 64, 62], 8.0)]
    answer = [*line([64, 65], 2.0, who="answer"), *line([67, 64], 4.0, who="answer")]
    f = answer_figures(answer, players, players_triads(players, GRID), GRID, Key(0, False))
    assert f.answers == 2
    assert f.entry_within_beat == 1.0 and f.entry_offset_beats_p50 == 0.0


def test_the_call_echo_baseline() -> None:
    players = line([60, 62, 64, 60], 0.0) + line([67, 65], 6.0)
    echo = call_echo(players, GRID, Key(0, False))
    # From the first strong beat after the call ends (2.0 s: bar 2's downbeat), a third up.
    assert [(n.onset, n.pitch) for n in echo] == [(2.0, 64), (2.5, 65), (3.0, 67), (3.5, 64)]
    assert top_line([*players, Note(0.01, 0.5, 72, "x")])[0].pitch == 72


def test_the_kept_time_baseline_keeps_the_last_beat_through_the_rest() -> None:
    # Beats of 0.5 s to 2.0 s, then the (resting) players' beat speeds up to 0.4 s.
    beats = np.concatenate([np.arange(5) * 0.5, 2.0 + np.arange(1, 20) * 0.4])
    grid = grid_of(beats, 4, 0)
    players = [*line([60, 62, 64, 60], 0.0), Note(4.4, 4.8, 67, "melody")]
    assert rests_of(players, grid) == [(2.0, 4.4)]
    kept = kept_time_in_rests(players, grid, Key(0, False), seed=3)
    # Eighths of the last beat before the rest (0.5 s): 2.0, 2.25, ... up to the players' return.
    assert [n.onset for n in kept] == [2.0 + 0.25 * i for i in range(10)]
    assert all(n.end - n.onset == 0.25 and n.pitch % 12 in Key(0, False).scale for n in kept)
    assert kept == kept_time_in_rests(players, grid, Key(0, False), seed=3)
    # Judged on the true (faster) grid: on a beat at 2.0 s, then off (2.5 s is 0.1 s after
    # the true 2.4, 3.0 s 0.2 s after 2.8 ...), and by chance at 4.0 s again.
    f = answer_figures(kept, players, players_triads(players, grid), grid, Key(0, False))
    assert f.on_beat == 2 / 10


def test_the_baselines_are_deterministic() -> None:
    span = (0.0, 8.0)
    key = Key(7, False)  # G major
    triad = static_triad(GRID, key, span)
    assert {n.pitch for n in triad} == {55, 59, 62}
    assert [n.onset for n in triad[::3]] == [i * BEAT for i in range(15)]
    a, b = random_in_key(GRID, key, span, seed=3), random_in_key(GRID, key, span, seed=3)
    assert a == b and len(a) == 31
    assert a != random_in_key(GRID, key, span, seed=4)
    assert all((n.pitch - 7) % 12 in key.scale and 48 <= n.pitch <= 67 for n in a)


def test_the_response_kinds_are_the_policys() -> None:
    assert RESPONSE_KINDS == RESPONSES


def tune(bars: int) -> Work:
    """A 4/4 tune in C: per bar a quarter, two 8ths and two quarters, up and down a scale."""
    rhythm = ((0.0, 1.0), (1.0, 0.5), (1.5, 0.5), (2.0, 1.0), (3.0, 1.0))
    rows = [(4.0 * b + o, d, 60 + (2 * b + i) % 8) for b in range(bars)
            for i, (o, d) in enumerate(rhythm)]
    onset, duration, pitch = (np.array(x) for x in zip(*rows, strict=True))
    return Work(id="t", collection="test", split="test", bpm=100.0, bar_beats=4.0, key=None,
                onset=onset.astype(np.float64), duration=duration.astype(np.float64),
                pitch=pitch.astype(np.int16), velocity=np.full(len(rows), 80, np.int16),
                voice=np.zeros(len(rows), np.int16))


def test_the_hindsight_beat_tracker_finds_a_rehearsals_true_beats() -> None:
    for bpm in (90.0, 120.0, 160.0):
        parts, timeline = perform_timed(tune(24), random.Random(5), bpm=bpm)
        notes = [Note(p.onset_s, p.onset_s + p.duration_s, p.pitch, "melody", p.velocity)
                 for p in parts["melody"]]
        true = timeline.beat_times(notes[-1].end)
        true = true[(true >= notes[0].onset - 0.05) & (true <= notes[-1].end)]
        assert beats_found(estimate_beats(notes), true) >= 0.95, bpm
        grid = estimate_grid(notes, 4)
        assert grid is not None
        downbeats = np.array([timeline.seconds(timeline.bar_line(m)) for m in range(24)])
        assert beats_found(grid.downbeats, downbeats) >= 0.95, bpm
    assert timeline.bar_line(0) == LEAD_IN_BEATS


def test_the_log_is_read_as_played() -> None:
    from agent.record.judge_log import agent_notes, player_notes

    def rec(t: int, k: str, data: str, **more: object) -> dict[str, object]:
        return {"t": t, "k": k, "data": data, **more}

    records = [
        rec(0, "in", "903c50", player="melody"),
        rec(500, "in", "803c00", player="melody"),  # a note-off just before the same key's
        rec(500, "in", "903c50", player="melody"),  # note-on (music21's grace notes): paired
        rec(900, "in", "903e50", player="bass"),
        {"t": 100, "k": "decision", "what": "comp", "plan": [[100, 48, 60, 200]]},
        {"t": 100, "k": "decision", "what": "mirror", "plan": [[300, 50, 60, 200]]},
        rec(100, "emit", "923040", port="out", deadline=100),
        rec(300, "emit", "923240", port="out", deadline=300),
        rec(300, "emit", "823000", port="out", deadline=300),
        rec(500, "emit", "823200", port="out", deadline=500),
        rec(1000, "in", "803c00", player="melody"),
    ]
    assert [(n.onset * 1e9, n.end * 1e9, n.pitch, n.who) for n in player_notes(records)] == [
        (0, 500, 60, "melody"), (500, 1000, 60, "melody"), (900, 1000, 62, "bass")]
    assert [(n.onset * 1e9, n.end * 1e9, n.pitch, n.who) for n in agent_notes(records, "out")] \
        == [(100, 300, 48, "comp"), (300, 500, 50, "answer")]


def test_an_answer_onset_over_a_players_note_counts_unless_that_note_ends_there() -> None:
    players = [Note(0.0, 1.0, 60, "p"), Note(2.0, 2.5, 62, "p")]
    onsets = np.array([0.5, 0.98, 1.5, 1.995, 2.49])
    # 0.5: over the first note; 0.98: it ends 20 ms later, at the bar line the answer comes
    # in on; 1.5: silence; 1.995: the second note is struck within 10 ms after; 2.49: it
    # ends 10 ms later.
    assert over_players(onsets, players).tolist() == [True, False, False, True, False]
