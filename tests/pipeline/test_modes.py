"""The modes, sections, cues and controls, played through the agent on a manual clock."""

from __future__ import annotations

import random
from pathlib import Path

from agent import midi
from agent.policy.accompanist import COMP_COMMIT_NS, COMP_LEAD_NS
from agent.policy.commands import parse_command
from agent.policy.develop import scale_pitches
from agent.record.replay import load_recording, replay_fast
from tests.pipeline.test_agent import MS, Run, phrase
from tests.pipeline.test_replay import emitted

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}
BEAT = 500  # ms: 120 BPM


def arpeggios(run: Run, player: str, chords: list[tuple[int, int, int]], start: float,
              bars_each: int = 2, accent: bool = False) -> float:
    """Quarter notes at 120 BPM outlining each chord (root, third, fifth, root + 12) for
    `bars_each` bars, the downbeats louder with `accent`; returns the last note-off's time."""
    pitches = [p for chord in chords for _ in range(bars_each)
               for p in (chord[0], chord[1], chord[2], chord[0] + 12)]
    if not accent:
        return phrase(run, player, pitches, start, ioi_ms=BEAT)
    for i, p in enumerate(pitches):
        t = start + i * BEAT
        run.at(t, player, 0x90, p, 100 if i % 4 == 0 else 70)
        run.at(t + BEAT * 0.8, player, 0x80, p, 0)
    return start + (len(pitches) - 1) * BEAT + BEAT * 0.8


def sounding_pitch_classes_at(run: Run, t_ms: float) -> set[int]:
    ons = {}
    for t, d in run.out:
        if t > t_ms * MS:
            break
        if d[0] & 0xF0 == 0x90 and d[2] > 0:
            ons[d[1]] = True
        elif d[0] & 0xF0 == 0x80 or (d[0] & 0xF0 == 0x90 and d[2] == 0):
            ons.pop(d[1], None)
    return {p % 12 for p in ons}


