"""Who is online under this agent's MQTT name: the status protocol that keeps two agents started
with one name (a copied performance.toml, a spare machine left running) from both taking the
director's commands. Pure: the control plane (io/mqtt.py) feeds it what it hears on its own
`status` topic and does what it answers.

Every status payload names its run, a random id per process: {"state": "online", "run": "..."}.
Each agent reads its own `status` topic. The broker hands the messages of one topic to every
subscriber in one order, so all agents with one name agree on who said "online" first:
  - a run whose "online" this agent heard before its own (retained or not) is older; one heard
    after it is newer;
  - an agent that hears a newer run say "online" answers with its own "online" again, naming the
    newer run: {"state": "online", "run": "<its run>", "duplicate": "<the newer run>"}. The
    answer proves it is there (a retained "online" alone may be the last word of an agent that
    died without the broker noticing yet) and is itself never answered;
  - an agent that hears an older run live is the duplicate: it takes no commands but panic and
    mute and publishes no state while an older run is online; when the last older run says
    goodbye ("offline", or its Will "lost") it says "online" again and takes over.
The older agent keeps playing and taking commands; both say so in their logs, loudly. A goodbye
of another run, or a late Will of this run's own earlier connection, takes the retained status
from the agent that is still there: it says "online" again.

The other members of an ensemble follow the run that said "online" last (MemberRuns): what a
member's duplicate says (its states, its goodbye) is not the member's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from agent.policy.commands import SAFE_VERBS

STATES = ("online", "offline", "lost")


def new_run_id() -> str:
    """A run's id: random, so no two processes share one (and it says nothing of the client id,
    which stays secret: io/mqtt.py)."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Outcome:
    """What to do about a status heard: say "online" again (retained), and what to log."""

    announce: dict[str, Any] | None = None
    said: str = ""  # "" = nothing new to log
    loud: bool = False  # an error (two agents with one name) rather than a warning


class Presence:
    def __init__(self, name: str, run: str) -> None:
        self.name, self.run = name, run
        self._rivals: dict[str, bool] = {}  # other live runs with this name -> older than us
        self._before: set[str] = set()  # runs heard "online" before our own, this connection
        self._echoed = False  # our own "online" came back on this connection

    def status(self, state: str, answering: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"state": state, "run": self.run}
        if answering is not None:
            out["duplicate"] = answering
        return out

    @property
    def duplicate_of(self) -> str | None:
        """An older run with this name that is online (so this agent is the duplicate)."""
        return next((run for run, older in self._rivals.items() if older), None)

    def summary(self) -> dict[str, Any]:
        """Who else is online under this name, for the monitor and systemd's status line:
        {"run": ours, "duplicate_of": the older run or None, "newer": [runs that came after]}."""
        return {"run": self.run, "duplicate_of": self.duplicate_of,
                "newer": sorted(run for run, older in self._rivals.items() if not older)}

    def describe(self) -> str:
        """summary() in one line ("" when this agent is alone under its name)."""
        first, newer = self.duplicate_of, self.summary()["newer"]
        if first is not None:
            return (f"DUPLICATE: another agent named {self.name!r} (run {first}) was online "
                    "first; this one takes only panic and mute")
        if newer:
            return (f"another agent named {self.name!r} started after this one (run "
                    f"{', '.join(newer)}); it refuses commands: stop one of them")
        return ""

    def refusal(self, verb: str) -> str | None:
        """Why a command is refused while this agent is the duplicate (None: it is not)."""
        first = self.duplicate_of
        if first is None or verb in SAFE_VERBS:
            return None
        return (f"another agent named {self.name!r} (run {first}) was online first: this one "
                f"(run {self.run}) takes no commands but {' and '.join(SAFE_VERBS)} while it "
                "is there")

    def connected(self) -> None:
        """A new connection: who came first is heard again (the others answer our "online")."""
        self._rivals.clear()
        self._before.clear()
        self._echoed = False

    def hear(self, payload: dict[str, Any], retained: bool) -> Outcome:
        run, state = payload.get("run"), payload.get("state")
        if not isinstance(run, str) or state not in STATES:
            return Outcome()  # not the protocol's (an older agent, someone's test message)
        if run == self.run:
            if state == "online":
                self._echoed = True
            elif self._echoed and not retained and self.duplicate_of is None:
                return Outcome(self.status("online"))  # an earlier connection's late Will
            return Outcome()
        if state != "online":
            return self._gone(run, retained)
        if retained:
            if not self._echoed:
                self._before.add(run)
            return Outcome()
        return self._online(run, payload.get("duplicate"))

    def _online(self, run: str, answering: Any) -> Outcome:
        new = run not in self._rivals
        if answering == self.run:  # it answers our "online": it was there first
            older = True
        elif not new:
            older = self._rivals[run]
        else:
            older = run in self._before or not self._echoed
        was_duplicate = self.duplicate_of is not None
        self._rivals[run] = older
        if older:
            if was_duplicate:
                return Outcome()
            return Outcome(said=f"another agent named {self.name!r} (run {run}) was online "
                           f"before this one (run {self.run}): two agents with one name. This "
                           "one takes no commands but panic and mute and publishes no state "
                           "until the other has gone: stop one of them (check mqtt.agent)",
                           loud=True)
        said = "" if not new else (
            f"another agent named {self.name!r} (run {run}) came online after this one (run "
            f"{self.run}): two agents with one name. This one keeps taking commands; the other "
            "refuses them: stop one of them (check mqtt.agent)")
        if answering is not None or was_duplicate:
            return Outcome(said=said, loud=True)  # answers are never answered
        return Outcome(self.status("online", answering=run), said, loud=True)

    def _gone(self, run: str, retained: bool) -> Outcome:
        self._before.discard(run)
        older = self._rivals.pop(run, None)
        if self.duplicate_of is not None:
            return Outcome()
        announce = self.status("online") if self._echoed and not retained else None
        if older is None:
            return Outcome(announce)  # a goodbye of a run we never saw live took the status
        if older:
            return Outcome(announce, f"the other agent named {self.name!r} (run {run}) has "
                           f"gone: this one (run {self.run}) takes commands now")
        return Outcome(announce, f"the other agent named {self.name!r} (run {run}) has gone")


class MemberRuns:
    """Which run speaks for each other member: the one that said "online" last."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}

    def take(self, name: str, kind: str, payload: dict[str, Any]) -> bool:
        """Whether a message of member `name`'s (on its `kind` topic) is the member's own;
        the protocol's fields ("run", "duplicate") are taken out of `payload`."""
        run = payload.pop("run", None)
        payload.pop("duplicate", None)
        if not isinstance(run, str):  # an agent without runs
            return True
        if kind == "status" and payload.get("state") == "online":
            self._runs[name] = run
            return True
        return self._runs.get(name, run) == run
