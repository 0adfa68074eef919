"""Driving the scheduler in real time on the asyncio loop.

asyncio timers fire ~1 ms late on average (epoll's timeout is in whole milliseconds), so the
driver arms its timer `early_ns` before the next deadline and spins the last stretch on the clock.
The spin is bounded by early_ns (2 ms): a message arriving during it waits at most that long, while
every planned event leaves within tens of microseconds of its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from agent.clock import Clock

if TYPE_CHECKING:
    from agent.schedule.scheduler import Scheduler

EARLY_NS = 2_000_000
T = TypeVar("T")


async def sleep_until(clock: Clock, t_ns: int, early_ns: int = EARLY_NS) -> None:
    """Return at t_ns on the clock: sleep until early_ns before it, then spin (as the driver)."""
    remaining = t_ns - clock.now_ns() - early_ns
    if remaining > 0:
        await asyncio.sleep(remaining / 1e9)
    while clock.now_ns() < t_ns:
        pass


async def until_event(event: asyncio.Event, awaitable: Awaitable[T]) -> T | None:
    """`awaitable`'s result, or None (it is cancelled) once `event` is set (a stop)."""
    if event.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: no "coroutine was never awaited" warning
        return None
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task.done():
        return task.result()  # its own exception, if it raised one
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


class RealtimeDriver:
    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock,
                 next_deadline: Callable[[], int | None], run_due: Callable[[int], None],
                 early_ns: int = EARLY_NS) -> None:
        self._loop = loop
        self._clock = clock
        self._next_deadline = next_deadline
        self._run_due = run_due
        self._early_ns = early_ns
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None
        self.ticks = 0  # advances on every firing: the watchdog's sign of life

    def poke(self, deadline_ns: int) -> None:
        """A job was planned for deadline_ns: re-arm if that is sooner than the armed timer."""
        if self._armed_for is None or deadline_ns < self._armed_for:
            self._arm(deadline_ns)

    def rearm(self) -> None:
        deadline = self._next_deadline()
        if deadline is None:
            self._cancel()
        else:
            self._arm(deadline)

    def stop(self) -> None:
        self._cancel()

    def _arm(self, deadline_ns: int) -> None:
        self._cancel()
        self._armed_for = deadline_ns
        # loop.time() is time.monotonic(), the same clock as MonotonicClock, in seconds.
        self._timer = self._loop.call_at((deadline_ns - self._early_ns) / 1e9, self._fire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_for = None

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = None
        self.ticks += 1
        deadline = self._next_deadline()
        # The timer may be stale (armed for a job since run or cancelled): never spin longer
        # than early_ns, re-arm instead.
        try:
            if deadline is not None and deadline - self._clock.now_ns() <= self._early_ns:
                while self._clock.now_ns() < deadline:
                    pass
                self._run_due(self._clock.now_ns())
        finally:  # a job that raised (the loop reports it) must not stop the ones after it
            self.rearm()


def drive(loop: asyncio.AbstractEventLoop, scheduler: Scheduler) -> RealtimeDriver:
    """Run a scheduler's jobs at their deadlines on this loop, re-armed when one comes earlier."""
    driver = RealtimeDriver(loop, scheduler.clock, scheduler.next_deadline, scheduler.run_due)
    scheduler.on_earlier_deadline = driver.poke
    return driver
