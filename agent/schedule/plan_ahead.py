"""Plan-ahead: the agent's next notes, committed a short horizon ahead, the rest still open.

A plan is kept per part (an answer, a comp). Notes starting within `horizon_ns` of now are
committed: handed to the scheduler, they will play. Later notes stay tentative: a commit timer
hands them over as their time comes, and until then they can be revised (the controls change,
the harmony moves) or dropped (a player comes in). Every change is reported through `on_change`,
so the visuals and the control plane can show what is coming.

Deterministic: everything runs on scheduler timers at their deadlines, as the rest of the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.events import PlannedNote
from agent.schedule.scheduler import Scheduler


@dataclass
class _Part:
    tentative: list[PlannedNote] = field(default_factory=list)  # by start time
    committed: list[PlannedNote] = field(default_factory=list)  # handed over, maybe not started
    cause_ns: int | None = None  # the first committed note's cause (what it reacts to)
    horizon_ns: int = 0
    timer: int = 0  # the live commit timer's number: an older one (replaced by set) does nothing


class PlanAhead:
    def __init__(self, scheduler: Scheduler, ports: Sequence[str], channel: int,
                 horizon_ns: int, on_start: Callable[[str, PlannedNote], None] | None = None,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.scheduler = scheduler
        self.ports = tuple(ports)
        self.channel = channel
        self.horizon_ns = horizon_ns
        self.muted = False
        self._on_start = on_start
        self._on_change = on_change
        self._parts: dict[str, _Part] = {}

    def set(self, tag: str, notes: Sequence[PlannedNote], now_ns: int,
            cause_ns: int | None = None, horizon_ns: int | None = None,
            guard_ns: int = 0) -> None:
        """Replace the part's tentative notes with `notes`. Committed notes play on, and are
        final: new notes starting before now, or not more than `guard_ns` after the last
        committed one, are left out (a replanned grid that moved a little must not strike the
        same beat twice)."""
        part = self._parts.setdefault(tag, _Part())
        last = max((n.start_ns for n in part.committed), default=None)
        part.tentative = sorted((n for n in notes if n.start_ns >= now_ns and (
            last is None or n.start_ns > last + guard_ns)), key=lambda n: n.start_ns)
        part.cause_ns = cause_ns
        part.horizon_ns = self.horizon_ns if horizon_ns is None else horizon_ns
        self._commit_due(tag, now_ns)
        self._changed(now_ns)

    def drop(self, tag: str, now_ns: int) -> bool:
        """Forget the part: tentative notes, and committed ones that have not started."""
        part = self._parts.pop(tag, None)
        cancelled = self.scheduler.cancel(tag)
        if part is None:
            return cancelled > 0
        dropped = bool(part.tentative) or any(n.start_ns > now_ns for n in part.committed)
        self._changed(now_ns)
        return dropped or cancelled > 0

    def drop_all(self, now_ns: int) -> None:
        for tag in list(self._parts):
            self.drop(tag, now_ns)

    def revise(self, change: Callable[[PlannedNote], PlannedNote], now_ns: int) -> None:
        """Apply a change to every tentative note (what is committed is no longer open)."""
        for part in self._parts.values():
            part.tentative = [change(n) for n in part.tentative]
        self._changed(now_ns)

    def tentative(self, tag: str) -> list[PlannedNote]:
        part = self._parts.get(tag)
        return list(part.tentative) if part else []

    def busy_until(self, tag: str) -> int | None:
        """When the part's last note ends (None: nothing planned)."""
        part = self._parts.get(tag)
        notes = (part.committed + part.tentative) if part else []
        return max((n.start_ns + n.duration_ns for n in notes), default=None)

    def view(self, now_ns: int) -> list[tuple[PlannedNote, bool]]:
        """Every note still to start, by start time, with whether it is committed."""
        out = [(n, True) for p in self._parts.values() for n in p.committed if n.start_ns >= now_ns]
        out += [(n, False) for p in self._parts.values() for n in p.tentative]
        return sorted(out, key=lambda x: (x[0].start_ns, x[0].pitch))

    def _commit_due(self, tag: str, now_ns: int) -> None:
        part = self._parts.get(tag)
        if part is None:
            return
        part.committed = [n for n in part.committed if n.start_ns + n.duration_ns > now_ns]
        limit = now_ns + part.horizon_ns
        while part.tentative and part.tentative[0].start_ns <= limit:
            note = part.tentative.pop(0)
            part.committed.append(note)
            if not self.muted:
                self._play(tag, note, part.cause_ns)
            part.cause_ns = None
        part.timer += 1
        if part.tentative:
            serial = part.timer
            self.scheduler.call_at(part.tentative[0].start_ns - part.horizon_ns,
                                   lambda t: self._commit_timer(tag, serial, t), tag=tag)

    def _commit_timer(self, tag: str, serial: int, t_ns: int) -> None:
        part = self._parts.get(tag)
        if part is None or part.timer != serial:
            return  # the part was replanned since: its own timer is armed
        self._commit_due(tag, t_ns)
        self._changed(t_ns)

    def _play(self, tag: str, note: PlannedNote, cause_ns: int | None) -> None:
        for port in self.ports:
            self.scheduler.play(note.start_ns, note.duration_ns, port, self.channel, note.pitch,
                                note.velocity, tag=tag, cause_ns=cause_ns)
        if self._on_start is not None:  # e.g. the model hears the agent's notes as they start
            on_start = self._on_start
            self.scheduler.call_at(note.start_ns, lambda t: on_start(tag, note), tag=tag)

    def _changed(self, now_ns: int) -> None:
        if self._on_change is not None:
            self._on_change(now_ns)
