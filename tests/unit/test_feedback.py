"""The feedback guard (listen/feedback.py): the agent's own notes coming back as a player's."""

from __future__ import annotations

from agent.listen.feedback import PRUNE_AT, SPAN_NS, TRIP, WINDOW_NS, FeedbackGuard, Trip

MS = 1_000_000
ON = bytes((0x91, 67, 100))  # the agent's note on its channel (2)
OFF = bytes((0x81, 67, 0))


def echo(guard: FeedbackGuard, t: int, data: bytes = ON, player: str = "keys",
         delay: int = 3 * MS) -> Trip | None:
    """The agent sends `data` at t; it comes back `delay` later as `player`'s."""
    guard.sent(t, data)
    return guard.heard(t + delay, player, data)


def test_the_agent_hearing_itself_repeatedly_trips_once() -> None:
    guard = FeedbackGuard()
    trips = [echo(guard, i * 10 * MS, ON if i % 2 == 0 else OFF) for i in range(3 * TRIP)]
    assert trips[:TRIP - 1] == [None] * (TRIP - 1)
    assert trips[TRIP - 1] == Trip("keys", (TRIP - 1) * 10 * MS + 3 * MS, TRIP, OFF)
    assert trips[TRIP:] == [None] * (2 * TRIP)  # said once
    assert guard.tripped("keys")


def test_a_note_off_comes_back_in_either_form() -> None:
    guard = FeedbackGuard(trip=2)
    guard.sent(0, OFF)
    assert guard.heard(MS, "keys", bytes((0x81, 67, 64))) is None  # one echo
    guard.sent(2 * MS, OFF)
    assert guard.heard(3 * MS, "keys", bytes((0x91, 67, 0))) is not None  # the second


def test_what_a_player_plays_is_not_an_echo() -> None:
    guard = FeedbackGuard()
    for i in range(10 * TRIP):
        t = i * 2 * WINDOW_NS  # each send alone in its window
        guard.sent(t, ON)
        # the same note before the agent sent it, another velocity, another channel, too late
        assert guard.heard(t - MS, "keys", ON) is None
        assert guard.heard(t + MS, "keys", bytes((0x91, 67, 99))) is None
        assert guard.heard(t + MS, "keys", bytes((0x90, 67, 100))) is None
        assert guard.heard(t + WINDOW_NS + 1, "keys", ON) is None
        assert guard.heard(t + MS, "keys", bytes((0xB1, 64, 0))) is None  # not a note
    assert not guard.tripped("keys")


def test_echoes_spread_wider_than_the_span_never_trip() -> None:
    guard = FeedbackGuard()
    gap = SPAN_NS // (TRIP - 1) + 1  # TRIP echoes never fit in one span
    assert all(echo(guard, i * gap) is None for i in range(5 * TRIP))


def test_each_player_trips_alone() -> None:
    guard = FeedbackGuard()
    trips = [echo(guard, i * MS, player="keys") for i in range(TRIP)]
    trips += [echo(guard, i * MS, player="bass") for i in range(TRIP - 1)]
    assert [t.player for t in trips if t] == ["keys"]
    assert not guard.tripped("bass")


def test_a_tripped_player_is_rearmed_after_a_quiet_time() -> None:
    guard = FeedbackGuard(quiet_ns=2000 * MS)
    for i in range(TRIP):
        echo(guard, i * MS)
    last = TRIP * MS + 2 * MS
    assert guard.heard(last, "keys", bytes((0x90, 60, 80))) is None  # still playing: not quiet
    assert guard.heard(last + 1000 * MS, "keys", b"\xf8") is None  # a clock goes on: quiet
    assert guard.quiet(last + 1999 * MS) == []
    assert guard.quiet(last + 2000 * MS) == ["keys"]
    assert not guard.tripped("keys") and guard.quiet(last + 9000 * MS) == []
    start = last + 3000 * MS  # the loop is still patched: it trips again, as many echoes later
    trips = [echo(guard, start + i * MS) for i in range(TRIP)]
    assert trips[-1] is not None and trips[:-1] == [None] * (TRIP - 1)


def test_memory_is_bounded_by_forgetting_old_notes() -> None:
    guard = FeedbackGuard()
    for i in range(20 * PRUNE_AT):  # every note and velocity, over and over, 1 ms apart
        guard.sent(i * MS, bytes((0x90 | i % 16, i // 16 % 128, 1 + i // 2048 % 127)))
    assert len(guard._sent) <= PRUNE_AT
    t = 20 * PRUNE_AT * MS  # and still hears its echoes
    assert all(echo(guard, t + i * MS) is None for i in range(TRIP - 1))
    assert echo(guard, t + TRIP * MS) is not None
