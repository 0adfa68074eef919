"""Plan-ahead on a real scheduler and a manual clock: what is committed when, what a drop or a
revision may still change, and what reaches the ports."""

from __future__ import annotations

from dataclasses import replace

from agent import midi
from agent.clock import ManualClock
from agent.events import Emitted, PlannedNote
from agent.schedule.plan_ahead import PlanAhead
from agent.schedule.scheduler import Scheduler

MS = 1_000_000
HORIZON = 100 * MS
N1 = PlannedNote(50 * MS, 60, 80, 100 * MS)
N2 = PlannedNote(300 * MS, 62, 81, 100 * MS)
N3 = PlannedNote(600 * MS, 64, 82, 100 * MS)


class Rig:
    def __init__(self, ports: tuple[str, ...] = ("out",), horizon_ns: int = HORIZON) -> None:
        self.clock = ManualClock()
        self.emitted: list[Emitted] = []
        self.scheduler = Scheduler(self.clock, lambda port, data: True, 10_000 * MS,
                                   lambda e, why: self.emitted.append(e))
        self.changes: list[int] = []
        self.started: list[tuple[int, str, PlannedNote]] = []
        self.plan = PlanAhead(self.scheduler, ports, 2, horizon_ns,
                              on_start=lambda tag, n: self.started.append(
                                  (self.clock.now_ns(), tag, n)),
                              on_change=self.changes.append)

    def run_to(self, t_ns: int) -> None:
        """Wake at every deadline up to t_ns, as the real-time driver does, then at t_ns."""
        while (due := self.scheduler.next_deadline()) is not None and due <= t_ns:
            self.clock.advance_to(due)
            self.scheduler.run_due(due)
        self.clock.advance_to(t_ns)

    def messages(self) -> list[tuple[int, str, bytes, int | None]]:
        return [(e.deadline_ns // MS, e.port, e.data, e.cause_ns) for e in self.emitted]


def on(n: PlannedNote) -> bytes:
    return midi.note_on(2, n.pitch, n.velocity)


def off(n: PlannedNote) -> bytes:
    return midi.note_off(2, n.pitch)


def test_notes_within_the_horizon_are_committed_and_later_ones_by_the_commit_timer() -> None:
    r = Rig()
    r.plan.set("answer", [N3, N1, N2], 0, cause_ns=7)
    assert r.plan.view(0) == [(N1, True), (N2, False), (N3, False)]
    assert r.plan.tentative("answer") == [N2, N3]
    assert r.changes == [0]

    r.run_to(199 * MS)
    assert r.plan.tentative("answer") == [N2, N3]  # N2 commits at its start minus the horizon
    r.run_to(200 * MS)
    assert r.plan.tentative("answer") == [N3]
    assert r.plan.view(200 * MS) == [(N2, True), (N3, False)]  # N1 has started
    assert r.changes == [0, 200 * MS]

    r.run_to(2000 * MS)
    assert r.messages() == [
        (50, "out", on(N1), 7),  # the cause goes with the first note only
        (150, "out", off(N1), None),
        (300, "out", on(N2), None),
        (400, "out", off(N2), None),
        (600, "out", on(N3), None),
        (700, "out", off(N3), None),
    ]
    assert all(e.sent_ns == e.deadline_ns for e in r.emitted)
    assert r.changes == [0, 200 * MS, 500 * MS]
    assert r.started == [(50 * MS, "answer", N1), (300 * MS, "answer", N2),
                         (600 * MS, "answer", N3)]
    assert r.plan.view(2000 * MS) == []
    assert r.scheduler.ledger.sounding() == []


def test_a_note_at_the_horizon_is_committed_at_once() -> None:
    r = Rig()
    at_horizon = replace(N2, start_ns=HORIZON)
    r.plan.set("answer", [at_horizon], 0)
    assert r.plan.view(0) == [(at_horizon, True)]


def test_every_port_plays_every_note() -> None:
    r = Rig(ports=("a", "b"))
    r.plan.set("answer", [N1], 0)
    r.run_to(1000 * MS)
    assert r.messages() == [(50, "a", on(N1), None), (50, "b", on(N1), None),
                            (150, "a", off(N1), None), (150, "b", off(N1), None)]


def test_drop_cancels_tentative_and_unstarted_committed_notes() -> None:
    r = Rig()
    n1b = PlannedNote(80 * MS, 67, 90, 100 * MS)  # committed (within the horizon), not started
    r.plan.set("answer", [N1, n1b, N2, N3], 0)
    r.run_to(60 * MS)  # N1 sounds
    assert r.plan.drop("answer", 60 * MS) is True
    assert r.plan.view(60 * MS) == []
    assert r.plan.tentative("answer") == []
    assert r.plan.busy_until("answer") is None
    assert r.changes == [0, 60 * MS]

    r.run_to(5000 * MS)
    assert r.messages() == [(50, "out", on(N1), None), (150, "out", off(N1), None)]
    assert r.started == [(50 * MS, "answer", N1)]  # no on_start for dropped notes
    assert r.changes == [0, 60 * MS]  # the commit timer went too
    assert r.scheduler.ledger.sounding() == []
    assert r.plan.drop("answer", 5000 * MS) is False  # nothing left to drop


def test_dropping_a_part_that_has_all_started_drops_nothing() -> None:
    r = Rig()
    r.plan.set("answer", [N1], 0)
    r.run_to(60 * MS)
    assert r.plan.drop("answer", 60 * MS) is False
    r.run_to(1000 * MS)
    assert r.messages() == [(50, "out", on(N1), None), (150, "out", off(N1), None)]
    assert r.scheduler.ledger.sounding() == []


def test_drop_of_an_unknown_part() -> None:
    r = Rig()
    assert r.plan.drop("answer", 0) is False
    assert r.changes == []


def test_drop_leaves_other_parts_and_drop_all_takes_every_part() -> None:
    r = Rig()
    comp = [PlannedNote(300 * MS, 48, 60, 200 * MS), PlannedNote(300 * MS, 52, 60, 200 * MS)]
    r.plan.set("answer", [N1, N2, N3], 0)
    r.plan.set("comp", comp, 0)
    assert r.plan.view(0) == [(N1, True), (comp[0], False), (comp[1], False), (N2, False),
                              (N3, False)]  # by start, then pitch
    r.plan.drop("answer", 10 * MS)
    assert r.plan.view(10 * MS) == [(comp[0], False), (comp[1], False)]
    r.run_to(1000 * MS)
    assert [(t, d) for t, _p, d, _c in r.messages()] == [
        (300, on(comp[0])), (300, on(comp[1])), (500, off(comp[0])), (500, off(comp[1]))]

    r.plan.set("answer", [replace(N3, start_ns=1500 * MS)], 1000 * MS)
    r.plan.set("comp", [replace(comp[0], start_ns=1500 * MS)], 1000 * MS)
    r.plan.drop_all(1000 * MS)
    r.run_to(3000 * MS)
    assert len(r.messages()) == 4
    assert r.plan.view(3000 * MS) == []


def test_revise_changes_only_tentative_notes() -> None:
    r = Rig()
    r.plan.set("answer", [N1, N2, N3], 0)
    r.plan.revise(lambda n: replace(n, pitch=n.pitch + 12, velocity=100), 10 * MS)
    up2, up3 = replace(N2, pitch=74, velocity=100), replace(N3, pitch=76, velocity=100)
    assert r.plan.view(10 * MS) == [(N1, True), (up2, False), (up3, False)]
    assert r.changes == [0, 10 * MS]
    r.run_to(1000 * MS)
    assert [d for _t, _p, d, _c in r.messages()] == [
        on(N1), off(N1), on(up2), off(up2), on(up3), off(up3)]


def test_revise_after_a_commit_leaves_the_committed_note() -> None:
    r = Rig()
    r.plan.set("answer", [N1, N2, N3], 0)
    r.run_to(250 * MS)  # N2 committed at 200
    r.plan.revise(lambda n: replace(n, pitch=0), 250 * MS)
    r.run_to(1000 * MS)
    assert [n.pitch for n in (s[2] for s in r.started)] == [60, 62, 0]


def test_muted_plans_but_plays_nothing() -> None:
    r = Rig()
    r.plan.muted = True
    r.plan.set("answer", [N1, N2, N3], 0)
    assert r.plan.view(0) == [(N1, True), (N2, False), (N3, False)]
    r.run_to(5000 * MS)
    assert r.emitted == []
    assert r.started == []
    assert r.changes == [0, 200 * MS, 500 * MS]  # the plan still moves on


def test_unmuting_plays_what_is_committed_from_then_on() -> None:
    r = Rig()
    r.plan.muted = True
    r.plan.set("answer", [N1, N2, N3], 0)
    r.run_to(250 * MS)  # N1 and N2 committed while muted
    r.plan.muted = False
    r.run_to(5000 * MS)
    assert [d for _t, _p, d, _c in r.messages()] == [on(N3), off(N3)]


def test_set_again_replaces_tentative_notes_and_keeps_committed_ones() -> None:
    r = Rig()
    r.plan.set("answer", [N1, N2], 0)
    r.run_to(100 * MS)
    early = PlannedNote(50 * MS, 70, 90, 100 * MS)  # not after the last committed note (N1)
    late = PlannedNote(400 * MS, 72, 90, 100 * MS)
    r.plan.set("answer", [late, early], 100 * MS)
    assert r.plan.tentative("answer") == [late]
    r.run_to(2000 * MS)
    assert [(t, d) for t, _p, d, _c in r.messages()] == [
        (50, on(N1)), (150, off(N1)), (400, on(late)), (500, off(late))]


def test_a_part_can_have_its_own_horizon() -> None:
    r = Rig()
    comp = [PlannedNote(t * MS, 48, 60, 100 * MS) for t in (200, 500, 800)]
    r.plan.set("comp", comp, 0, horizon_ns=250 * MS)
    assert r.plan.view(0) == [(comp[0], True), (comp[1], False), (comp[2], False)]
    r.plan.set("answer", [N2], 0)  # the default horizon for another part
    assert r.plan.view(0)[1] == (N2, False)
    r.run_to(249 * MS)
    assert r.plan.tentative("comp") == [comp[1], comp[2]]
    r.run_to(250 * MS)
    assert r.plan.tentative("comp") == [comp[2]]
    r.run_to(550 * MS)
    assert r.plan.tentative("comp") == []
    assert r.changes == [0, 0, 200 * MS, 250 * MS, 550 * MS]


def test_busy_until_is_the_end_of_the_last_note() -> None:
    r = Rig()
    assert r.plan.busy_until("answer") is None
    long_first = PlannedNote(50 * MS, 60, 80, 2000 * MS)
    r.plan.set("answer", [long_first, N2, N3], 0)
    assert r.plan.busy_until("answer") == 2050 * MS
    r.plan.set("comp", [N3], 0)
    assert r.plan.busy_until("comp") == 700 * MS


def test_replanning_keeps_one_commit_timer() -> None:
    r = Rig()
    notes = [PlannedNote(t * MS, 48, 60, 100 * MS) for t in (1000, 2000, 3000)]
    r.plan.set("comp", notes, 0)
    r.plan.set("comp", notes, 10 * MS)  # the same plan again
    r.run_to(5000 * MS)
    assert r.changes == [0, 10 * MS, 900 * MS, 1900 * MS, 2900 * MS]
