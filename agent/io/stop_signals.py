"""The signals that can end a live run, and how each ends it: always through the panic.

SIGTERM (`systemctl stop`, kill), SIGINT (Ctrl-C), SIGHUP (the terminal or SSH session that ran
`perform` closed) and SIGQUIT (Ctrl-\\) all stop the run the same way. The first one stops it:
start-up waits end at once, then the panic (every sounding note released, the CC tail), the port
drain, the recording, exit 0. A second one, from someone who will not wait, cuts the drain short
(`hurry`); the panic needs no waiting and has run by then, so nothing can skip it.

The handlers stay installed until the run has written its recording: a signal in the middle of
the stop is never the default action (which would kill the process with notes sounding, or
without its performance.mid).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from typing import TypeVar

from agent.schedule.realtime import until_event

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
T = TypeVar("T")


class StopSignals:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.stop = asyncio.Event()  # the first signal: end the run
        self.hurry = asyncio.Event()  # a second one: do not wait for the drain
        self.received: list[str] = []

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def remove(self) -> None:
        for sig in STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.received.append(sig.name)
        if not self.stop.is_set():
            log.warning("%s: stopping (a second signal cuts the drain short)", sig.name)
            self.stop.set()
        elif not self.hurry.is_set():
            log.warning("%s again: stopping without the drain", sig.name)
            self.hurry.set()

    async def unless_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """`awaitable`'s result, or None (it is cancelled) once the run is stopped."""
        return await until_event(self.stop, awaitable)

    async def unless_hurried(self, awaitable: Awaitable[T]) -> T | None:
        """`awaitable`'s result, or None (it is cancelled) after a second signal."""
        return await until_event(self.hurry, awaitable)
