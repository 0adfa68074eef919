"""Shared helpers for the benchmarks: percentile summaries, ratios, the agent as a subprocess,
a mosquitto broker, /proc figures and small helpers for long runs.

Benchmarks print figures; they never assert timing (the machine is shared and noisy, so every
figure is printed next to a peer measured in the same run).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from agent import config as config_mod
from agent import midi
from agent.config import Config
from agent.io.jack_server import JackServer, dummy_jack

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests' mosquitto launcher: one for tests and benches
from tests.integration.broker import MOSQUITTO, Broker, free_port  # noqa: E402

__all__ = ["MOSQUITTO", "Broker", "free_port"]  # re-exported for the benches
READY_PREFIX = "stage-agent: performing"
MODEL = REPO / "models" / "demo.pt"
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

    def ms(self) -> dict[str, float]:
        """The figures in ms (a sample in ns), for JSON."""
        return {"n": self.n, "p50": self.p50 / 1e6, "p99": self.p99 / 1e6, "max": self.max / 1e6}


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
def jack(name: str, period: int = 128, rate: int = 48000, realtime_priority: int = 0
         ) -> Iterator[Jack]:
    """agent.io.jack_server.dummy_jack, with its period and xrun count for the report."""
    with dummy_jack(name, period, rate, realtime_priority) as server:
        info = Jack(server, period, rate)
        try:
            yield info
        finally:
            info.xruns = server.xruns()


class PacedMidi:
    """A JACK client (JACK-Client, cffi over libjack) writing MIDI in its own process callback:
    message(i) for i = 0, 1, ... (at most `total`, if given) at `rate` a second, each at its
    exact frame, while `running` is set. Sending from the process callback takes rtmidi's output
    path (a ring buffer filled from another thread) out of the measurement, so what receivers
    lose is theirs or the server's, never the sender's. For a child process: JACK-Client is
    imported here, so a bench's own process never needs it."""

    def __init__(self, client_name: str, port_name: str, rate: float,
                 message: Callable[[int], bytes], total: int | None = None) -> None:
        import jack

        self.client = jack.Client(client_name)
        self.port = self.client.midi_outports.register(port_name)
        self.running = False
        self.sent = 0
        self._message, self._total, self._frame = message, total, 0
        self._frames_per_message = self.client.samplerate / rate
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        if not self.running:
            return
        while self._total is None or self.sent < self._total:
            offset = round(self.sent * self._frames_per_message) - self._frame
            if offset >= frames:
                break
            self.port.write_midi_event(max(offset, 0), self._message(self.sent))
            self.sent += 1
        self._frame += frames


