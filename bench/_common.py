"""Shared helpers for the benchmarks: percentile summaries, ratios, the agent as a subprocess.

Benchmarks print figures; they never assert timing (the machine is shared and noisy, so every
figure is printed next to a peer measured in the same run).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from agent.io.jack_server import JackServer, dummy_jack

REPO = Path(__file__).resolve().parent.parent
READY_PREFIX = "stage-agent: performing"
UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


@dataclass(frozen=True)
class Summary:
    """Percentiles of a sample, in the sample's own unit (usually ns)."""

    n: int
    p50: float
    p99: float
    max: float

    @staticmethod
    def of(values: Iterable[float]) -> Summary:
        arr = np.asarray(list(values), dtype=np.float64)
        if arr.size == 0:
            return Summary(0, float("nan"), float("nan"), float("nan"))
        p50, p99 = np.percentile(arr, [50, 99])
        return Summary(int(arr.size), float(p50), float(p99), float(arr.max()))


def show(label: str, values: Iterable[float] | Summary, unit: str = "ms",
         target: str = "") -> Summary:
    """Print `label  p50 .. p99 .. max ..` (values in ns unless a Summary is given)."""
    s = values if isinstance(values, Summary) else Summary.of(values)
    k = UNITS[unit]
    note = f"   (target {target})" if target else ""
    print(f"  {label:<34} p50 {s.p50 / k:9.3f}  p99 {s.p99 / k:9.3f}  max {s.max / k:9.3f} "
          f"{unit}  n={s.n}{note}")
    return s


def show_ratio(label: str, ours: float, peer: float, what: str = "agent / peer") -> None:
    r = ours / peer if peer else float("nan")
    print(f"  {label:<34} {r:9.2f}x  ({what})")


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sleep_until_ns(deadline_ns: int) -> None:
    """Sleep to an absolute monotonic deadline (no spinning: the machine is shared)."""
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)


def find_port(names: Sequence[str], text: str) -> int:
    hits = [i for i, n in enumerate(names) if text in n]
    if not hits:
        raise SystemExit(f"no MIDI port contains {text!r}: {list(names)}")
    return hits[0]


# -- JACK -----------------------------------------------------------------------------------------
@dataclass
class Jack:
    server: JackServer
    period: int
    rate: int
    xruns: int | None = None  # counted when the server stops (its log goes with it)

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    @property
    def period_ms(self) -> float:
        return self.period / self.rate * 1e3

    def report(self) -> None:
        print(f"  JACK dummy server: period {self.period} frames at {self.rate} Hz "
              f"({self.period_ms:.2f} ms); "
              f"{self.server.xruns() if self.xruns is None else self.xruns} client xruns")


@contextmanager
def jack(name: str, period: int = 128, rate: int = 48000) -> Iterator[Jack]:
    """agent.io.jack_server.dummy_jack, with its period and xrun count for the report."""
    with dummy_jack(name, period, rate) as server:
        info = Jack(server, period, rate)
        try:
            yield info
        finally:
            info.xruns = server.xruns()


# -- a tiny TOML writer (the venv has no tomli_w); enough for performance.toml ------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_toml(path: Path, table: dict[str, Any]) -> None:
    lines: list[str] = []
    for name, section in table.items():
        rows = section if isinstance(section, list) else [section]
        for row in rows:
            lines.append(f"[[{name}]]" if isinstance(section, list) else f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in row.items()]
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


# -- the agent as a subprocess ---------------------------------------------------------------------
class AgentProcess:
    """`python -m agent.cli perform CONFIG`, its stdout read on a thread (never blocks)."""

    def __init__(self, config: Path, env: dict[str, str], stderr_path: Path) -> None:
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "perform", str(config)],
            cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_ready(self, timeout_s: float = 30.0) -> Path:
        """Wait for the 'performing' line; return the recording folder it names."""
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
            if line.startswith(READY_PREFIX):
                return Path(line.split("recording to ", 1)[1].strip())
        self.stop(5.0)
        err = self.stderr_path.read_text(errors="replace")
        raise SystemExit(f"the agent did not start:\n{chr(10).join(self.output)}\n{err}")

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM, wait, and return everything it printed after the ready line."""
        mark = len(self.output)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.output.append("(killed: no exit within the timeout after SIGTERM)")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
        self._stderr.close()
        return "\n".join(self.output[mark:])
