"""The modes: the table in policy/modes.py's docstring, case by case, and the model's request."""

from __future__ import annotations

import pytest

from agent.config import ModelSection
from agent.events import PhraseNote
from agent.listen.activity import COMPING, RESTING, SOLOING
from agent.model.live import PhraseRequest
from agent.model.proposals import Constraints
from agent.policy.controls import MODES, Mood
from agent.policy.modes import (
    ANSWER,
    BEAT,
    COMP,
    CONTINUE,
    MIRROR,
    PHRASE_END,
    REST,
    SOLO,
    answer_length,
    choose,
    phrase_request,
)

MS = 1_000_000


def mood(arousal: float = 0.0, density: float = 1.0, register: int = 0,
         velocity_shift: int = 0, temperature: float = 0.9) -> Mood:
    return Mood(density=density, register=register, velocity_shift=velocity_shift,
                temperature=temperature, arousal=arousal)


# Who is playing: nobody (no players, or all resting), a soloist (alone or over a comping
# player), or only comping players.
SITUATIONS: dict[str, dict[str, str]] = {
    "no players": {},
    "all resting": {"a": RESTING, "b": RESTING},
    "a soloist": {"a": SOLOING, "b": RESTING},
    "a soloist and a comp": {"a": SOLOING, "b": COMPING},
    "only comping": {"a": COMPING, "b": RESTING},
}
NOBODY = ("no players", "all resting")
SOMEONE = ("a soloist", "a soloist and a comp", "only comping")
A_SOLOIST = ("a soloist", "a soloist and a comp")


def expected(mode: str, trigger: str, situation: str, solo_in_rests: bool) -> str | None:
    """The docstring's table, with calm arousal (0)."""
    responds = {"call-response": ANSWER, "continue": CONTINUE, "mirror": MIRROR}
    if mode in responds:
        if trigger == PHRASE_END:
            return responds[mode]
        if trigger == REST:
            return SOLO if solo_in_rests else None
        return None
    if mode == "accompany":
        return COMP if trigger == BEAT and situation in SOMEONE else None
    if mode == "solo":
        return SOLO if trigger in (PHRASE_END, REST) else None
    if mode == "auto":
        if trigger == PHRASE_END:
            return ANSWER
        if trigger == BEAT:
            return COMP if situation in A_SOLOIST else None
        return SOLO
    assert mode == "harmony"
    return None


CASES = [(mode, trigger, situation, flag) for mode in MODES
         for trigger in (PHRASE_END, BEAT, REST) for situation in SITUATIONS
         for flag in (False, True)]


@pytest.mark.parametrize(("mode", "trigger", "situation", "solo_in_rests"), CASES)
def test_the_table(mode: str, trigger: str, situation: str, solo_in_rests: bool) -> None:
    assert choose(mode, trigger, SITUATIONS[situation], mood(),
                  solo_in_rests) == expected(mode, trigger, situation, solo_in_rests)


def test_the_table_spelled_out_for_a_soloist() -> None:
    """The same table, read row by row (phrase-end, beat, rest; solo_in_rests on)."""
    rows = {
        "call-response": (ANSWER, None, SOLO),
        "continue": (CONTINUE, None, SOLO),
        "mirror": (MIRROR, None, SOLO),
        "accompany": (None, COMP, None),
        "solo": (SOLO, None, SOLO),
        "auto": (ANSWER, COMP, SOLO),
        "harmony": (None, None, None),
    }
    for mode, parts in rows.items():
        got = tuple(choose(mode, t, {"a": SOLOING}, mood(), True)
                    for t in (PHRASE_END, BEAT, REST))
        assert got == parts, mode


def test_unknown_mode_or_trigger_stays_out() -> None:
    assert choose("jazz", PHRASE_END, {"a": SOLOING}, mood(), True) is None
    assert choose("call-response", "downbeat", {"a": SOLOING}, mood(), True) is None