def test_accompany_comps_the_expected_chord_under_the_soloist_on_the_grid(
        tmp_path: Path) -> None:
    run = Run(tmp_path, mode="accompany")
    # C major for two bars, then F major for two bars, from t = 1 s, at 120 BPM.
    end = arpeggios(run, "a", [(72, 76, 79), (77, 81, 84)], 1000, accent=True)
    run.until(end + 5_000)
    comps = run.decisions("comp")
    assert comps, "no comp once the beat was heard"
    assert not run.decisions("answer")  # accompanying, the agent never answers
    ons = run.notes_on()
    assert all(p < 72 - 1 for _, p in ons)  # under the soloist's lowest note
    assert all((t - 1000) % (BEAT // 2) == 0 for t, _ in ons)  # on the eighths of the beat
    change = 1000 + 8 * BEAT  # the first F major note
    # Sparse (density 1): a bass note on the half bar's first beat, the chord on its second,
    # once the accented downbeats have told where the bar starts (a few beats).
    bass = [(t, p) for t, p in ons if sum(1 for u, _ in ons if u == t) == 1]
    assert bass and all((t - 1000) % (2 * BEAT) == 0 for t, _ in bass if t >= change)
    before = {p % 12 for t, p in ons if t < change}
    after = [p % 12 for t, p in ons if t >= change + BEAT]
    assert before <= {0, 4, 7}
    # From the F bars' first heard beat on, mostly F major: an arpeggio lets a guess at a half
    # bar's start (before its notes are heard) or a lone C or A (C major? A minor?) mislead.
    assert after and sum(pc in {5, 9, 0} for pc in after) / len(after) >= 0.7
    assert all(t <= end + 2 * 4 * BEAT for t, _ in ons)  # it stops when the soloist stops
    assert run.session.scheduler.ledger.sounding() == []


def test_density_control_doubles_the_comp_attacks(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="accompany", extra={"controls": {"density": 2.0}})
    arpeggios(run, "a", [(72, 76, 79)], 1000, bars_each=4)
    offbeats = [t for t, _ in run.notes_on() if (t - 1000) % BEAT == BEAT // 2]
    assert offbeats  # on the beat and the off-beat


def test_continue_carries_on_the_line_in_its_range(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="continue")
    end = phrase(run, "a", [60, 62, 64, 65, 67, 65, 64], 0)
    run.until(end + 5_000)
    (decision,) = run.decisions("continue")
    assert len(decision["plan"]) == 7
    assert all(58 <= row[1] <= 69 for row in decision["plan"])  # the line's range, +-2
    assert run.notes_on()[0][0] == end + 500 + 100


def test_mirror_imitates_in_key_with_variation(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="mirror")
    call = [60, 62, 64, 65, 67, 69, 71, 72]
    end = phrase(run, "a", call, 0)
    run.until(end + 5_000)
    (decision,) = run.decisions("mirror")
    assert decision["source"] == "call"
    pitches = [row[1] for row in decision["plan"]]
    assert len(pitches) >= len(call) and pitches != call
    assert all(p % 12 in C_MAJOR for p in pitches)
    ladder = scale_pitches(C_MAJOR)  # a third up or down: most notes two scale steps away
    moved = [ladder.index(p) - ladder.index(c) for p, c in zip(pitches, call, strict=False)]
    assert moved.count(2) >= 4 or moved.count(-2) >= 4


def test_solo_mode_plays_while_the_players_rest_and_stops_when_one_comes_in(
        tmp_path: Path) -> None:
    run = Run(tmp_path, mode="solo")
    end = phrase(run, "a", [60, 62, 64, 65, 67], 0)
    run.until(end + 15_000)
    run.at(end + 15_000, "b", 0x90, 48, 80)
    run.until(end + 40_000)
    solos = run.decisions("solo")
    assert 3 <= len(solos) <= 8  # phrase after phrase, at most SOLO_MAX_PHRASES
    assert all(t <= end + 15_000 for t, _ in run.notes_on())
    assert run.session.scheduler.ledger.sounding() == []


def test_auto_comps_under_a_soloist_then_answers_then_solos(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="auto")
    end = arpeggios(run, "a", [(72, 76, 79)], 1000, bars_each=4)
    run.until(end + 20_000)
    kinds = [r["what"] for r in run.records() if r["k"] == "decision"
             and r["what"] in ("comp", "answer", "solo")]
    assert kinds[0] == "comp"
    first_answer = kinds.index("answer")
    assert set(kinds[:first_answer]) == {"comp"}
    assert "solo" in kinds[first_answer:]


def test_sections_advance_by_bars_and_by_cue(tmp_path: Path) -> None:
    sections = [{"name": "intro", "mode": "accompany", "bars": 2},
                {"name": "trade", "mode": "call-response", "controls": {"density": 0.5}},
                {"name": "coda", "mode": "mirror"}]
    run = Run(tmp_path, mode="harmony", extra={"sections": sections})
    assert run.session.agent.controls.mode == "accompany"  # the first section's mode
    end = arpeggios(run, "a", [(72, 76, 79)], 1000, bars_each=4)
    changes = run.decisions("section")
    assert [(c["name"], c["why"]) for c in changes] == [("trade", "bars")]
    # Two bars of ticks (from the first confident beat) after the comp began.
    assert changes[0]["t"] < end * MS
    run.until(end + 3_000)
    (answer,) = run.decisions("answer")
    assert len(answer["plan"]) == 8  # half the call (16 notes): density 0.5
    names = [s["name"] for s in sections]
    run.session.command(parse_command("cue", {}, names), round((end + 3_000) * MS))
    assert run.session.agent.controls.mode == "mirror"
    assert run.session.agent.controls.density == 1.0  # back to the piece's controls
    run.session.command(parse_command("cue", {"section": "intro"}, names),
                        round((end + 3_001) * MS))
    assert run.session.agent.controls.mode == "accompany"


def test_mute_silences_at_once_and_unmute_plays_again(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="call-response")
    end = phrase(run, "a", [60, 62, 64, 65, 67, 69, 71, 72], 0)
    run.until(end + 700)  # the answer has started
    assert run.notes_on()
    run.session.command(parse_command("mute", {}), round((end + 700) * MS))
    assert run.session.scheduler.ledger.sounding() == []
    heard = len(run.notes_on())
    end2 = phrase(run, "b", [48, 50, 52], end + 2_000)
    run.until(end2 + 3_000)
    assert len(run.notes_on()) == heard  # muted: nothing more
    run.session.command(parse_command("unmute", {}), round((end2 + 3_000) * MS))
    end3 = phrase(run, "b", [48, 50, 52], end2 + 4_000)
    run.until(end3 + 3_000)
    assert len(run.notes_on()) == heard + 3


def test_dynamics_and_register_controls_move_the_answer(tmp_path: Path) -> None:
    plain = Run(tmp_path / "plain", mode="call-response")
    loud = Run(tmp_path / "loud", mode="call-response",
               extra={"controls": {"dynamics": 0.5, "register": 12}})
    for run in (plain, loud):
        end = phrase(run, "a", [60, 62, 64, 65, 67], 0)
        run.until(end + 5_000)
    (p,), (q,) = plain.decisions("answer"), loud.decisions("answer")
    assert [row[2] + 20 for row in p["plan"]] == [row[2] for row in q["plan"]]
    assert all(b[1] - a[1] == 12 for a, b in zip(p["plan"][4:], q["plan"][4:], strict=True))


def test_commands_are_recorded_and_a_replay_of_the_log_repeats_them(tmp_path: Path) -> None:
    sections = [{"name": "a", "mode": "call-response"}, {"name": "b", "mode": "mirror"}]
    run = Run(tmp_path, mode="call-response", extra={"sections": sections})
    names = ["a", "b"]
    end = phrase(run, "a", [60, 62, 64, 65, 67], 0)
    run.until(end + 3_000)
    t = round((end + 3_000) * MS)
    run.session.command(parse_command("controls", {"density": 2.0, "dynamics": -0.5}), t)
    end = phrase(run, "b", [48, 50, 52, 53], end + 3_100)
    run.until(end + 4_000)
    run.session.command(parse_command("cue", {"section": "b"}, names), round((end + 4_000) * MS))
    end = phrase(run, "a", [67, 65, 64, 62], end + 4_100)
    run.until(end + 5_000)
    run.session.stop(round((end + 5_000) * MS))
    run.session.finish()
    assert [r["what"] for r in run.records() if r["k"] in ("decision",)
            if r["what"] != "yield"] == ["answer", "answer", "section", "mirror"]
    rec = load_recording(tmp_path / "rec")
    assert rec.config is not None
    replay_fast(rec, rec.config, tmp_path / "again", "test")
    assert emitted(tmp_path / "again") == emitted(tmp_path / "rec")
    assert len(emitted(tmp_path / "rec")) > 20


def chart_run(tmp_path: Path, chords: str) -> Run:
    return Run(tmp_path, mode="accompany",
               extra={"sections": [{"name": "A", "chords": chords}]})


def test_a_chord_chart_is_followed_from_the_first_stroke_of_each_half_bar(
        tmp_path: Path) -> None:
    """C | Am | F | G, one bar each, twice: with the chart the comp knows each change before
    it is heard, so even the stroke on a half bar's first beat (a guess without it) is in the
    chord the players play."""
    run = chart_run(tmp_path, "C | Am | F | G")
    chords = [(72, 76, 79), (69, 72, 76), (65, 69, 72), (67, 71, 74)] * 2
    end = arpeggios(run, "a", chords, 1000, bars_each=1, accent=True)
    run.until(end + 1000)
    triads = [{0, 4, 7}, {9, 0, 4}, {5, 9, 0}, {7, 11, 2}]
    sources = {d["source"] for d in run.decisions("comp")}
    assert "chart" in sources
    on = [(t, p) for t, p in run.notes_on() if t >= 1000 + 8 * BEAT]  # once the bars are heard
    assert on
    for t, p in on:
        bar = int((t - 1000) // (4 * BEAT)) % 4
        assert p % 12 in triads[bar], (t, p)


def test_the_comp_listens_when_the_players_leave_the_chart(tmp_path: Path) -> None:
    """The chart says F throughout; the players play G major: after two half bars off the
    chart the comp follows what it hears."""
    run = chart_run(tmp_path, "F")
    end = arpeggios(run, "a", [(67, 71, 74)], 1000, bars_each=6, accent=True)
    run.until(end + 1000)
    late = [p % 12 for t, p in run.notes_on() if t >= 1000 + 12 * BEAT]
    assert late and all(pc in {7, 11, 2} for pc in late)
    assert {d["source"] for d in run.decisions("comp") if d["t"] >= (1000 + 12 * BEAT) * MS} \
        .isdisjoint({"chart"})


def test_after_a_panic_the_comp_waits_for_a_player(tmp_path: Path) -> None:
    """A panic silences the comp until someone plays again, not only until the next beat."""
    run = Run(tmp_path, mode="accompany")
    for i in range(12):  # three bars at 120 BPM, then the player holds a long note
        run.at(1000 + 500 * i, "a", 0x90, 72 + (i % 3) * 2, 100 if i % 4 == 0 else 70)
        run.at(1400 + 500 * i, "a", 0x80, 72 + (i % 3) * 2, 0)
    run.at(7000, "a", 0x90, 76, 80)  # held through the panic: the beat would go on
    run.until(7200)
    assert run.notes_on(), "no comp before the panic"
    run.session.command(parse_command("panic", {}), 7_200 * MS)
    before = len(run.notes_on())
    run.until(9000)
    assert len(run.notes_on()) == before  # two seconds of beats: nothing
    assert run.session.scheduler.ledger.sounding() == []
    run.at(9000, "a", 0x80, 76, 0)
    for i in range(4):  # the player plays again: so does the comp
        run.at(9500 + 500 * i, "a", 0x90, 72, 80)
        run.at(9900 + 500 * i, "a", 0x80, 72, 0)
    run.until(12_000)
    assert len(run.notes_on()) > before


def test_a_chord_chart_stays_with_the_bars_while_the_tempo_drifts(tmp_path: Path) -> None:
    """Three minutes of C | Am | F | G, the tempo sliding from 120 to 127 BPM: the chart's bars
    are counted from where the section began, placed once; placed again from the drifting beat
    they slid by bars."""
    run = chart_run(tmp_path, "C | Am | F | G")
    chords = [(72, 76, 79), (69, 72, 76), (65, 69, 72), (67, 71, 74)]
    names = ["C", "Am", "F", "G"]
    t, bar_starts = 1000.0, []
    for bar in range(96):
        bar_starts.append(t)
        beat = 500 * (1 - 0.055 * bar / 96)  # ms
        for i, p in enumerate((*chords[bar % 4], chords[bar % 4][0] + 12)):
            run.at(t, "a", 0x90, p, 100 if i == 0 else 70)
            run.at(t + 0.8 * beat, "a", 0x80, p, 0)
            t += beat
    run.until(t + 500)
    late = [d for d in run.decisions("comp")
            if d["source"] == "chart" and bar_starts[72] * MS <= d["t"] < bar_starts[95] * MS]
    assert late
    for d in late:
        at = d["t"] / MS + 40  # the half bar that sounds 40 ms after the decision
        bar = max(i for i, s in enumerate(bar_starts) if s <= at)
        assert d["chord"] == names[bar % 4], (d["t"] / MS, bar)


CHORALE_BEATS = [(76, 48), (74, 43), (72, 45), (72, 41), (71, 43), (72, 48), (79, 52), (77, 50)]


def sing(run: Run, pairs: list[tuple[int, int]], start: int, beats: int,
         jitter_ms: int = 0) -> dict[int, set[int]]:
    """Two players (soprano "a", bass "b") strike `pairs` round, a beat each, held to just
    before the next beat, the downbeats louder, each onset up to `jitter_ms` early or late
    (seeded); returns {the beat's time (ms): the pitch classes struck on it}."""
    rng = random.Random(5)
    struck: dict[int, set[int]] = {}
    for i in range(beats):
        t = start + i * BEAT
        soprano, bass = pairs[i % len(pairs)]
        struck[t] = {soprano % 12, bass % 12}
        onsets = sorted((t + rng.randint(-jitter_ms, jitter_ms), player, pitch)
                        for player, pitch in (("a", soprano), ("b", bass)))
        for at, player, pitch in onsets:
            run.at(at, player, 0x90, pitch, 100 if i % 4 == 0 else 75)
        for player, pitch in (("a", soprano), ("b", bass)):
            run.at(t + BEAT - 10 - jitter_ms, player, 0x80, pitch, 0)
    return struck


def test_under_a_chorale_the_comp_strikes_after_each_beat_what_the_players_struck(
        tmp_path: Path) -> None:
    """Two players strike a new chord together on every beat (a chorale's soprano and bass,
    each note held to the next beat): a chord foreseen for the beat would be struck with their
    change. Once that is heard, the comp plays on the eighth after each beat, in the chord the
    players struck on it, and lets go before the next beat."""
    run = Run(tmp_path, mode="accompany", extra={"controls": {"density": 2.0}})
    start, beats = 1000, 48
    struck = sing(run, CHORALE_BEATS, start, beats)
    run.until(start + beats * BEAT + 4_000)
    after = [r for r in run.decisions("comp") if r["source"] == "struck"]
    assert after, "the comp never heard the chorale as chords struck together"
    last_beat = start + (beats - 1) * BEAT
    ons = [(t, p) for t, p in run.notes_on() if after[0]["t"] / MS <= t < last_beat + BEAT]
    assert len(ons) >= 3 * (beats - 12)  # a three-note chord after (nearly) every beat
    for t, p in ons:
        beat = start + int(t - start) // BEAT * BEAT
        assert t - beat == BEAT // 2, (t, p)  # on the eighth after the beat, never on it
        # A tone of a triad holding both struck pitch classes (the comp fills the third).
        assert any({p % 12, *struck[beat]} <= {r, (r + 3 + m) % 12, (r + 7) % 12}
                   for r in range(12) for m in (0, 1)), (t, p, struck[beat])
    offs = {t / MS: d[1] for t, d in run.out
            if midi.is_note_off(d) and ons[0][0] <= t / MS < last_beat + BEAT}
    assert all((t - start) % BEAT < BEAT - 1 for t in offs)  # let go before the next beat
    assert run.session.scheduler.ledger.sounding() == []


def test_each_stroke_plays_what_was_decided_just_before_it_though_the_grid_moves(
        tmp_path: Path) -> None:
    """Sung with human timing (onsets up to 10 ms early or late), the grid heard moves a few
    ms from beat to beat; every comp stroke still plays as the decision made COMP_LEAD_NS
    before it planned it, not as a plan made a half beat earlier on the grid heard then."""
    run = Run(tmp_path, mode="accompany", extra={"controls": {"density": 2.0}})
    sing(run, CHORALE_BEATS, 1000, 48, jitter_ms=10)
    run.until(1000 + 48 * BEAT + 4_000)
    decisions = run.decisions("comp")
    played = [(round(t * MS), p) for t, p in run.notes_on()]
    assert len(played) > 100
    for start, pitch in played:
        # The last decision before its commit (COMP_COMMIT_NS before it sounds), or, for a
        # stroke decided later than that (the first, at the beat it sounds on), at once.
        before = [r for r in decisions if r["t"] <= start - COMP_COMMIT_NS] or \
            [r for r in decisions if r["t"] <= start][:1]
        assert before and [start, pitch] in [n[:2] for n in before[-1]["plan"]], (start, pitch)
        # ...the one just before it (COMP_LEAD_NS, and what the grid moved since it was
        # armed), never the plan of the half beat before.
        assert start - before[-1]["t"] < COMP_LEAD_NS + BEAT // 4 * MS, (start, pitch)


def test_two_players_in_unison_are_one_line_comped_as_before(tmp_path: Path) -> None:
    """Two fiddles playing the tune in unison strike together on every beat, but one pitch
    class: a melody, not chords. The comp keeps its patterns (strokes on the beat too)."""
    run = Run(tmp_path, mode="accompany", extra={"controls": {"density": 2.0}})
    tune = [72, 74, 76, 77, 79, 77, 76, 74]
    sing(run, [(p, p) for p in tune], 1000, 48)
    run.until(1000 + 48 * BEAT + 4_000)
    assert run.decisions("comp")
    assert not [r for r in run.decisions("comp") if r["source"] == "struck"]
    assert any((t - 1000) % BEAT == 0 for t, _ in run.notes_on())  # on the beat too
