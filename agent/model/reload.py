"""`model-reload`: a (re)trained model swapped in during a performance, without stopping it.

The command names a checkpoint (relative to the config file's folder, as `model.checkpoint` is)
or none: the configured file again, e.g. after training into it. A new worker process loads it
while the current worker keeps answering. Once the new one has loaded and answered its warm-up
(as at start-up), the swap happens in one step on the event loop, so between two requests: the
session, the agent and the housekeeping (restarts, the watchdog's heartbeat) all use the new
worker from the next request on, and it first hears the recent music, as a restarted worker
does. What the old worker still owes is answered by it, or falls back at its deadline; then it
stops. A checkpoint that does not load (not a checkpoint, no answer within
`model.start_timeout_s`, or lacking a style the piece names or the blend played now) changes
nothing: the old model plays on.

Refused at once (CommandError: nothing logged, nothing published, nothing changed): a run
without a model, a path outside the piece's folder and the models folder (checkpoint_path), no
such file (or not a regular one), a file over MAX_CHECKPOINT_BYTES, a reload still loading.
Replays register no actions, so they refuse it too; their recorded answers already hold what
each model said.

Progress goes to the log (`model` records `reload-started`, `reloaded`, `reload-failed` with the
file's `path` and `sha256`, and the `reason` of a failure) and to the published state `model`:
`{"checkpoint", "sha256", "status": "loading" | "ready" | "failed", "error"?}`. At start-up the
configured model is published as "ready" once its worker is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agent.config import Config, style_problem
from agent.errors import ModelError
from agent.files import confined, size_text
from agent.model.live import MAX_CHECKPOINT_BYTES
from agent.model.worker import WorkerModel, ready_with_styles
from agent.policy.commands import CommandError
from agent.record.session import Session, model_identity
from agent.threads import off_loop

log = logging.getLogger(__name__)


def checkpoint_path(config: Config, given: str | None) -> Path:
    """The file a reload loads: `given` relative to the config file's folder, or the
    configured checkpoint. A command names any path it likes, so `given` must lie (symlinks
    and `..` resolved) in the piece's folder or the models folder (model.models_dir, by
    default the configured checkpoint's): anything else is refused (CommandError) before the
    file is looked at, so a refusal says nothing about what is there."""
    if given is None:
        return config.model_path()
    folders = (Path(config.source).parent, config.models_path())
    found = confined(Path(config.source).parent / given, folders)
    if found is None:
        raise CommandError(f"model-reload: {given!r} is outside the piece's folder and the "
                           "models folder (model.models_dir): refused")
    return found


class ModelReload:
    """The live action `model-reload` of one performance: `command` is what the session calls
    (Session.actions); `close` at the end of the run."""

    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop) -> None:
        self._session = session
        self._loop = loop
        self._loading: Path | None = None  # the checkpoint a reload is loading
        self._candidate: WorkerModel | None = None
        self._retired: list[WorkerModel] = []
        self._tasks: set[asyncio.Task[None]] = set()
        if isinstance(session.model, WorkerModel):
            # The configured model's identity is the log header's (hashed at the start).
            self._spawn(self._announce(session.model, session.log.header["model"]))

    def command(self, fields: dict[str, Any], t_ns: int) -> None:
        """Start a reload, or refuse it (CommandError). The loading happens after this
        returns, so the session logs the command before any record of its progress."""
        if not isinstance(self._session.model, WorkerModel):
            raise CommandError("model-reload: this performance runs no model (no "
                               "[model] checkpoint, or a piece that only harmonises)")
        if self._loading is not None:
            raise CommandError(f"model-reload: {self._loading} is still loading; wait until "
                               "the model state says ready or failed")
        path = checkpoint_path(self._session.config, fields.get("checkpoint"))
        try:
            info: os.stat_result | None = path.stat()
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):  # a FIFO or a device is none
            raise CommandError(f"model-reload: no such checkpoint file: {path}")
        if info.st_size > MAX_CHECKPOINT_BYTES:
            raise CommandError(f"model-reload: {path} is {info.st_size} bytes, more than the "
                               f"{size_text(MAX_CHECKPOINT_BYTES)} a checkpoint may be")
        self._loading = path
        self._spawn(self._reload(path))

    def close(self) -> None:
        """The run ends: a reload still loading is abandoned, retiring workers stop."""
        for task in self._tasks:
            task.cancel()
        if self._candidate is not None:
            self._candidate.retire()  # it owes nothing: stopped without waiting
        for worker in self._retired:
            worker.close()  # a no-op for the ones already gone

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(work, name="model-reload")
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, model: WorkerModel, identity: dict[str, Any]) -> None:
        """The configured model (`identity`: its path and sha256), once its worker is ready
        (perform gives it start_timeout_s; a failure ends the run)."""
        try:
            await model.wait_ready(None)
        except ModelError:
            return
        self._publish(identity, "ready")

    async def _reload(self, path: Path) -> None:
        try:
            identity = await _identity(path)
            self._record("reload-started", identity)
            self._publish(identity, "loading")
            current = self._session.model
            assert isinstance(current, WorkerModel)
            self._candidate = candidate = current.successor(path)
            try:
                await self._loaded(candidate)
            except ModelError as e:
                candidate.retire()
                self._record("reload-failed", identity, reason=str(e))
                self._publish(identity, "failed", error=str(e))
                log.warning("model-reload: %s; the previous model plays on", e)
                return
            self._swap(candidate)
            self._record("reloaded", identity)
            self._publish(identity, "ready")
            log.info("model-reload: %s is playing (sha256 %s)", path, identity["sha256"])
        finally:
            self._loading = self._candidate = None

    async def _loaded(self, candidate: WorkerModel) -> None:
        """The new worker ready, with the styles the piece needs; else ModelError. A worker
        that lacks a style it was started with fails, saying its styles: the reason is then
        the style and where the piece names it."""
        await ready_with_styles(
            candidate, candidate.wait_ready(self._session.config.model.start_timeout_s),
            lambda _styles: self._check_styles(candidate))

    def _check_styles(self, candidate: WorkerModel) -> None:
        """ModelError unless the new model has every style the piece names (model.styles and
        the sections' blends, which come back at each section) and the blend played now."""
        config = self._session.config
        problem = style_problem(config, candidate.styles, candidate.path.name)
        if problem is not None:
            raise ModelError(f"{problem[1]}, which the piece names ({problem[0]})")
        playing = dict(self._session.agent.controls.styles)
        missing = sorted(set(playing) - set(candidate.styles))
        if missing:
            raise ModelError(f"no style {missing[0]!r} in the model {candidate.path.name} (its "
                             f"styles: {', '.join(candidate.styles)}), which the blend played "
                             "now names")

    def _swap(self, new: WorkerModel) -> None:
        """One step on the loop: no request can come between the two assignments."""
        old = self._session.model
        assert isinstance(old, WorkerModel)
        new.adopt(old)
        self._session.model = new
        self._session.agent.model = new
        old.retire()
        self._retired = [w for w in self._retired if w.alive()] + [old]

    def _record(self, what: str, identity: dict[str, Any], **fields: Any) -> None:
        self._session.log.write("model", self._session.clock.now_ns(), what=what,
                                path=identity["path"], sha256=identity["sha256"], **fields)

    def _publish(self, identity: dict[str, Any], status: str, **error: str) -> None:
        self._session.agent.publish("model", {"checkpoint": identity["path"],
                                              "sha256": identity["sha256"], "status": status,
                                              **error})


async def _identity(path: Path) -> dict[str, Any]:
    """The log header's fields (path, sha256), hashed in a thread, in chunks (model_identity):
    a model file is megabytes, and the loop plays on meanwhile. A daemon thread, not
    asyncio.to_thread's: asyncio.run joins those at the exit, and a file on a hung disk would
    then hold the exit for good (the reload itself is abandoned at the stop)."""
    return await off_loop(lambda: model_identity(path), "model-hash")