def test_auto_continues_the_line_when_aroused() -> None:
    for situation in SITUATIONS.values():
        assert choose("auto", PHRASE_END, situation, mood(arousal=0.51), False) == CONTINUE
        assert choose("auto", PHRASE_END, situation, mood(arousal=1.0), False) == CONTINUE
        assert choose("auto", PHRASE_END, situation, mood(arousal=0.5), False) == ANSWER
        assert choose("auto", PHRASE_END, situation, mood(arousal=-1.0), False) == ANSWER


def test_only_auto_leans_with_arousal() -> None:
    assert choose("call-response", PHRASE_END, {}, mood(arousal=1.0), False) == ANSWER
    assert choose("mirror", PHRASE_END, {}, mood(arousal=1.0), False) == MIRROR
    assert choose("accompany", BEAT, {}, mood(arousal=-1.0), False) is None
    assert choose("accompany", BEAT, {"a": COMPING}, mood(arousal=1.0), False) == COMP


def test_auto_comps_under_anyone_when_calm() -> None:
    comping = SITUATIONS["only comping"]
    assert choose("auto", BEAT, comping, mood(arousal=-0.51), False) == COMP
    assert choose("auto", BEAT, comping, mood(arousal=-1.0), False) == COMP
    assert choose("auto", BEAT, comping, mood(arousal=-0.5), False) is None  # not beyond
    assert choose("auto", BEAT, comping, mood(arousal=0.0), False) is None
    for nobody in NOBODY:  # calm, but nobody to comp under
        assert choose("auto", BEAT, SITUATIONS[nobody], mood(arousal=-1.0), False) is None
    for soloist in A_SOLOIST:  # under a soloist whatever the mood
        for arousal in (-1.0, 0.0, 1.0):
            assert choose("auto", BEAT, SITUATIONS[soloist], mood(arousal=arousal),
                          False) == COMP


def test_solo_in_rests_only_for_the_responding_modes() -> None:
    for mode in ("call-response", "continue", "mirror"):
        assert choose(mode, REST, {}, mood(), True) == SOLO
        assert choose(mode, REST, {}, mood(), False) is None
    for mode in ("accompany", "harmony"):
        assert choose(mode, REST, {}, mood(), True) is None
    for mode in ("solo", "auto"):
        assert choose(mode, REST, {}, mood(), False) == SOLO


# -- answer_length ----------------------------------------------------------------------------

@pytest.mark.parametrize(("call_notes", "density", "max_notes", "length"), [
    (4, 1.0, 16, 4), (4, 1.5, 16, 6), (4, 1.5, 5, 5), (10, 4.0, 16, 16),
    (3, 0.5, 16, 2),  # 1.5 rounds to 2
    (5, 0.5, 16, 2),  # 2.5 rounds half to even
    (1, 0.25, 16, 1),  # never fewer than one
    (0, 1.0, 16, 1),
])
def test_answer_length(call_notes: int, density: float, max_notes: int, length: int) -> None:
    assert answer_length(call_notes, mood(density=density), max_notes) == length


# -- phrase_request ---------------------------------------------------------------------------

M = ModelSection()  # range_semitones 7, top_p 0.95
C_MAJOR = frozenset({0, 2, 4, 5, 7, 9, 11})


def call(pitches: list[int], velocities: list[int]) -> list[PhraseNote]:
    return [PhraseNote(i * 250 * MS, p, v, 200 * MS)
            for i, (p, v) in enumerate(zip(pitches, velocities, strict=True))]


CALL = call([55, 60, 62, 64, 65, 72], [100, 20, 60, 70, 80, 90])


def test_answer_keeps_near_the_call() -> None:
    req = phrase_request(ANSWER, CALL, 8, C_MAJOR, mood(), M, 0.5, 1.0)
    assert req == PhraseRequest(
        notes=8,
        constraints=Constraints(low=48, high=79, velocity_min=4, velocity_max=116,
                                pitch_classes=C_MAJOR, temperature=0.9, top_p=0.95),
        beat_s=0.5, start_beat=1.0)


def test_mirror_asks_as_an_answer_does() -> None:
    assert phrase_request(MIRROR, CALL, 8, C_MAJOR, mood(), M, None, None) == phrase_request(
        ANSWER, CALL, 8, C_MAJOR, mood(), M, None, None)


