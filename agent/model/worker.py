"""The model in its own process, so inference can never stall the event loop.

Why a process: a Python thread doing inference holds the GIL, and the loop (MIDI input, scheduler)
waits behind it: ~5 ms median, 13 ms p99 of loop lag measured on this kind of machine. A separate
process costs the loop only the pipe writes and reads (bench/model_worker.py measures both).

Protocol (pickled tuples over a multiprocessing Pipe):
  parent -> worker: ("feed", ModelEvent) | ("phrase", id, PhraseRequest) | ("style", weights)
  worker -> parent: ("ready", pid, styles) | ("failed", reason[, styles]) | ("fed", total)
                    | ("phrase", id, [Proposal], total) | ("styled", blend) | ("unstyled", reason)
(total: feeds processed so far; the parent's backlog is what it sent minus that; blend: the
style weights it plays with now, normalised, which the parent logs as a `model` record `style`)
The worker is started with `spawn` (a fork after BLAS threads started has hung) and caps torch at
one thread before its first operation.

The parent never blocks: replies are read by a loop reader on the pipe; a request's deadline is
a scheduler timer; a worker that dies, or leaves a request or a backlog of feeds unanswered for
`restart_after_ns`, is killed and a new one started, which is then fed the recent history so the
model hears the music that came before. Until it is ready, requests get the fallback at once.
A worker that never got ready (a bad checkpoint, a style it lacks, a crash or no answer while
loading) is not respawned: it would fail again; `failure` and wait_ready say why.

A reload (model/reload.py) starts a `successor` for another checkpoint while this one answers;
once it is ready it `adopt`s this one's recent music, and this one `retire`s: it still answers
what it owes (or those requests fall back at their deadlines), then stops without the loop ever
waiting for the process to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ModelError
from agent.model import representation as rep
from agent.model.live import Done, EventTimes, ModelNote, PhraseRequest
from agent.schedule.scheduler import Scheduler

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
HISTORY = 256  # events re-fed to a restarted worker
MAX_BACKLOG = 256  # feeds not yet acknowledged; far below what fills a 64 KiB pipe
STOP_GRACE_S = 2.0  # a worker let go is killed if it has not stopped by then
REAP_POLL_S = 0.05
Report = Callable[[str, dict[str, Any]], None]


def serve(path: str, seed: int, bound: int, style: dict[str, float],
          guard_lines: np.ndarray | None, conn: multiprocessing.connection.Connection) -> None:
    """The worker process's main: load, warm up, then answer until the pipe closes."""
    # Ctrl-C, Ctrl-\ and a closed terminal signal the whole process group, this worker too. The
    # agent stops the run (the panic first) and then this worker: dying first would only have it
    # restarted, or its traceback printed, in the middle of the stop.
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # BrokenPipeError: the parent let this worker go first (a reload given up, the end of the
    # run): nobody to tell
    with contextlib.suppress(BrokenPipeError):
        _serve(path, seed, bound, style, guard_lines, conn)


