"""CPU contention for the benchmarks: other processes busy beside the agent, and realtime priority.

Stage machines run a synth and visuals beside the agent. `--load N` runs N processes that each
keep a core busy (`python -c "while True: pass"`); `--realtime PRIORITY` runs the agent with
`[service] realtime_priority = PRIORITY` (SCHED_FIFO). With either, a benchmark measures every
combination in one run (idle and loaded; normal priority and realtime) and prints them side by
side. With --realtime, in every run, jackd runs SCHED_FIFO at JACK_PRIORITY (its clients' JACK
threads just below), above the agent, as a stage machine's audio setup has it, and the bench's
own thread that plays and stamps runs at PRIORITY: the agent's priority is the only thing that
changes between the rows. The processes the bench starts (the agent, the busy loops, a peer)
start at normal priority whatever the bench's (SCHED_RESET_ON_FORK).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _common import UNITS, Summary

JACK_PRIORITY = 70  # jackd's SCHED_FIFO priority in the runs with --realtime


@dataclass(frozen=True)
class Condition:
    load: int  # busy processes beside the agent
    priority: int  # the agent's [service] realtime_priority (0: the normal scheduler)

    @property
    def label(self) -> str:
        load = f"{self.load} busy loop{'s' * (self.load != 1)}" if self.load else "idle"
        return f"{load}, {f'SCHED_FIFO {self.priority}' if self.priority else 'normal priority'}"


def conditions(load: int, priority: int) -> list[Condition]:
    """Idle (and loaded, with `load`) at normal priority (and realtime, with `priority`)."""
    return [Condition(n, prio) for prio in dict.fromkeys((0, priority))
            for n in dict.fromkeys((0, load))]


def add_contention_options(parser: Any) -> None:
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="also measure with N busy-loop processes beside the agent")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                        help="also measure with [service] realtime_priority = PRIORITY")


@contextmanager
def busy_load(n: int) -> Iterator[None]:
    """`n` processes, each keeping a core busy, for the length of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if procs else 0)  # running, and counted by the scheduler
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def jack_priority(args: Any) -> int:
    """jackd's realtime priority for a run with these options (0: not realtime)."""
    return JACK_PRIORITY if args.realtime else 0


def bench_realtime(args: Any) -> None:
    """With --realtime, the bench's own thread at PRIORITY (jackd is already realtime)."""
    if args.realtime:
        print(f"  jackd runs at SCHED_FIFO {JACK_PRIORITY}; the bench plays at "
              f"{set_realtime(args.realtime)}")


def set_realtime(priority: int) -> str:
    """SCHED_FIFO at `priority` for the calling thread (threads it starts later inherit it, the
    processes it starts do not); what it got, as scheduler_of says it."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK,
                              os.sched_param(priority))
    except PermissionError as e:
        print(f"  (realtime priority refused for the bench: {e})")
    return scheduler_of(0)


def scheduler_of(pid: int) -> str:
    """'SCHED_FIFO 40' or 'normal': how the kernel schedules a process's main thread."""
    try:
        policy, param = os.sched_getscheduler(pid), os.sched_getparam(pid)
    except ProcessLookupError:
        return "gone"
    return f"SCHED_FIFO {param.sched_priority}" if policy == os.SCHED_FIFO else "normal"


def side_by_side(label: str, figures: dict[Condition, Summary], unit: str = "ms") -> None:
    """p50 and p99 per condition: a row per priority, idle and loaded next to each other."""
    k = UNITS[unit]
    loads = list(dict.fromkeys(c.load for c in figures))
    head = "".join(f"{('idle' if n == 0 else f'load {n}') + ' p50':>14}{'p99':>9}" for n in loads)
    print(f"  {label + f' ({unit})':<34}{head}")
    for prio in dict.fromkeys(c.priority for c in figures):
        cells = ""
        for n in loads:
            s = figures.get(Condition(n, prio))
            cells += (f"{s.p50 / k:>14.3f}{s.p99 / k:>9.3f}" if s is not None and s.n
                      else f"{'-':>14}{'-':>9}")
        print(f"  {'  SCHED_FIFO ' + str(prio) if prio else '  normal priority':<34}{cells}")
