"""The model worker as a real spawned process on a real clock: answers, deadlines, stalls
(SIGSTOP), deaths (SIGKILL) and bad checkpoints. Deadlines here are generous: the tests assert
what happens (answer, fallback, restart), never how fast."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.clock import MonotonicClock
from agent.errors import ModelError
from agent.model import representation as rep
from agent.model.live import ModelNote, PhraseRequest
from agent.model.proposals import Constraints
from agent.model.worker import WorkerModel
from agent.schedule.realtime import drive
from agent.schedule.scheduler import Scheduler
from tests.model_fixtures import save_random_checkpoint

S = 1_000_000_000
REQUEST = PhraseRequest(6, Constraints(low=60, high=72, velocity_min=40, velocity_max=90))


@dataclass
class Rig:
    scheduler: Scheduler
    worker: WorkerModel
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def ask(self, deadline_s: float) -> tuple[list[ModelNote] | None, str]:
        got: asyncio.Future[tuple[list[ModelNote] | None, str]] = \
            asyncio.get_running_loop().create_future()
        now = self.scheduler.clock.now_ns()
        self.worker.request(now, REQUEST, now + int(deadline_s * S),
                            lambda notes, why: got.set_result((notes, why)))
        return await asyncio.wait_for(got, 30)

    async def until(self, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        """Run housekeeping (check) every 50 ms until the condition holds."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.worker.check(self.scheduler.clock.now_ns())
                await asyncio.sleep(0.05)


def make_rig(path: Path, restart_after_s: float = 0.5, style: dict[str, float] | None = None
             ) -> Rig:
    loop = asyncio.get_running_loop()
    clock = MonotonicClock()
    scheduler = Scheduler(clock, lambda port, data: True, 4 * S, lambda e, why: None)
    drive(loop, scheduler)  # the scheduler holds it (on_earlier_deadline)
    reports: list[tuple[str, dict[str, Any]]] = []
    worker = WorkerModel(path, seed=1, bound=12, style=style or {}, scheduler=scheduler,
                         loop=loop, report=lambda what, f: reports.append((what, f)),
                         restart_after_ns=int(restart_after_s * S))
    return Rig(scheduler, worker, reports)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = make_rig(save_random_checkpoint(tmp_path / "m.pt"))
    await r.worker.wait_ready(60)
    yield r
    r.worker.close()


def feed_call(rig: Rig, pitches: list[int]) -> None:
    now = rig.scheduler.clock.now_ns()
    for i, p in enumerate(pitches):
        rig.worker.feed(now + i * 200_000_000, rep.PLAYER, p, 80, None, None)


async def test_the_worker_answers_within_the_constraints(rig: Rig) -> None:
    feed_call(rig, [60, 62, 64, 65])
    notes, why = await rig.ask(deadline_s=20)
    assert why == "model"
    assert notes is not None and len(notes) == 6
    assert all(60 <= n.pitch <= 72 and 40 <= n.velocity <= 90 for n in notes)
    assert rig.worker.restarts == 0


async def test_new_work_after_a_long_quiet_is_not_taken_for_a_stall(rig: Rig) -> None:
    """The worker's silence counts from when it was given work, not from its last answer."""
    await asyncio.sleep(0.6)  # quiet for longer than restart_after (0.5 s)
    feed_call(rig, [60])
    rig.worker.check(rig.scheduler.clock.now_ns())  # before the worker could acknowledge
    assert rig.worker.restarts == 0
    notes, why = await rig.ask(deadline_s=20)
    assert why == "model" and notes and rig.worker.restarts == 0


async def test_a_stalled_worker_misses_its_deadline_and_is_restarted(rig: Rig) -> None:
    feed_call(rig, [60, 62, 64])
    old_pid = rig.reports[0][1]["pid"]
    os.kill(old_pid, signal.SIGSTOP)  # a real stall: the process stops running
    notes, why = await rig.ask(deadline_s=0.1)
    assert (notes, why) == (None, "late")  # dropped: the fallback plays instead
    await rig.until(lambda: rig.worker.restarts == 1)
    assert ("restart", {"reason": "worker stalled", "pending": 0}) in rig.reports
    await rig.until(lambda: sum(what == "ready" for what, _ in rig.reports) == 2)
    ready = [f for what, f in rig.reports if what == "ready"][1]
    assert ready["pid"] != old_pid
    assert ready["refed"] == 3  # the new worker heard the music that came before
    notes, why = await rig.ask(deadline_s=20)
    assert why == "model" and notes


async def test_a_killed_worker_is_restarted_and_its_pending_request_falls_back(
        rig: Rig) -> None:
    os.kill(rig.reports[0][1]["pid"], signal.SIGKILL)
    notes, why = await rig.ask(deadline_s=20)  # the pipe closes: answered by the restart
    assert (notes, why) in ((None, "restart"), (None, "starting"))
    await rig.until(lambda: rig.worker.restarts == 1)
    reasons = [f["reason"] for what, f in rig.reports if what == "restart"]
    assert reasons in (["worker exited (code -9)"], ["worker exited (pipe closed)"])
    await rig.until(lambda: sum(what == "ready" for what, _ in rig.reports) == 2)
    assert (await rig.ask(deadline_s=20))[1] == "model"


async def test_a_bad_checkpoint_fails_at_start_with_its_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    r = make_rig(junk)
    with pytest.raises(ModelError, match="not a stage-agent model checkpoint"):
        await r.worker.wait_ready(60)
    r.worker.close()


async def test_an_unknown_style_fails_at_start_saying_the_models_styles(tmp_path: Path) -> None:
    r = make_rig(save_random_checkpoint(tmp_path / "m.pt"), style={"jazz": 1.0})
    with pytest.raises(ModelError, match=r"m\.pt: unknown style \['jazz'\]"):
        await r.worker.wait_ready(60)
    assert r.worker.styles == ("chorale", "tune")  # so the start can name what it lacks
    r.worker.close()


async def test_the_worker_says_which_blend_it_plays_with(tmp_path: Path) -> None:
    """Every style set is confirmed by the worker, weights normalised (a `model` record
    `style` in a run's log); one it cannot take is reported, and it plays on as it was."""
    r = make_rig(save_random_checkpoint(tmp_path / "m.pt"), style={"tune": 2.0})
    await r.worker.wait_ready(60)
    await r.until(lambda: ("style", {"weights": {"tune": 1.0}}) in r.reports)
    said = len(r.reports)
    r.worker.set_style({"chorale": 3.0, "tune": 1.0})
    await r.until(lambda: len(r.reports) > said)
    assert r.reports[said:] == [("style", {"weights": {"chorale": 0.75, "tune": 0.25}})]
    r.worker.set_style({"jazz": 1.0})  # the session refuses this first; the worker never dies
    await r.until(lambda: r.reports[-1][0] == "style-failed")
    assert "unknown style ['jazz']" in r.reports[-1][1]["reason"]
    assert (await r.ask(deadline_s=20))[1] == "model"
    r.worker.close()
