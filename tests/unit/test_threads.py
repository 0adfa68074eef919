"""Daemon threads for blocking work (agent/threads.py): in order, and never holding the exit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.threads import DaemonWorker, off_loop


def test_jobs_run_in_order_and_their_outcome_comes_back() -> None:
    worker = DaemonWorker("test")
    ran: list[int] = []
    gate = threading.Event()
    first = worker.submit(gate.wait)
    second = worker.submit(lambda: ran.append(2) or 2)
    cancelled = worker.submit(lambda: ran.append(3) or 3)
    failing = worker.submit(lambda: 1 // 0)
    assert cancelled.cancel()  # still waiting: it never runs
    gate.set()
    assert first.result(10) is True and second.result(10) == 2
    with pytest.raises(ZeroDivisionError):
        failing.result(10)
    assert ran == [2]
    worker.close()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(lambda: None)


def test_off_loop_runs_on_another_thread() -> None:
    async def main() -> str:
        return await off_loop(lambda: threading.current_thread().name, "elsewhere")
    assert asyncio.run(main()) == "elsewhere"


STUCK = """
import asyncio, sys
from agent.threads import DaemonWorker, off_loop

def stuck():
    open(sys.argv[1], "w")  # a FIFO nobody reads: blocks for good, as a write to a hung disk

DaemonWorker("stuck").submit(stuck)

async def main():
    try:
        await asyncio.wait_for(off_loop(stuck, "stuck too"), 0.2)
    except TimeoutError:
        print("gave up waiting", flush=True)

asyncio.run(main())
"""


def test_a_job_stuck_for_good_does_not_hold_the_process_exit(tmp_path: Path) -> None:
    """(A ThreadPoolExecutor's thread, or asyncio.to_thread's, would: the exit joins them.)"""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-c", STUCK, str(fifo)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "gave up waiting\n"
