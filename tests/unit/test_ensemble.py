"""Several agents in one piece (policy/ensemble.py): presence, turns, crossing leads, the beat."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from agent import config
from agent.clock import ManualClock
from agent.io.remote import Remote
from agent.policy.ensemble import (
    GRID_FRESH_NS,
    OFFSET_SAMPLES,
    ClockOffsets,
    Ensemble,
    PeerMessageError,
    check_peer_fields,
)
from agent.record.log import read_log
from agent.record.session import Session

MEMBERS = ("keys", "bass", "drums")
S = 1_000_000_000


def band(me: str = "keys", leader: str = "") -> Ensemble:
    e = Ensemble(MEMBERS, me, leader)
    for name in MEMBERS:
        if name != me:
            e.hear_peer(name, 0, {"status": "online"})
    return e


def test_the_first_member_that_can_lead_has_the_first_turn() -> None:
    assert band("keys").may_lead(S) == (True, "my turn")
    assert band("bass").may_lead(S) == (False, "keys's turn")
    assert band("keys").turn(i_can_lead=False) == "bass"


def test_turns_go_round_in_the_members_order() -> None:
    e = band("bass")
    e.hear_peer("keys", S, {"role": "lead", "until": 2 * S})
    assert e.may_lead(S + 1) == (False, "keys leads")
    assert e.may_lead(2 * S) == (True, "my turn")  # keys's phrase is over: bass is next
    e.lead(3 * S)
    assert e.last_lead == "bass"
    assert e.turn(True) == "drums"
    e.hear_peer("drums", 3 * S, {"role": "lead", "until": 4 * S})
    assert e.turn(True) == "keys"


def test_members_offline_or_unable_to_lead_are_skipped() -> None:
    e = band("drums")
    e.hear_peer("keys", S, {"role": "lead", "until": 2 * S})
    e.hear_peer("bass", S, {"can_lead": False})  # an accompanist
    assert e.turn(True) == "drums"
    e.hear_peer("bass", S, {"can_lead": True})
    e.hear_peer("bass", S, {"status": "lost"})
    assert e.turn(True) == "drums"
    assert e.may_lead(3 * S) == (True, "my turn")


def test_a_member_that_goes_away_while_leading_leads_no_more() -> None:
    e = band("bass")
    e.hear_peer("keys", S, {"role": "lead", "until": None})  # until it says otherwise
    assert e.leading_peer(10 * S) == "keys"
    assert e.peer_roles(10 * S) == {"keys": "soloing"}
    e.hear_peer("keys", 10 * S, {"status": "lost"})
    assert e.leading_peer(10 * S) is None
    assert e.peer_roles(10 * S) == {}
    assert e.may_lead(10 * S) == (True, "my turn")


def test_alone_an_agent_has_every_turn() -> None:
    e = Ensemble(MEMBERS, "bass")  # nobody else heard from: all offline
    assert e.may_lead(S) == (True, "my turn")
    e.lead(2 * S)
    assert e.may_lead(3 * S) == (True, "my turn")
    assert e.turn(i_can_lead=False) is None


def test_crossing_leads_the_later_member_yields() -> None:
    keys, bass = band("keys"), band("bass")
    keys.lead(3 * S)
    bass.lead(3 * S)  # both decided before hearing the other
    assert bass.hear_peer("keys", S + 5, {"role": "lead", "until": 3 * S}) is True
    assert not bass.is_leading(S + 5)
    assert bass.last_lead == "keys"
    assert keys.hear_peer("bass", S + 5, {"role": "lead", "until": 3 * S}) is False
    assert keys.is_leading(S + 5)
    assert keys.last_lead == "keys"
    # afterwards both agree whose turn is next
    assert keys.turn(True) == bass.turn(True) == "bass"


def test_a_lead_heard_while_resting_passes_the_turn_on() -> None:
    e = band("keys")
    assert e.hear_peer("bass", S, {"role": "lead", "until": 2 * S}) is False
    assert e.last_lead == "bass"
    assert e.turn(True) == "drums"


def test_the_tempo_leaders_beat_is_shared_while_fresh() -> None:
    e = band("bass", leader="keys")
    assert e.shared_grid(S) is None
    e.hear_peer("keys", S, {"role": "rest", "grid": [S // 2, 500_000_000]})
    assert e.shared_grid(S) == (S // 2, 500_000_000)
    assert e.shared_grid(S + GRID_FRESH_NS) == (S // 2, 500_000_000)
    assert e.shared_grid(S + GRID_FRESH_NS + 1) is None
    e.hear_peer("keys", 2 * S, {"grid": None})
    assert e.shared_grid(2 * S) is None
    e.hear_peer("keys", 3 * S, {"grid": [3 * S, 400_000_000]})
    e.hear_peer("keys", 3 * S, {"status": "offline"})
    assert e.shared_grid(3 * S) is None


def test_the_leader_follows_nobody_and_others_grids_are_ignored() -> None:
    e = band("keys", leader="keys")
    e.hear_peer("bass", S, {"grid": [S, 500_000_000]})
    assert e.shared_grid(S) is None
    assert band("keys").shared_grid(S) is None  # no leader configured


def test_announce() -> None:
    e = band("keys", leader="keys")
    e.lead(2 * S)
    assert e.announce("lead", True, (S, 500_000_000)) == {
        "role": "lead", "until": 2 * S, "can_lead": True, "grid": [S, 500_000_000]}
    assert e.announce("rest", True, None) == {
        "role": "rest", "until": None, "can_lead": True, "grid": None}
    follower = band("bass", leader="keys")
    assert follower.announce("comp", False, (S, 500_000_000))["grid"] is None


@pytest.mark.parametrize(("fields", "error"), [
    ({"status": "gone"}, "status must be one of online, offline, lost"),
    ({"role": "solo"}, "role must be one of lead, comp, rest"),
    ({"until": 1.5}, "until must be a time in ns or null"),
    ({"until": True}, "until must be a time in ns or null"),
    ({"can_lead": 1}, "can_lead must be true or false"),
    ({"grid": [1, 5]}, "grid must be [beat time ns, period ns] (a period of 0.1 to 3 s) or null"),
    ({"grid": [1.0, 500_000_000]},
     "grid must be [beat time ns, period ns] (a period of 0.1 to 3 s) or null"),
    ({"grid": "fast"}, "grid must be [beat time ns, period ns] (a period of 0.1 to 3 s) or null"),
    ({"mode": "solo"}, "unknown field 'mode'"),
])
def test_bad_peer_fields_are_named(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(PeerMessageError) as info:
        check_peer_fields(fields)
    assert str(info.value) == error


def test_good_peer_fields_pass_unchanged() -> None:
    fields = {"status": "online", "role": "lead", "until": 5, "can_lead": True,
              "grid": [1, 500_000_000]}
    assert check_peer_fields(fields) == fields


def test_a_retained_lead_from_a_member_gone_does_not_hold_the_floor() -> None:
    """At start-up the broker hands over each member's last state: a member that died while
    leading left "lead" behind. Only its status says whether it is there."""
    e = Ensemble(MEMBERS, "keys")
    e.hear_peer("bass", S, {"status": "lost"})
    e.hear_peer("bass", S, {"role": "lead", "until": None, "can_lead": True, "retained": True})
    assert e.leading_peer(S) is None
    assert e.may_lead(S) == (True, "my turn")
    e.hear_peer("bass", 2 * S, {"role": "lead", "until": 3 * S})  # live: it is there after all
    assert e.leading_peer(2 * S) == "bass"


def test_retained_must_be_a_boolean() -> None:
    with pytest.raises(PeerMessageError, match="retained must be true or false"):
        check_peer_fields({"retained": "yes"})


def test_an_agent_that_cannot_lead_never_takes_the_floor() -> None:
    e = band("keys")  # keys's turn, but muted
    assert e.may_lead(S, i_can_lead=False) == (
        False, "cannot lead (muted, or a mode without lead parts)")


def test_a_turn_not_taken_passes_on() -> None:
    """bass's turn, but bass never hears a phrase end: after one phrase end it is drums's."""
    e = band("drums")
    e.hear_peer("keys", S, {"role": "lead", "until": 2 * S})
    assert e.may_lead(3 * S) == (False, "bass's turn")
    e.pass_turn()
    assert e.may_lead(4 * S) == (True, "my turn")


def test_only_a_lead_going_on_now_from_a_member_there_makes_a_leader_yield() -> None:
    e = band("bass")
    e.lead(5 * S)
    e.hear_peer("keys", S, {"status": "lost"})
    assert e.hear_peer("keys", S, {"role": "lead", "until": 9 * S, "retained": True}) is False
    e.hear_peer("keys", S, {"status": "online"})
    assert e.hear_peer("keys", 2 * S, {"role": "lead", "until": S}) is False  # already over
    assert e.is_leading(2 * S) and e.last_lead == "bass"
    assert e.hear_peer("keys", 2 * S, {"role": "lead", "until": 4 * S}) is True


def test_bad_peer_messages_reach_the_log_cut_short_and_once_a_second(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A member gone wrong (here: a 1 MB unknown field, 50 times) must not flood the log."""
    cfg = config.from_dict({
        "performance": {"name": "duo"},
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"mode": "call-response", "outputs": ["synth"]},
        "mqtt": {"host": "127.0.0.1", "agent": "keys"},
        "ensemble": {"members": ["keys", "bass"]},
    }, str(tmp_path / "performance.toml"))
    session = Session(cfg, ManualClock(S), lambda port, data: True, tmp_path / "rec",
                      {"clock": "manual"})
    remote = Remote(cfg, session)
    with caplog.at_level(logging.WARNING, logger="agent.io.remote"):
        for _ in range(50):
            remote._peer("bass", "state/ensemble", {"clock": S, "x" * 1_000_000: 1}, False)
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("ensemble: bass's state/ensemble ignored: unknown field 'xxx")
    assert said.endswith("... (1000016 characters)") and len(said) < 400
    session.stop(session.clock.now_ns())
    session.finish()
    assert [r for r in read_log(session.log.path)[1] if r["k"] == "ctl"
            and r["what"] == "peer"] == []  # nothing of it was taken


def test_a_members_clock_offset_is_the_least_delayed_of_its_recent_messages() -> None:
    """Its clock runs 1000 s behind ours; messages take 1 to 40 ms to arrive."""
    offsets = ClockOffsets()
    assert offsets.offset("bass") is None  # nothing heard yet
    ms = 1_000_000
    for k, transit in enumerate((40, 3, 25, 1, 9)):
        sent = k * S
        offsets.hear("bass", sent, sent + 1000 * S + transit * ms)
    assert offsets.offset("bass") == 1000 * S + 1 * ms
    for k in range(OFFSET_SAMPLES):  # the 1 ms sample leaves the window
        offsets.hear("bass", k * S, k * S + 1000 * S + 2 * ms)
    assert offsets.offset("bass") == 1000 * S + 2 * ms
    offsets.hear("bass", 100 * S, 100 * S + 1000 * S + 5 * ms)  # over a minute later
    assert offsets.offset("bass") == 1000 * S + 5 * ms  # the others are too old to trust
    offsets.forget("bass")  # gone: its next clock may be another machine's
    assert offsets.offset("bass") is None