def test_solo_ranges_five_semitones_wider() -> None:
    req = phrase_request(SOLO, CALL, 12, None, mood(temperature=1.3), M, None, None)
    assert req == PhraseRequest(
        notes=12,
        constraints=Constraints(low=43, high=84, velocity_min=4, velocity_max=116,
                                pitch_classes=None, temperature=1.3, top_p=0.95))


def test_continue_keeps_the_lines_own_range_and_recent_touch_a_little_cooler() -> None:
    req = phrase_request(CONTINUE, CALL, 6, C_MAJOR, mood(temperature=1.0), M, 0.4, 2.5)
    c = req.constraints
    assert (c.low, c.high) == (53, 74)  # two semitones either side
    assert (c.velocity_min, c.velocity_max) == (52, 98)  # the last four: 60..90, +-8
    assert c.temperature == pytest.approx(0.85)
    assert (c.pitch_classes, c.top_p) == (C_MAJOR, 0.95)
    assert (req.notes, req.beat_s, req.start_beat) == (6, 0.4, 2.5)


def test_register_and_velocity_shift_move_the_constraints() -> None:
    m = mood(register=5, velocity_shift=20)
    c = phrase_request(ANSWER, CALL, 4, None, m, M, None, None).constraints
    assert (c.low, c.high, c.velocity_min, c.velocity_max) == (53, 84, 24, 127)  # 136 capped
    c = phrase_request(CONTINUE, CALL, 4, None, m, M, None, None).constraints
    assert (c.low, c.high, c.velocity_min, c.velocity_max) == (58, 79, 72, 118)
    m = mood(register=-12, velocity_shift=-40)
    c = phrase_request(ANSWER, CALL, 4, None, m, M, None, None).constraints
    assert (c.low, c.high, c.velocity_min, c.velocity_max) == (36, 67, 1, 76)  # -36 -> 1


def test_constraints_clip_at_the_ends_of_midi() -> None:
    edge = call([3, 125], [5, 120])
    c = phrase_request(ANSWER, edge, 4, None, mood(register=-5, velocity_shift=20), M, None,
                       None).constraints
    # pitches 3-7-5 = -9 -> 0, 125+7-5 = 127; velocities 5-16+20 = 9, 120+16+20 = 156 -> 127
    assert (c.low, c.high, c.velocity_min, c.velocity_max) == (0, 127, 9, 127)
    c = phrase_request(SOLO, edge, 4, None, mood(register=36, velocity_shift=-40), M, None,
                       None).constraints
    # 3-12+36 = 27, 125+12+36 -> 127; 5-16-40 -> 1, 120+16-40 = 96
    assert (c.low, c.high, c.velocity_min, c.velocity_max) == (27, 127, 1, 96)
    quiet = call([60], [10])
    c = phrase_request(CONTINUE, quiet, 1, None, mood(velocity_shift=-40), M, None,
                       None).constraints
    assert (c.velocity_min, c.velocity_max) == (1, 1)  # 10-8-40 and 10+8-40: both below 1
    high = call([127], [127])
    c = phrase_request(ANSWER, high, 1, None, mood(register=36), M, None, None).constraints
    assert (c.low, c.high) == (127, 127)


def test_an_empty_scale_is_no_scale() -> None:
    c = phrase_request(ANSWER, CALL, 4, frozenset(), mood(), M, None, None).constraints
    assert c.pitch_classes is None
    c = phrase_request(ANSWER, CALL, 4, [0, 4, 7], mood(), M, None, None).constraints
    assert c.pitch_classes == frozenset({0, 4, 7})


def test_the_model_sections_range_and_top_p_are_used() -> None:
    m = ModelSection(range_semitones=2, top_p=0.5)
    c = phrase_request(ANSWER, CALL, 4, None, mood(), m, None, None).constraints
    assert (c.low, c.high, c.top_p) == (53, 74, 0.5)
    c = phrase_request(SOLO, CALL, 4, None, mood(), m, None, None).constraints
    assert (c.low, c.high) == (48, 79)
