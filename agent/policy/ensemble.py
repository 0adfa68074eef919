"""Several agents in one piece: who is there, whose beat, whose turn. Pure; times are the
agent's own clock (the service moves the peers' times onto it at the edge, with ClockOffsets).

Each agent announces its ensemble state (retained `state/ensemble` over MQTT):

    {"role": "lead" | "comp" | "rest", "until": end of the lead phrase, "can_lead": bool,
     "grid": [beat time, beat period] | null,          (the tempo leader's beat; others: null)
     "clock": the sender's clock when it was sent}     (times: ns on the sender's own clock)

and watches the other members' `status` (presence) and `state/ensemble`. Every peer message is
recorded as a `peer` control, so a replay makes the same decisions.

Turn-taking by role. A lead part (answer, continue, mirror, solo) is played only by the member
whose turn it is, and never while another member leads:
  - the turn is the next member, in `ensemble.members` order, after the one that led last, among
    the members that are online and can lead (their mode has lead parts); the first such member
    before anyone has led;
  - a member that cannot lead now comps under the leader (auto mode: the leading peer counts as a
    soloist) or stays out;
  - two members that start leading at once (their announcements crossed): the one later in
    `members` order drops the rest of its phrase.
A shared tempo: members other than `ensemble.tempo_leader` play to the leader's announced beat
while it is fresh, unless a MIDI clock runs (the clock still wins).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Any

LEAD, COMP, REST = "lead", "comp", "rest"
ROLES = (LEAD, COMP, REST)
PRESENCE = ("online", "offline", "lost")
GRID_FRESH_NS = 8_000_000_000  # a leader's beat older than this is not followed any more
# Offset samples kept per member: the last 16 (the tempo leader announces once a bar: about
# half a minute), none older than a minute, over which two crystal clocks that no NTP
# disciplines (50 ppm apart at worst) drift apart by at most 3 ms.
OFFSET_SAMPLES = 16
OFFSET_MAX_AGE_NS = 60_000_000_000


@dataclass(frozen=True)
class PeerState:
    online: bool = False
    role: str = REST
    until_ns: int | None = None  # when its lead phrase ends (None: until it says otherwise)
    can_lead: bool = True
    grid: tuple[int, int] | None = None  # (a beat's time, the period), from the tempo leader
    grid_ns: int = 0  # when that beat was heard


class ClockOffsets:
    """Each member's clock mapped onto this agent's, measured from its messages, so a shared
    beat owes nothing to the wall clock (an NTP step moved it) or to NTP at all.

    A message stamped `sent` on the member's clock and heard at `heard` on ours gives
    heard - sent = offset + transit; transit is never negative and is smallest for the messages
    that queued least, so the smallest of the last OFFSET_SAMPLES samples estimates the offset
    (too late by the shortest transit: through a broker on a stage network, about a ms). The
    agents' clocks are monotonic, so nothing steps them; the window follows their slow drift.
    """

    def __init__(self, samples: int = OFFSET_SAMPLES,
                 max_age_ns: int = OFFSET_MAX_AGE_NS) -> None:
        self._samples, self._max_age_ns = samples, max_age_ns
        self._heard: dict[str, deque[tuple[int, int]]] = {}  # (heard, heard - sent)

    def hear(self, name: str, sent_ns: int, heard_ns: int) -> None:
        """A message sent just now (never one the broker kept from earlier: its transit is
        unknown)."""
        heard = self._heard.setdefault(name, deque(maxlen=self._samples))
        heard.append((heard_ns, heard_ns - sent_ns))
        while heard_ns - heard[0][0] > self._max_age_ns:
            heard.popleft()  # the newest always stays

    def offset(self, name: str) -> int | None:
        """Add it to a time on `name`'s clock for ours; None before a fresh message."""
        heard = self._heard.get(name)
        return min(sample for _t, sample in heard) if heard else None

    def forget(self, name: str) -> None:
        """The member has gone: when it is back its clock may be another (a restart, another
        machine under its name)."""
        self._heard.pop(name, None)


class PeerMessageError(ValueError):
    """A peer's message that cannot be taken (it is ignored and reported, never applied)."""


