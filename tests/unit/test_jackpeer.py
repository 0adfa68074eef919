"""The JACK test peer's rule for a buffer JACK delivered twice (tests/integration/jackpeer.py)."""

from __future__ import annotations

from tests.integration.jackpeer import StaleRepeats

MS = 1_000_000
ON, OFF = [0x91, 55, 90], [0x81, 55, 0]
RESET = [[0xB1, 64, 0], [0xB1, 123, 0], [0xB1, 120, 0]]


def stale(arrivals: list[tuple[float, list[int]]], xrun: bool = True) -> list[bool]:
    repeats = StaleRepeats(lambda: xrun)
    return [repeats.is_stale(int(ms * MS), message) for ms, message in arrivals]


def test_a_note_played_again_after_its_release_is_no_stale_repeat() -> None:
    # A harmony answered, released and answered again as fast as the peer plays, in a run with
    # an xrun: the second note-on came 32 ms after the first (under the old rule, any equal
    # message within 50 ms, it was thrown away and the test failed on the note-off after it).
    assert stale([(0, ON), (21, OFF), (32, ON), (53, OFF)]) == [False] * 4


def test_a_cycle_delivered_again_is_forgiven_only_after_an_xrun() -> None:
    arrivals = [(0, RESET[0]), (0.05, RESET[1]), (0.1, RESET[2]),
                (10.7, RESET[0]), (10.75, RESET[1]), (10.8, RESET[2]),  # the same buffer again
                (21.4, ON)]
    assert stale(arrivals) == [False] * 3 + [True] * 3 + [False]
    assert stale(arrivals, xrun=False) == [False] * 7


def test_a_repeat_past_the_window_is_kept() -> None:
    assert stale([(0, ON), (10.7, ON), (60, ON)]) == [False, True, False]
