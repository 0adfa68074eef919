"""Two agents with one name (io/presence.py): each hears its own status topic in the broker's
order and both agree who came first; the first keeps the commands, the second refuses them
until the first has gone. The real broker's side: tests/integration/test_mqtt_identity.py."""

from __future__ import annotations

from typing import Any

from agent.io.presence import Outcome, Presence, new_run_id

NAME = "keys"


def online(run: str, answering: str | None = None) -> dict[str, Any]:
    return {"state": "online", "run": run, **({"duplicate": answering} if answering else {})}


def gone(run: str, state: str = "offline") -> dict[str, Any]:
    return {"state": state, "run": run}


def test_run_ids_are_random() -> None:
    assert len({new_run_id() for _ in range(100)}) == 100


def test_alone_nothing_happens() -> None:
    me = Presence(NAME, "me")
    me.connected()
    assert me.hear(gone("before", "lost"), retained=True) == Outcome()  # the last run's Will
    assert me.hear(online("me"), retained=False) == Outcome()  # our own, back
    assert me.duplicate_of is None


def test_the_first_answers_a_newcomer_and_keeps_the_commands() -> None:
    first = Presence(NAME, "a")
    first.connected()
    first.hear(online("a"), retained=False)
    heard = first.hear(online("b"), retained=False)
    assert heard.announce == online("a", answering="b") and heard.loud
    assert heard.said.startswith("another agent named 'keys' (run b) came online after this "
                                 "one (run a): two agents with one name. This one keeps")
    assert first.duplicate_of is None
    assert first.hear(online("a", answering="b"), retained=False) == Outcome()  # our answer
    # it goes: its goodbye took the retained status, so we say "online" again
    assert first.hear(gone("b"), retained=False) == Outcome(
        online("a"), "the other agent named 'keys' (run b) has gone")


def test_the_newcomer_refuses_until_the_first_has_gone() -> None:
    second = Presence(NAME, "b")
    second.connected()
    assert second.hear(online("a"), retained=True) == Outcome()  # maybe there, maybe not
    assert second.hear(online("b"), retained=False) == Outcome()
    assert second.duplicate_of is None
    heard = second.hear(online("a", answering="b"), retained=False)  # it is there, and first
    assert heard.announce is None and heard.loud
    assert heard.said == ("another agent named 'keys' (run a) was online before this one "
                          "(run b): two agents with one name. This one takes no commands but "
                          "panic and mute and publishes no state until the other has gone: "
                          "stop one of them (check mqtt.agent)")
    assert second.duplicate_of == "a"
    assert second.hear(online("a"), retained=False) == Outcome()  # said once
    assert second.hear(gone("a", "lost"), retained=False) == Outcome(
        online("b"), "the other agent named 'keys' (run a) has gone: this one (run b) takes "
        "commands now")
    assert second.duplicate_of is None


def test_crossing_announcements_follow_the_brokers_order() -> None:
    """Both said "online" at once: the broker passed a's on first, to both."""
    a, b = Presence(NAME, "a"), Presence(NAME, "b")
    for p in (a, b):
        p.connected()
        p.hear(online("a"), retained=False)
    assert a.hear(online("b"), retained=False).announce == online("a", answering="b")
    assert b.hear(online("b"), retained=False) == Outcome()
    assert b.duplicate_of == "a" and a.duplicate_of is None


def test_a_retained_online_of_an_agent_that_died_is_not_a_rival() -> None:
    """Its Will comes when the broker notices; meanwhile nobody answers for it."""
    me = Presence(NAME, "me")
    me.connected()
    me.hear(online("ghost"), retained=True)
    me.hear(online("me"), retained=False)
    assert me.duplicate_of is None
    assert me.hear(gone("ghost", "lost"), retained=False) == Outcome(online("me"))


def test_a_late_will_of_our_own_earlier_connection_is_said_over() -> None:
    me = Presence(NAME, "me")
    me.connected()
    me.hear(online("me"), retained=False)
    assert me.hear(gone("me", "lost"), retained=False) == Outcome(online("me"))


def test_answers_are_never_answered_and_a_duplicate_never_answers() -> None:
    first = Presence(NAME, "a")
    first.connected()
    first.hear(online("a"), retained=False)
    # a third run answering someone else: it came after us, but we do not answer an answer
    assert first.hear(online("c", answering="x"), retained=False).announce is None
    second = Presence(NAME, "b")
    second.connected()
    second.hear(online("b"), retained=False)
    second.hear(online("a", answering="b"), retained=False)
    assert second.hear(online("c"), retained=False).announce is None  # "a" answers "c"
    assert second.hear(gone("c"), retained=False).announce is None  # nor says "online"


def test_a_reconnection_hears_who_came_first_again() -> None:
    second = Presence(NAME, "b")
    second.connected()
    second.hear(online("b"), retained=False)
    second.hear(online("a", answering="b"), retained=False)
    second.connected()
    assert second.duplicate_of is None  # until the first answers again
    second.hear(online("a", answering="b"), retained=True)
    second.hear(online("b"), retained=False)
    second.hear(online("a", answering="b"), retained=False)
    assert second.duplicate_of == "a"


def test_what_is_not_the_protocols_is_ignored() -> None:
    me = Presence(NAME, "me")
    me.connected()
    me.hear(online("me"), retained=False)
    for payload in ({"state": "online"}, {"state": "dancing", "run": "x"}, {"run": 7}, {}):
        assert me.hear(payload, retained=False) == Outcome()
    assert me.duplicate_of is None
