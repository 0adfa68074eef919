"""Where the model runs: its cost to the event loop, in a worker process vs the peers.

The loop carries a lag probe (a 5 ms periodic timer, through the agent's own real-time driver,
measuring how late each firing is) while the model is kept busy as in a dense performance: every
`--every-ms` four notes are fed and a 16-note phrase is asked for (about what a phrase-end
answer needs). Three placements, each for `--seconds`:

- worker: the agent's WorkerModel (a spawned process; the loop only writes and reads a pipe);
- thread: the same proposer in a thread of the agent's process (asyncio.to_thread), the GIL
  shared with the loop (the design's warning: ~5 ms median, 13 ms p99 of loop lag);
- inline: the proposer called on the loop itself (the loop stalls for every phrase).

Printed: probe lateness p50/p99/max per placement, the worker's request -> answer time, and
ratios against the worker.

    .venv/bin/python bench/model_worker.py [--checkpoint models/demo.pt] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from _common import REPO, heading, show, show_ratio

from agent.clock import MonotonicClock
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.live import PhraseRequest
from agent.model.proposals import Constraints
from agent.model.worker import WorkerModel
from agent.schedule.realtime import drive
from agent.schedule.scheduler import Scheduler

PROBE_NS = 5_000_000  # the driver spins the last 2 ms before each firing: leave the cores some rest
REQUEST = PhraseRequest(16, Constraints(low=48, high=84, temperature=0.9, top_p=0.95))


async def run(placement: str, path: Path, seconds: float, every_ms: float) -> dict[str, list[int]]:
    loop = asyncio.get_running_loop()
    clock = MonotonicClock()
    scheduler = Scheduler(clock, lambda port, data: True, 4_000_000_000, lambda e, why: None)
    driver = drive(loop, scheduler)
    lag: list[int] = []
    waits: list[int] = []

    def probe(deadline: int) -> None:
        lag.append(clock.now_ns() - deadline)
        scheduler.call_at(deadline + PROBE_NS, probe, tag="probe")

    worker = proposer = None
    if placement == "worker":
        worker = WorkerModel(path, seed=1, bound=12, style={}, scheduler=scheduler, loop=loop,
                             report=lambda what, fields: print(f"  worker {what}: {fields}"),
                             restart_after_ns=5_000_000_000)
        await worker.wait_ready(60)
    else:
        proposer = checkpoint.load(path).proposer(1)
    scheduler.call_at(clock.now_ns() + PROBE_NS, probe, tag="probe")
    end = clock.now_ns() + int(seconds * 1e9)
    pitch = 60
    while clock.now_ns() < end:
        asked = clock.now_ns()
        for _ in range(4):
            pitch = 60 + (pitch - 55) % 12
            event = rep.ModelEvent(rep.PLAYER, pitch, 0.12, 80, None, None)
            if worker is not None:
                worker.feed(clock.now_ns(), rep.PLAYER, pitch, 80, None, None)
            else:
                assert proposer is not None
                if placement == "thread":
                    await asyncio.to_thread(proposer.feed, event)
                else:
                    proposer.feed(event)
        if worker is not None:
            answered = asyncio.Event()
            worker.request(asked, REQUEST, asked + 1_000_000_000,
                           lambda notes, why, ev=answered: ev.set())
            await answered.wait()
        elif placement == "thread":
            assert proposer is not None
            await asyncio.to_thread(proposer.propose_phrase, REQUEST.notes, REQUEST.constraints)
        else:
            assert proposer is not None
            proposer.propose_phrase(REQUEST.notes, REQUEST.constraints)
        waits.append(clock.now_ns() - asked)
        await asyncio.sleep(max(0.0, every_ms / 1000 - (clock.now_ns() - asked) / 1e9))
    driver.stop()
    if worker is not None:
        worker.close()
    return {"lag": lag[10:], "wait": waits[2:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "models" / "demo.pt")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--every-ms", type=float, default=50.0)
    args = p.parse_args()
    results = {}
    for placement in ("worker", "thread", "inline"):
        results[placement] = asyncio.run(run(placement, args.checkpoint, args.seconds,
                                             args.every_ms))
        time.sleep(0.5)
    heading(f"loop lag probe (5 ms timer) while the model proposes a 16-note phrase every "
            f"{args.every_ms:g} ms, {args.seconds:g} s each")
    lag = {k: show(f"{k}: probe lateness", v["lag"]) for k, v in results.items()}
    heading("request -> 16-note phrase back on the loop")
    for k, v in results.items():
        show(f"{k}: phrase wait", v["wait"])
    heading("ratios (p99 loop lag, peer / worker)")
    for k in ("thread", "inline"):
        show_ratio(f"{k} / worker", lag[k].p99, lag["worker"].p99, "peer / worker")


if __name__ == "__main__":
    main()
