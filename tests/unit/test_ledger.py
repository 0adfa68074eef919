"""The ledger invariant, as a property over random event streams with injected failures:
every note-on that leaves has exactly one later note-off on the same port/channel/pitch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import midi
from agent.clock import ManualClock
from agent.events import Emitted, NoteId
from agent.schedule.scheduler import Scheduler

PORTS = ("a", "b")
MAX_NOTE_NS = 5_000


def make(fail_ports: set[str]) -> tuple[Scheduler, list[Emitted], ManualClock]:
    clock = ManualClock()
    emitted: list[Emitted] = []

    def sink(port: str, data: bytes) -> bool:
        if port in fail_ports:
            raise OSError("port gone")  # a sink that raises must not lose the ledger's books
        return True

    sched = Scheduler(clock, sink, MAX_NOTE_NS, lambda e, why: emitted.append(e))
    return sched, emitted, clock


def check_invariant(emitted: list[Emitted]) -> None:
    sounding: set[tuple[str, int, int]] = set()
    for e in emitted:
        key = (e.port, e.data[0] & 0x0F, e.data[1]) if len(e.data) == 3 else None
        if midi.is_note_on(e.data):
            assert key not in sounding, f"note-on while sounding: {e}"
            sounding.add(key)  # type: ignore[arg-type]
        elif midi.is_note_off(e.data):
            assert key in sounding, f"note-off for a note not sounding: {e}"
            sounding.discard(key)  # type: ignore[arg-type]
    assert not sounding, f"left sounding: {sounding}"


action = st.one_of(
    st.tuples(st.just("play"), st.integers(0, 10_000), st.integers(1, 9_000),
              st.sampled_from(PORTS), st.integers(0, 2), st.integers(60, 63)),
    st.tuples(st.just("on"), st.integers(0, 10_000), st.sampled_from(PORTS),
              st.integers(0, 2), st.integers(60, 63)),
    st.tuples(st.just("off_last"), st.integers(0, 10_000)),
    st.tuples(st.just("advance"), st.integers(0, 3_000)),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("panic")),
    st.tuples(st.just("silence")),
    st.tuples(st.just("port_loss"), st.sampled_from(PORTS)),
    st.tuples(st.just("sink_fails"), st.sampled_from(PORTS)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(action, max_size=60))
def test_every_note_on_gets_exactly_one_note_off(actions: list[tuple]) -> None:  # type: ignore[type-arg]
    fail_ports: set[str] = set()
    sched, emitted, clock = make(fail_ports)
    notes: list[NoteId] = []
    for a in actions:
        now = clock.now_ns()
        match a:
            case ("play", dt, dur, port, ch, pitch):
                notes.append(sched.play(now + dt, dur, port, ch, pitch, 100, tag="x"))
            case ("on", dt, port, ch, pitch):
                notes.append(sched.note_on(now + dt, port, ch, pitch, 90, tag="x"))
            case ("off_last", dt) if notes:
                sched.note_off(now + dt, notes[-1])
            case ("advance", dt):
                clock.advance_to(now + dt)
                sched.run_due(clock.now_ns())
            case ("cancel",):
                sched.cancel("x")
            case ("panic",):
                sched.panic()
            case ("silence",):
                sched.silence("stop")
            case ("port_loss", port):
                sched.release_port(port, "output-lost")
            case ("sink_fails", port):
                fail_ports.add(port)
    # Shutdown, as the service does it: run what is due, then panic.
    sched.run_due(clock.now_ns())
    sched.panic("stop")
    check_invariant(emitted)
    assert sched.ledger.sounding() == []
    # Max note length: no note sounds longer than the limit (in deadline time).
    started: dict[tuple[str, int, int], int] = {}
    for e in emitted:
        key = (e.port, e.data[0] & 0x0F, e.data[1]) if len(e.data) == 3 else None
        if midi.is_note_on(e.data):
            started[key] = e.deadline_ns  # type: ignore[index]
        elif midi.is_note_off(e.data) and key in started:
            assert e.deadline_ns - started.pop(key) <= MAX_NOTE_NS  # type: ignore[arg-type]


def test_retrigger_sends_the_note_off_first_and_the_old_off_does_not_cut_the_new_note() -> None:
    sched, emitted, clock = make(set())
    sched.play(0, 100, "a", 0, 60, 100)
    sched.play(50, 100, "a", 0, 60, 80)
    clock.advance_to(1000)
    sched.run_due(1000)
    assert [(e.deadline_ns, e.data) for e in emitted] == [
        (0, midi.note_on(0, 60, 100)),
        (50, midi.note_off(0, 60)),  # re-trigger: the old note is released first
        (50, midi.note_on(0, 60, 80)),
        (150, midi.note_off(0, 60)),  # the first note's planned off at 100 was a no-op
    ]


def test_panic_order_is_ledger_offs_then_sustain_all_notes_off_all_sound_off() -> None:
    sched, emitted, _clock = make(set())
    sched.note_on(0, "a", 2, 64, 100)
    sched.run_due(0)
    sched.panic()
    assert [e.data for e in emitted[1:]] == [
        midi.note_off(2, 64),
        midi.control_change(2, 64, 0), midi.control_change(2, 123, 0),
        midi.control_change(2, 120, 0),
    ]
    emitted.clear()
    sched.panic()  # idempotent: nothing sounding, only the controller resets again
    assert [e.data[1] for e in emitted] == [64, 123, 120]


def test_close_panics_and_nothing_is_planned_or_run_after_it() -> None:
    sched, emitted, clock = make(set())
    sched.note_on(0, "a", 2, 64, 100)
    sched.run_due(0)
    sched.note_on(1_000, "a", 2, 67, 100)  # planned, not yet due
    fired: list[int] = []
    sched.call_at(2_000, fired.append, tag="answer")
    sched.close("stop")
    assert [e.data for e in emitted[1:]] == [
        midi.note_off(2, 64),
        midi.control_change(2, 64, 0), midi.control_change(2, 123, 0),
        midi.control_change(2, 120, 0),
    ]
    emitted.clear()
    sched.note_on(3_000, "a", 2, 60, 100)  # a note heard during the drain after the stop
    sched.call_at(3_000, fired.append, tag="answer")
    clock.advance_to(10_000)
    sched.run_due(10_000)
    assert emitted == [] and fired == [] and sched.next_deadline() is None
    assert sched.ledger.sounding() == []


def test_a_note_released_by_its_own_off_leaves_nothing_due_behind() -> None:
    """The maximum-length release of a note whose off came is cancelled: a real-time driver
    wakes (and spins its last 2 ms) for the heap's head, which must be work, not a no-op."""
    sched, emitted, clock = make(set())
    sched.play(0, 100, "a", 0, 60, 90)
    clock.advance_to(100)
    sched.run_due(100)
    assert sched.next_deadline() is None  # before: 0 + MAX_NOTE_NS, a release of nothing
    held = sched.note_on(200, "a", 0, 62, 90)  # no off planned: cut at the maximum length
    sched.run_due(200)
    assert sched.next_deadline() == 200 + MAX_NOTE_NS
    clock.advance_to(200 + MAX_NOTE_NS)
    sched.run_due(clock.now_ns())
    assert emitted[-1].data == midi.note_off(0, 62) and sched.stats.forced_offs == 1
    sched.note_off(clock.now_ns(), held)  # its planned off, after the cut: nothing more
    sched.run_due(clock.now_ns())
    assert len(emitted) == 4 and sched.next_deadline() is None


def test_held_wakeups_call_the_driver_once_for_what_is_left() -> None:
    """A heard note's reaction is planned and run in one call (Session.hear): the driver is
    not re-armed for each job landing first, nor for jobs run before the call ends."""
    sched, _emitted, clock = make(set())
    woken: list[int] = []
    sched.on_earlier_deadline = woken.append
    sched.play(1_000, 100, "a", 0, 60, 90)  # planned ahead: the driver hears of it at once
    assert woken == [1_000]
    sched.hold_wakeups()
    sched.note_on(0, "a", 0, 62, 90)  # a reaction, due now
    sched.call_at(500, lambda t: None)
    sched.run_due(clock.now_ns())  # the reaction leaves
    assert woken == [1_000]
    sched.release_wakeups()
    assert woken == [1_000, 500]  # once, for the earliest job left
    sched.hold_wakeups()
    sched.note_on(0, "a", 0, 63, 90)
    sched.run_due(clock.now_ns())
    sched.release_wakeups()
    assert woken == [1_000, 500, 500]  # the head again: the driver armed for it keeps it
