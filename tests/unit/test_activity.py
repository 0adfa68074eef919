"""Per-player activity figures and roles, on a manual time base."""

from __future__ import annotations

from agent.listen.activity import COMPING, RESTING, SOLOING, PlayerActivity, roles

MS = 1_000_000


def melody(p: PlayerActivity, start_ms: int, pitches: list[int], step_ms: int = 250) -> int:
    t = start_ms
    for pitch in pitches:
        p.note_on(t * MS, 0, pitch, 90)
        p.note_off((t + step_ms - 20) * MS, 0, pitch)
        t += step_ms
    return t


def chords(p: PlayerActivity, start_ms: int, count: int, step_ms: int = 1000) -> int:
    t = start_ms
    for _ in range(count):
        for k, pitch in enumerate((48, 52, 55)):
            p.note_on((t + k * 5) * MS, 0, pitch, 60)
        for pitch in (48, 52, 55):
            p.note_off((t + step_ms - 50) * MS, 0, pitch)
        t += step_ms
    return t


def test_activity_figures_are_exact() -> None:
    p = PlayerActivity(window_s=4.0)
    end = melody(p, 0, [60, 62, 64, 65, 67, 69, 71, 72])  # 8 notes over 2 s
    a = p.summary(end * MS)
    assert (a.onsets, a.density, a.velocity) == (8, 2.0, 90.0)
    assert (a.low, a.high, a.median_pitch, a.polyphony) == (60, 72, 66.0, 1.0)
    assert not a.holding
    later = p.summary((end + 5000) * MS)  # the window forgets by time
    assert (later.onsets, later.density, later.velocity) == (0, 0.0, None)


def test_chords_count_as_one_attack() -> None:
    p = PlayerActivity()
    end = chords(p, 0, 3)
    assert p.summary(end * MS).polyphony == 3.0


def test_the_busy_line_solos_the_chords_comp_and_silence_rests() -> None:
    lead, keys = PlayerActivity(), PlayerActivity()
    end = max(melody(lead, 0, list(range(60, 72))), chords(keys, 0, 3))
    now = end * MS
    assert roles({"lead": lead.summary(now), "keys": keys.summary(now)}, now) == {
        "lead": SOLOING, "keys": COMPING}
    later = now + 5000 * MS
    assert roles({"lead": lead.summary(later), "keys": keys.summary(later)}, later) == {
        "lead": RESTING, "keys": RESTING}


def test_two_lines_the_busier_solos() -> None:
    a, b = PlayerActivity(), PlayerActivity()
    melody(a, 0, [60] * 8, step_ms=500)
    end = melody(b, 0, [70] * 16, step_ms=250)
    now = end * MS
    assert roles({"a": a.summary(now), "b": b.summary(now)}, now) == {"a": COMPING, "b": SOLOING}


def test_a_held_note_is_playing_even_after_the_rest_time() -> None:
    p = PlayerActivity()
    p.note_on(0, 0, 60, 80)  # one long note, still held 6 s later
    now = 6000 * MS
    assert roles({"p": p.summary(now)}, now) == {"p": SOLOING}
    p.note_off(now, 0, 60)
    assert roles({"p": p.summary(now + 1)}, now + 1) == {"p": RESTING}


def test_a_lone_player_of_chords_comps() -> None:
    p = PlayerActivity()
    end = chords(p, 0, 3)
    assert roles({"p": p.summary(end * MS)}, end * MS) == {"p": COMPING}
