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


def test_what_came_after_the_peer_sent_is_of_a_later_cycle() -> None:
    # A server catching up after a stall runs cycles back to back: the note-on, its release
    # and the note-on again came within 2 ms of each other, each answering the peer (under a
    # rule of arrival times alone, the second note-on was taken for a stale repeat).
    repeats = StaleRepeats(lambda: True)
    assert not repeats.is_stale(0, ON)
    repeats.sent(int(0.5 * MS))  # the player releases its key
    assert not repeats.is_stale(int(1.4 * MS), OFF)
    repeats.sent(int(1.6 * MS))  # and plays it again
    assert not repeats.is_stale(int(2.5 * MS), ON)
    # What comes again before anything newer is still forgiven, sent something or not.
    repeats.sent(int(3 * MS))
    assert repeats.is_stale(int(13 * MS), ON)