def check_peer_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A peer message's fields, checked: `status` (presence) and/or the ensemble state's
    `role`, `until`, `can_lead`, `grid` (times already on this agent's clock, ns), and
    `retained` (the broker kept it from earlier: not a sign that the member is there now)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "status":
            if value not in PRESENCE:
                raise PeerMessageError(f"status must be one of {', '.join(PRESENCE)}")
        elif key == "role":
            if value not in ROLES:
                raise PeerMessageError(f"role must be one of {', '.join(ROLES)}")
        elif key == "until":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise PeerMessageError("until must be a time in ns or null")
        elif key in ("can_lead", "retained"):
            if not isinstance(value, bool):
                raise PeerMessageError(f"{key} must be true or false")
        elif key == "grid":
            if value is not None and not (
                    isinstance(value, list | tuple) and len(value) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                    and 100_000_000 <= value[1] <= 3_000_000_000):
                raise PeerMessageError("grid must be [beat time ns, period ns] "
                                       "(a period of 0.1 to 3 s) or null")
        else:
            raise PeerMessageError(f"unknown field {key!r}")
        out[key] = value
    return out


class Ensemble:
    def __init__(self, members: tuple[str, ...], me: str, tempo_leader: str = "") -> None:
        self.members, self.me, self.tempo_leader = members, me, tempo_leader
        self.peers = {m: PeerState() for m in members if m != me}
        self.last_lead: str | None = None
        self.leading_until: int | None = None  # my own lead phrase ends then (None: not leading)

    def hear_peer(self, name: str, t_ns: int, fields: dict[str, Any]) -> bool:
        """Apply a peer's checked message; True if this agent must yield its own lead now
        (both started leading at once and the peer comes first in the members' order)."""
        state = self.peers[name]
        changes: dict[str, Any] = {}
        if "status" in fields:
            changes["online"] = fields["status"] == "online"
            if not changes["online"]:  # gone: it leads nothing and beats no time any more
                changes.update(role=REST, until_ns=None, grid=None)
        for key, attr in (("role", "role"), ("until", "until_ns"), ("can_lead", "can_lead")):
            if key in fields:
                changes[attr] = fields[key]
        if "role" in fields and not fields.get("retained"):
            changes["online"] = True  # it speaks now, so it is there (a retained state may be
            # the last word of a member long gone: only its status says whether it is there)
        if "grid" in fields:
            grid = fields["grid"]
            changes["grid"] = None if grid is None else (grid[0], grid[1])
            changes["grid_ns"] = t_ns
        self.peers[name] = dataclasses.replace(state, **changes)
        if fields.get("role") != LEAD or fields.get("retained") or \
                not _leads(self.peers[name], t_ns):
            return False  # only a lead going on now, from a member that is there, takes turns
        if self.is_leading(t_ns) and self._before(name, self.me):
            self.leading_until = None
            self.last_lead = name
            return True
        if not self.is_leading(t_ns):
            self.last_lead = name
        return False

    def is_leading(self, t_ns: int) -> bool:
        return self.leading_until is not None and self.leading_until > t_ns

    def leading_peer(self, t_ns: int) -> str | None:
        """A member other than this one that leads now."""
        return next((name for name, p in self.peers.items() if _leads(p, t_ns)), None)

    def turn(self, i_can_lead: bool) -> str | None:
        """Whose turn it is to lead next (None: nobody can)."""
        able = [m for m in self.members if (
            i_can_lead if m == self.me else self.peers[m].online and self.peers[m].can_lead)]
        if not able:
            return None
        if self.last_lead not in self.members:
            return able[0]
        after = self.members.index(self.last_lead)
        return min(able, key=lambda m: (self.members.index(m) - after - 1) % len(self.members))

    def may_lead(self, t_ns: int, i_can_lead: bool = True) -> tuple[bool, str]:
        """(whether this agent may start a lead phrase now, why) — the why is logged."""
        if not i_can_lead:
            return False, "cannot lead (muted, or a mode without lead parts)"
        peer = self.leading_peer(t_ns)
        if peer is not None:
            return False, f"{peer} leads"
        turn = self.turn(i_can_lead)
        if turn != self.me:
            return False, f"{turn}'s turn"
        return True, "my turn"

    def pass_turn(self, i_can_lead: bool = True) -> None:
        """A phrase end went by, nobody leading, and it was another member's turn: that turn is
        used up (taken or not), so the next phrase end goes to the next member. Without this,
        a member that never hears a phrase end (other players, a port gone) would hold the
        turn for ever."""
        self.last_lead = self.turn(i_can_lead)

    def lead(self, until_ns: int) -> None:
        """This agent starts a lead phrase ending at `until_ns`."""
        self.last_lead = self.me
        self.leading_until = until_ns

    def stop_leading(self) -> None:
        self.leading_until = None

    def peer_roles(self, t_ns: int) -> dict[str, str]:
        """Members leading now, as soloists for the modes' table (policy/modes.choose)."""
        peer = self.leading_peer(t_ns)
        return {} if peer is None else {peer: "soloing"}

    def shared_grid(self, t_ns: int) -> tuple[int, int] | None:
        """The tempo leader's beat, if this agent follows one and it is fresh."""
        if not self.tempo_leader or self.tempo_leader == self.me:
            return None
        p = self.peers[self.tempo_leader]
        if not p.online or p.grid is None or t_ns - p.grid_ns > GRID_FRESH_NS:
            return None
        return p.grid

    def announce(self, role: str, can_lead: bool,
                 grid: tuple[int, int] | None) -> dict[str, Any]:
        """This agent's ensemble state (grid only from the tempo leader)."""
        return {"role": role, "until": self.leading_until if role == LEAD else None,
                "can_lead": can_lead,
                "grid": list(grid) if grid is not None and self.me == self.tempo_leader
                else None}

    def _before(self, a: str, b: str) -> bool:
        return self.members.index(a) < self.members.index(b)


def _leads(p: PeerState, t_ns: int) -> bool:
    return p.online and p.role == LEAD and (p.until_ns is None or p.until_ns > t_ns)
