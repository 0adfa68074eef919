"""Sections: counting bars, moving on, cues, and the controls on entering a section."""

from __future__ import annotations

import pytest

from agent.config import Section
from agent.policy.controls import Controls, ControlValueError
from agent.policy.sections import Place, after_bar, controls_for, find, start

PIECE = (Section("intro", mode="accompany", bars=2),
         Section("middle", bars=0, controls={"density": 2.0}),
         Section("solo", mode="solo", bars=1, controls={"register": 5, "arousal": 0.5}),
         Section("outro", bars=2))


def test_start() -> None:
    assert start(PIECE) == Place(0, 0)
    assert start(()) == Place(-1, 0)


def test_place_as_a_dict() -> None:
    assert Place(2, 3).to_dict(PIECE) == {"name": "solo", "index": 2, "bar": 3}
    assert Place(-1, 0).to_dict(()) == {"name": None, "index": -1, "bar": 0}


def test_find_by_name() -> None:
    here = Place(0, 5)
    assert find(PIECE, here, "intro") == 0
    assert find(PIECE, here, "solo") == 2
    assert find(PIECE, here, "outro") == 3
    assert find(PIECE, here, "bridge") is None
    assert find(PIECE, here, "Solo") is None
    twice = (Section("a"), Section("b"), Section("a"))
    assert find(twice, Place(1, 0), "a") == 0  # the first of that name


def test_find_next() -> None:
    assert [find(PIECE, Place(i, 0), "next") for i in range(4)] == [1, 2, 3, None]
    assert find((), Place(-1, 0), "next") is None


def test_bars_are_counted_and_a_section_with_bars_moves_on() -> None:
    place, changed = after_bar(PIECE, Place(0, 0))
    assert (place, changed) == (Place(0, 1), False)
    place, changed = after_bar(PIECE, place)
    assert (place, changed) == (Place(1, 0), True)  # intro had 2 bars


def test_a_section_without_bars_waits_for_a_cue() -> None:
    place = Place(1, 0)
    for bar in range(1, 100):
        place, changed = after_bar(PIECE, place)
        assert (place, changed) == (Place(1, bar), False)


def test_a_one_bar_section_moves_on_after_one_bar() -> None:
    assert after_bar(PIECE, Place(2, 0)) == (Place(3, 0), True)


def test_the_last_section_lasts_until_a_cue() -> None:
    place = Place(3, 0)
    for bar in range(1, 10):  # 2 bars, but nothing after it: it counts on
        place, changed = after_bar(PIECE, place)
        assert (place, changed) == (Place(3, bar), False)


def test_a_section_entered_late_moves_on_at_its_next_bar() -> None:
    # Past its length (e.g. counted on while it was the last section): moves at the next bar.
    assert after_bar(PIECE, Place(0, 7)) == (Place(1, 0), True)


def test_no_sections_no_counting() -> None:
    assert after_bar((), Place(-1, 0)) == (Place(-1, 0), False)


def test_a_whole_piece_bar_by_bar() -> None:
    place, starts = start(PIECE), []
    for bar in range(8):
        place, changed = after_bar(PIECE, place)
        if changed:
            starts.append((bar + 1, PIECE[place.index].name))
    # intro 2 bars, middle waits for a cue forever
    assert starts == [(2, "middle")]
    place, starts = Place(find(PIECE, place, "next") or 0, 0), []
    assert place == Place(2, 0)
    for bar in range(5):
        place, changed = after_bar(PIECE, place)
        if changed:
            starts.append((bar + 1, PIECE[place.index].name))
    assert starts == [(1, "outro")]
    assert place == Place(3, 4)


# -- controls_for -----------------------------------------------------------------------------

BASE = Controls(mode="call-response", density=1.5, register=-2, temperature=1.1)


def test_entering_a_section_starts_from_the_base_controls() -> None:
    assert controls_for(BASE, PIECE[0]) == Controls(mode="accompany", density=1.5, register=-2,
                                                    temperature=1.1)
    assert controls_for(BASE, PIECE[1]) == Controls(mode="call-response", density=2.0,
                                                    register=-2, temperature=1.1)
    assert controls_for(BASE, PIECE[2]) == Controls(mode="solo", density=1.5, register=5,
                                                    temperature=1.1, arousal=0.5)
    assert controls_for(BASE, PIECE[3]) == BASE


def test_what_commands_changed_is_forgotten_on_entering_a_section() -> None:
    # controls_for reads only the base: a section without a mode gets the base's mode back.
    assert controls_for(BASE, Section("plain")) == BASE
    assert controls_for(BASE, Section("plain")).mode == "call-response"


def test_section_controls_are_checked_and_normalised() -> None:
    sec = Section("s", controls={"styles": {"oneill": 1, "bach": 2}, "register": 3})
    assert controls_for(BASE, sec).styles == (("bach", 2.0), ("oneill", 1.0))
    with pytest.raises(ControlValueError, match=r"^density: 9 is out of range"):
        controls_for(BASE, Section("s", controls={"density": 9}))
    with pytest.raises(ControlValueError, match=r"^mode: 'jazz' is not one of"):
        controls_for(BASE, Section("s", mode="jazz"))


def test_the_sections_mode_wins_over_a_mode_in_its_controls() -> None:
    sec = Section("s", mode="mirror", controls={"mode": "solo"})
    assert controls_for(BASE, sec).mode == "mirror"


def test_the_section_is_not_changed() -> None:
    sec = Section("s", mode="solo", controls={"density": 2.0})
    controls_for(BASE, sec)
    assert sec.controls == {"density": 2.0}