# -- a tiny TOML writer (the venv has no tomli_w); enough for performance.toml ------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)  # inf and nan are TOML's spelling too
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (a section's controls, [spatial] players, ...)
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_toml(path: Path, table: dict[str, Any]) -> None:
    """Top-level tables as [name] or [[name]]; anything deeper inline."""
    lines: list[str] = []
    for name, section in table.items():
        rows = section if isinstance(section, list) else [section]
        for row in rows:
            lines.append(f"[[{_toml_key(name)}]]" if isinstance(section, list)
                         else f"[{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in row.items()]
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


# -- the agent as a subprocess ---------------------------------------------------------------------
class AgentProcess:
    """`python -m agent.cli perform CONFIG`, its stdout read on a thread (never blocks)."""

    def __init__(self, config: Path, env: dict[str, str], stderr_path: Path,
                 source: Path = REPO) -> None:
        """`source`: the checkout whose code runs (`-m` imports from the working folder)."""
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "perform", str(config)],
            cwd=source, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=self._stderr,
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

    def stop(self, timeout_s: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> str:
        """`sig` (SIGTERM; SIGHUP as a closed terminal), wait, and return everything it printed
        after the ready line."""
        mark = len(self.output)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.output.append(f"(killed: no exit within the timeout after {sig.name})")
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


# -- a mosquitto broker ----------------------------------------------------------------------------
# Debian installs the broker in sbin, which is not on every user's PATH.
def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as {field: value} (e.g. VmRSS "123456 kB"), {} once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """CPU time (user + system) of a process, or of one of its threads (the main thread's id
    is the pid), from /proc; None once it is gone."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_mib(pid: int) -> float | None:
    """Resident set size of a process (VmRSS), or None once it is gone."""
    rss = proc_status(pid).get("VmRSS")
    return int(rss.split()[0]) / 1024 if rss else None


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (e.g. the agent's model worker)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(x) for x in text.split()]


# -- small helpers for long runs -------------------------------------------------------------
T = TypeVar("T")


def first(values: Iterable[T]) -> T | None:
    return next(iter(values), None)


def every(t0: int, period_s: float, times: list[float] | None, stop: threading.Event,
          action: Callable[[int], None]) -> threading.Thread:
    """A thread calling action(k) at t0 + each time (or every period_s) until stopped."""
    def run() -> None:
        k = 0
        while not stop.is_set():
            if times is not None and k >= len(times):
                return
            at = t0 + round((times[k] if times is not None else k * period_s) * 1e9)
            while not stop.is_set() and time.monotonic_ns() < at:
                time.sleep(min(0.1, max(at - time.monotonic_ns(), 0) / 1e9))
            if not stop.is_set():
                action(k)
            k += 1
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def rss_growth(samples: list[tuple[int, float]], since: int) -> dict[str, float]:
    """Start, end, peak, growth (MiB) and the linear fit's slope (MiB/hour) after warm-up."""
    pts = [(t, m) for t, m in samples if t >= since]
    if len(pts) < 2:
        return {}
    t = np.array([p[0] - pts[0][0] for p in pts], dtype=np.float64) / 3.6e12
    m = np.array([p[1] for p in pts], dtype=np.float64)
    return {"samples": len(pts), "start": float(m[0]), "end": float(m[-1]),
            "peak": float(m.max()), "growth": float(m[-1] - m[0]),
            "per_hour": float(np.polyfit(t, m, 1)[0])}


def sequence_number(data: bytes | list[int]) -> int:
    """The 18-bit number a bench's sender carries in a message's channel and two data bytes."""
    return ((data[0] & 0x0F) << 14) | (data[1] << 7) | data[2]


def sounding_notes(messages: list[tuple[int, bytes]],
                   all_notes_off: bool = True) -> list[tuple[int, int]]:
    """(channel, pitch) of every note whose last message was a note-on. `all_notes_off`: and
    no CC123/CC120 on its channel since, which a synth silences it with; False for what the
    agent sent, which must release every note with its own note-off (a synth in omni mode
    ignores CC123)."""
    on: set[tuple[int, int]] = set()
    for _, d in messages:
        if midi.is_note_on(d):
            on.add((d[0] & 0x0F, d[1]))
        elif midi.is_note_off(d):
            on.discard((d[0] & 0x0F, d[1]))
        elif all_notes_off and len(d) >= 2 and d[0] & 0xF0 == 0xB0 and d[1] in (120, 123):
            on = {note for note in on if note[0] != d[0] & 0x0F}
    return sorted(on)


def corpus_config(players: list[str], mode: str, style: str | dict[str, float] | None,
                  metre: tuple[int, int] = (4, 4), checkpoint: Path = MODEL,
                  memory_from: Sequence[str] = ()) -> Config:
    """The agent for a corpus rehearsal: a model (the shipped one) in a style (the corpus's
    name) or a blend {style: weight} (None: no model, the live memory alone), in `mode`,
    counting the bar as the piece's time signature says (as a player reading it would);
    `memory_from`: corpora priming the live memory."""
    beats_per_bar, division = config_mod.metre_of(*metre)
    blend = {} if style is None else {style: 1.0} if isinstance(style, str) else style
    model = {} if not blend else {"checkpoint": str(checkpoint), "styles": list(blend),
                                  "style_weights": list(blend.values())}
    return config_mod.from_dict({
        "performance": {"name": "targets", "seed": 7, "beats_per_bar": beats_per_bar,
                        "beat_division": division},
        "players": [{"name": n, "port": f"virtual:{n}"} for n in players],
        "agent": {"mode": mode, "outputs": ["virtual:out"], "channel": 3},
        "respond": {"phrase_gap_beats": 0.5, "max_notes": 16, "memory_from": list(memory_from)},
        "model": model,
    }, str(REPO / "bench" / "targets.toml"))


def piece_config(toml: Path, mode: str | None = None) -> Config:
    """A piece's performance.toml; with a mode, in that mode throughout (without its sections)."""
    cfg = config_mod.load(toml)
    if mode is None:
        return cfg
    table = cfg.to_dict()
    table.update(agent={**table["agent"], "mode": mode}, sections=[])
    return config_mod.from_dict(table, str(toml))


def no_nan(value: Any) -> Any:
    """JSON has no NaN: an empty figure is null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nan(v) for v in value]
    return value