def _serve(path: str, seed: int, bound: int, style: dict[str, float],
           guard_lines: np.ndarray | None, conn: multiprocessing.connection.Connection) -> None:
    import torch  # imported here: the thread cap must come before any torch operation

    torch.set_num_threads(1)
    from agent.model import checkpoint

    try:
        proposer = checkpoint.load(Path(path)).proposer(seed, bound, guard_lines)
    except Exception as e:  # say why to the parent, which reports it; do not die silently
        conn.send(("failed", str(e)))
        return
    try:
        if style:
            proposer.set_style(style)
    except ValueError as e:  # a style it lacks: its styles too, so the start can say which
        conn.send(("failed", f"{Path(path).name}: {e}", tuple(proposer.styles)))
        return
    proposer.propose_phrase(4)  # warm-up: first calls allocate
    conn.send(("ready", os.getpid(), tuple(proposer.styles)))
    fed = 0
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "feed":
            proposer.feed(message[1])
            fed += 1
            if not conn.poll():  # acknowledge once the backlog is drained, not per event
                conn.send(("fed", fed))
        elif kind == "phrase":
            _, rid, req = message
            notes = proposer.propose_phrase(req.notes, req.constraints, req.beat_s,
                                            req.start_beat)
            conn.send(("phrase", rid, notes, fed))
        elif kind == "style":
            try:  # checked by the parent; never die of it
                proposer.set_style(message[1])
                conn.send(("styled", proposer.blend))
            except ValueError as e:
                conn.send(("unstyled", str(e)))
        elif kind == "stop":
            return


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """The spawned worker inherits this environment, and its numpy reads it at import.

    A multi-threaded BLAS spins its threads on every core between the worker's small
    matrix-vector products, and took the CPU from the agent's own loop (bench/model_worker.py:
    probe lateness p50 1 ms instead of 4 us). One thread is also the fastest at these sizes.
    """
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARS}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARS, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerModel:
    def __init__(self, path: Path, *, seed: int, bound: int, style: Mapping[str, float],
                 scheduler: Scheduler, loop: asyncio.AbstractEventLoop, report: Report,
                 restart_after_ns: int, start_timeout_ns: int = 60_000_000_000,
                 guard_lines: np.ndarray | None = None) -> None:
        """`guard_lines`: joined lines the model's copy guard covers besides its own corpus's
        (respond.memory_from's corpora)."""
        self.path = path
        self._args = (str(path), seed, bound, dict(style))
        self._guard_lines = guard_lines
        self._scheduler = scheduler
        self._loop = loop
        self._report = report
        self._restart_after_ns = restart_after_ns
        self._start_timeout_ns = start_timeout_ns  # loading torch and the model takes seconds
        self._ctx = multiprocessing.get_context("spawn")
        self._times = EventTimes()
        self._history: deque[rep.ModelEvent] = deque(maxlen=HISTORY)
        self._pending: dict[int, tuple[int, Done]] = {}  # id -> (sent ns, done)
        self._owed: set[int] = set()  # requests the worker has not answered (even if expired)
        self._next_id = 0
        self.restarts = 0
        self.styles: tuple[str, ...] = ()  # the checkpoint's, once a worker is ready
        self.failure: str | None = None
        self._ready_event = asyncio.Event()
        self._ever_ready = False
        self._retiring = False  # a reload swapped in a successor: answer what is owed, then go
        self._closed = False
        self._start()

    def successor(self, path: Path) -> WorkerModel:
        """A new worker for the checkpoint at `path` (another one, or this one's file after
        retraining), with this one's settings and its style as set last. It starts loading now,
        in its own process; this one answers meanwhile."""
        _path, seed, bound, style = self._args
        return WorkerModel(path, seed=seed, bound=bound, style=dict(style),
                           scheduler=self._scheduler, loop=self._loop, report=self._report,
                           restart_after_ns=self._restart_after_ns,
                           start_timeout_ns=self._start_timeout_ns,
                           guard_lines=self._guard_lines)

    def adopt(self, old: WorkerModel) -> None:
        """Take over from `old` (a reload, once this worker is ready): hear the music it heard
        (as a restarted worker does), go on counting event times where it stopped, and take the
        style set since this worker started, if this model has those styles."""
        self._times = old._times  # the next event's dt follows old's last event
        self._history.extend(old._history)
        style = old._args[3]
        if style != self._args[3] and set(style) <= set(self.styles):
            self.set_style(style)
        for event in old._history:
            if self._send(("feed", event)):
                self._sent += 1

    # -- process ----------------------------------------------------------------------------
    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=serve, args=(*self._args, self._guard_lines, child),
                                       daemon=True, name="stage-agent-model")
        with _single_threaded_blas():
            self._proc.start()
        child.close()
        self._conn = parent
        self._ready = False
        self._ready_event.clear()
        self._sent = self._acked = 0
        self._owed = set()
        self._progress_ns = self._scheduler.clock.now_ns()  # last time the worker answered
        self._loop.add_reader(parent.fileno(), self._on_readable)

    async def wait_ready(self, timeout_s: float | None) -> None:
        """Start-up: the first worker has loaded the model and answered its warm-up (None: as
        long as it takes; the worker may still fail)."""
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout_s)
        except TimeoutError:
            raise ModelError(f"{self.path}: the model worker did not start within "
                             f"{timeout_s:g} s") from None
        if self.failure is not None:
            raise ModelError(self.failure)

    def _lost(self, reason: str) -> None:
        """The worker died or stopped answering. One that has loaded before is restarted; one
        that never loaded would fail again and is given up (wait_ready raises); a retiring one
        just goes (what it still owed falls back)."""
        if self._ever_ready and not self._retiring:
            self._restart(reason)
            return
        if not self._ever_ready and self.failure is None:
            self.failure = f"{self.path}: loading the model failed: {reason}"
            self._report("failed", {"reason": self.failure})
        self._ready_event.set()
        self._let_go("restart")

    def _restart(self, reason: str) -> None:
        self._loop.remove_reader(self._conn.fileno())
        self._proc.kill()  # reaped by multiprocessing later; joining here could block the loop
        self._conn.close()
        self.restarts += 1
        pending, self._pending = self._pending, {}
        self._report("restart", {"reason": reason, "pending": len(pending)})
        for _, done in pending.values():
            done(None, "restart")
        self._start()

    def check(self, now_ns: int) -> None:
        """Housekeeping: restart a dead worker, or one that stopped answering."""
        if self._closed:
            return
        if not self._proc.is_alive():
            self._lost(f"worker exited (code {self._proc.exitcode})")
            return
        silent_ns = now_ns - self._progress_ns
        if not self._ready:
            if silent_ns > self._start_timeout_ns:
                self._lost("worker did not start")
        elif (self._owed or self._sent > self._acked) and silent_ns > self._restart_after_ns:
            self._lost("worker stalled")

    def alive(self) -> bool:
        """The worker process runs (a restarted one counts: it is loading)."""
        return not self._closed and self._proc.is_alive()

    def retire(self) -> None:
        """A successor has taken over (a reload): the requests this worker owes are still
        answered by it, or fall back at their deadlines; then it is let go."""
        self._retiring = True
        if not self._pending:
            self._let_go("restart")

    def _let_go(self, why: str) -> None:
        """Stop using this worker without blocking the loop: requests it still owes get the
        fallback (`why`), it is asked to stop, killed if it has not within STOP_GRACE_S, and
        reaped by a timer that looks every REAP_POLL_S (waitpid without waiting)."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        self._loop.remove_reader(self._conn.fileno())
        with contextlib.suppress(OSError):  # a dead worker's pipe is broken
            self._conn.send(("stop",))
        self._conn.close()
        pending, self._pending = self._pending, {}
        for _, done in pending.values():
            done(None, why)
        proc, loop = self._proc, self._loop
        kill_at = loop.time() + STOP_GRACE_S

        def reap() -> None:
            if proc.exitcode is not None:  # ended and waited for
                proc.join(0)  # (returns at once) multiprocessing forgets it
                return
            if loop.time() >= kill_at:
                proc.kill()
            loop.call_later(REAP_POLL_S, reap)
        reap()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._conn.fileno())
        try:
            if self._proc.is_alive():
                self._conn.send(("stop",))
        except OSError:
            pass
        self._proc.join(0.5)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()

    # -- traffic ----------------------------------------------------------------------------
    def _send(self, message: tuple[Any, ...]) -> bool:
        if not self._ready or self._sent - self._acked >= MAX_BACKLOG:
            return False  # never block the loop on a full pipe: check() restarts the worker
        idle = not self._owed and self._sent <= self._acked
        try:
            self._conn.send(message)
        except OSError:
            return False
        if idle:  # the worker owes something from now on: its silence counts from here
            self._progress_ns = self._scheduler.clock.now_ns()
        return True

    def feed(self, t_ns: int, role: int, pitch: int, velocity: int, duration_s: float | None,
             beat_in_bar: float | None) -> None:
        event = self._times.event(t_ns, role, pitch, velocity, duration_s, beat_in_bar)
        self._history.append(event)
        if self._send(("feed", event)):
            self._sent += 1

    def set_style(self, weights: Mapping[str, float]) -> None:
        self._args = (*self._args[:3], dict(weights))  # a restarted worker keeps the style
        self._send(("style", dict(weights)))

    def request(self, t_ns: int, req: PhraseRequest, deadline_ns: int, done: Done) -> None:
        if not self._ready:
            done(None, "starting")
            return
        self._next_id += 1
        rid = self._next_id
        if not self._send(("phrase", rid, req)):
            done(None, "backlog")
            return
        self._pending[rid] = (t_ns, done)
        self._owed.add(rid)
        self._scheduler.call_at(deadline_ns, lambda t: self._expire(rid, t), tag="model-deadline")

    def _expire(self, rid: int, t_ns: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None:
            entry[1](None, "late")
        if self._retiring and not self._pending:
            self._let_go("restart")

    def _on_readable(self) -> None:
        try:
            while not self._closed and self._conn.poll():  # _handle may let the worker go
                self._handle(self._conn.recv())
        except (EOFError, OSError):
            # The pipe closes as the process dies; it is reaped a moment later. Wait that
            # moment (a fault path, at most 20 ms) so the report can say how it ended.
            self._proc.join(0.02)
            code = self._proc.exitcode
            self._lost("worker exited " + ("(pipe closed)" if code is None
                                           else f"(code {code})"))

    def _handle(self, message: tuple[Any, ...]) -> None:
        now = self._scheduler.clock.now_ns()
        self._progress_ns = now
        kind = message[0]
        if kind == "failed":
            self.failure = message[1]
            if len(message) > 2:  # it loaded, but lacks a style it was asked for
                self.styles = tuple(message[2])
            self._ready_event.set()
            self._report("failed", {"reason": message[1]})
        elif kind == "ready":
            self._ready = self._ever_ready = True
            self.styles = message[2]
            self._ready_event.set()
            if self._args[3]:  # the style as set last (also while this worker was starting)
                self._send(("style", self._args[3]))
            for event in self._history:  # a restarted worker hears what came before
                if self._send(("feed", event)):
                    self._sent += 1
            self._report("ready", {"pid": message[1], "refed": len(self._history)})
        elif kind == "fed":
            self._acked = message[1]
        elif kind == "styled":
            self._report("style", {"weights": message[1]})
        elif kind == "unstyled":
            self._report("style-failed", {"reason": message[1]})
        elif kind == "phrase":
            _, rid, proposals, self._acked = message
            self._owed.discard(rid)
            entry = self._pending.pop(rid, None)
            if entry is not None:  # else its deadline passed: dropped, never played late
                notes = [ModelNote.of(p) for p in proposals]
                entry[1](notes, "model") if notes else entry[1](None, "nothing-allowed")
            if self._retiring and not self._pending:
                self._let_go("restart")


async def ready_with_styles(model: WorkerModel, waiting: Awaitable[None],
                            check: Callable[[tuple[str, ...]], None]) -> None:
    """Await `waiting` (the model's wait_ready, perhaps cut short by a stop), then `check` the
    styles the worker reported. Also when the wait failed: a worker that lacks a style it was
    started with fails on it, and the check says which style and where the piece names it
    better than the worker can. Nothing is checked if no styles came (stopped while loading)."""
    try:
        await waiting
    except ModelError:
        if model.styles:
            check(model.styles)
        raise
    if model.styles:
        check(model.styles)
