"""A note path that cannot fail half-way: the scheduler's releases."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from agent import midi
from agent.clock import ManualClock
from agent.events import Emitted
from agent.schedule.scheduler import Scheduler

PITCHES = range(4, 124)  # 120 notes on one channel
TAIL = [midi.control_change(1, cc, 0) for cc in (64, 123, 120)]
MS = 1_000_000


class FullDisk:
    """The recorder's hook once the disk is full: it raises ENOSPC at every message, as the
    old log's write did from inside the note path. A stand-in for the recorder (the real log no
    longer raises: see the tests below on a real full tmpfs), to hold the scheduler to its own
    promise whatever a hook does."""

    def __init__(self) -> None:
        self.full = False

    def __call__(self, e: Emitted, why: str) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


def sounding_120() -> tuple[Scheduler, list[tuple[str, bytes]], FullDisk]:
    sent: list[tuple[str, bytes]] = []
    hook = FullDisk()
    sched = Scheduler(ManualClock(), lambda port, data: sent.append((port, data)) is None,
                      60_000 * MS, hook)
    for pitch in PITCHES:
        sched.note_on(0, "synth", 1, pitch, 90)
    sched.run_due(0)
    assert len(sent) == 120
    sent.clear()
    return sched, sent, hook


RELEASES: dict[str, tuple[Callable[[Scheduler], None], bool]] = {
    "panic": (lambda s: s.panic("panic"), True),
    "close": (lambda s: s.close("stop"), True),
    "silence": (lambda s: s.silence("mute"), False),
    "panic_port": (lambda s: s.panic_port("synth", "output-back"), True),
    "release_port": (lambda s: s.release_port("synth", "output-lost"), False),
}


@pytest.mark.parametrize("release", list(RELEASES))
def test_a_release_sends_every_note_off_and_the_tail_though_the_recorder_raises(
        release: str) -> None:
    sched, sent, hook = sounding_120()
    hook.full = True
    action, with_tail = RELEASES[release]
    with pytest.raises(OSError, match="No space left"):  # said, after everything went out
        action(sched)
    assert [data for _, data in sent] == [midi.note_off(1, p) for p in PITCHES] + (
        TAIL if with_tail else [])
    assert sched.ledger.sounding() == []


def test_jobs_due_together_all_run_though_the_recorder_raises_at_the_first() -> None:
    sent: list[bytes] = []
    hook = FullDisk()
    clock = ManualClock()
    sched = Scheduler(clock, lambda port, data: sent.append(data) is None, 100 * MS, hook)
    for pitch in (60, 64, 67):
        sched.note_on(10 * MS, "synth", 1, pitch, 80)  # planned, never released by the plan
    hook.full = True
    clock.advance_to(10 * MS)
    with pytest.raises(OSError):
        sched.run_due(10 * MS)
    assert sent == [midi.note_on(1, p, 80) for p in (60, 64, 67)]
    hook.full = False  # each still ends at the maximum note length
    clock.advance_to(110 * MS)
    sched.run_due(110 * MS)
    assert sent[3:] == [midi.note_off(1, p) for p in (60, 64, 67)]
