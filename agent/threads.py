"""Blocking work off the event loop, on daemon threads: none of them can hold the process's exit.

A thread stuck in a read or write on a hung disk (NFS, a USB stick) cannot be interrupted from
Python. concurrent.futures.ThreadPoolExecutor joins its threads when the interpreter exits (an
exit hook, since Python 3.9, even after shutdown(wait=False)), and so does asyncio.run with the
loop's default executor (asyncio.to_thread): one stuck thread there keeps the process from
exiting at all, past systemd's TimeoutStopSec, long after the music stopped. A daemon thread is
left to the OS at the exit instead; whoever waits for its work waits with a bound of its own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[[], Any]]


class DaemonWorker:
    """One daemon thread, started with the first job, running the jobs submitted one at a time,
    in order. close(): no more jobs; the thread ends after those queued, never waited for."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """The job's outcome; cancelling it before it starts means it never runs."""
        if self._closed:
            raise RuntimeError(f"{self._name}: closed")
        future: Future[T] = Future()
        self._jobs.put((future, job))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                future.set_result(job())
            except BaseException as e:  # to whoever waits: this thread only carries it
                future.set_exception(e)


def in_daemon_thread(job: Callable[[], T], name: str) -> Future[T]:
    """`job` started now on a daemon thread of its own (a DaemonWorker for one job)."""
    worker = DaemonWorker(name)
    try:
        return worker.submit(job)
    finally:
        worker.close()


async def off_loop(job: Callable[[], T], name: str) -> T:
    """`job` on a daemon thread of its own, awaited (as asyncio.to_thread, without the join at
    the exit)."""
    return await asyncio.wrap_future(in_daemon_thread(job, name))
