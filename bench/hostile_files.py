"""Hostile or odd recordings through every command that reads one: how long each takes to be
refused, how much memory it takes, and what it says.

The files are made from a fast replay of the demo (`stage-agent replay` of its rehearsal): one
record of the log made bad in each way (not an object, keys missing, `"t": 1e999`, a 5,000-digit
int, bad hex, an unknown player, invalid UTF-8, a line of 64 MiB), one huge time gap (a spatial
piece: the demo has a speaker layout), the log replaced by a FIFO or by a symlink to /dev/zero,
a header pointing the replay's output elsewhere, and a MIDI file with division 0. Each command
(`replay`, `replay --strict`, `evaluate`, `report`) runs as its own process
(`python -m agent.cli`), under a memory limit and a timeout, so a hang or a runaway shows as such
instead of stopping the bench. Prints one line per file and command: exit code, wall seconds,
peak RSS (MB), and the first line of stderr; the first case, a recording that does not exist,
is the floor (the interpreter's start, the refusal, the exit). Target: every bad file refused
as fast as a missing one (exit 2), with the same peak RSS; the gaps read in bounded time and
memory (exit 0).

Command: `python bench/hostile_files.py [--timeout 30] [--memory-mb 3000]` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "performances" / "demo"
COMMANDS = ("replay", "replay --strict", "evaluate", "report")
Lines = list[str]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per command")
    p.add_argument("--memory-mb", type=int, default=3000, help="address space per command")
    p.add_argument("--only", help="run only the cases whose name contains this")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = make_cases(work)
        print(f"{'case':<16} {'command':<16} {'exit':>5} {'s':>6} {'MB':>6}  says")
        for name, path in cases.items():
            if args.only and args.only not in name:
                continue
            commands = ("replay",) if path.suffix == ".mid" else COMMANDS
            for command in commands:
                code, seconds, mb, says = run(command, path, work / "out", args.timeout,
                                              args.memory_mb)
                print(f"{name:<16} {command:<16} {code:>5} {seconds:>6.2f} {mb:>6.0f}  "
                      f"{says[:110]}", flush=True)
        escaped = work / "escaped"
        print(f"written where a log's header said ({escaped}): "
              f"{sorted(p.name for p in escaped.iterdir()) if escaped.exists() else 'nothing'}")
    return 0


def run(command: str, path: Path, out: Path, timeout: float,
        memory_mb: int) -> tuple[int | str, float, float, str]:
    """One command on one file: (exit code or "hang"/"killed", seconds, peak RSS MB, stderr)."""
    out.mkdir(exist_ok=True)
    # No --out: each writes where it chooses by default (the working folder is `out`).
    argv = [sys.executable, "-m", "agent.cli", *command.split(), str(path)]

    def limit() -> None:
        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=limit, env=env, cwd=out)
        code: int | str = "hang"
        while True:  # os.wait4: this child's own peak RSS (RUSAGE_CHILDREN keeps the largest)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - started > timeout:
                proc.kill()
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        proc.returncode = -1  # reaped here, not by Popen
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip().splitlines()
    rss_mb = usage.ru_maxrss / 1024
    says = next((line for line in text if "error" in line.lower()), text[-1] if text else "")
    if code == -9:
        code = "killed"
    return code, seconds, rss_mb, says


def make_cases(work: Path) -> dict[str, Path]:
    """The demo replayed once, then one bad copy of its log per case."""
    subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(DEMO / "rehearsal.mid"),
                    "--config", str(DEMO / "performance.toml"), "--out", str(work / "demo")],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ,
                                                                "PYTHONPATH": str(ROOT)})
    lines = (work / "demo" / "log.jsonl").read_text().splitlines()
    header, records = lines[0], lines[1:]
    first_in = next(i for i, r in enumerate(records) if '"k":"in"' in r)
    t = json.loads(records[first_in])["t"]
    last_t = json.loads(records[-1])["t"]

    def one(record: str) -> Callable[[], Lines]:
        return lambda: [header, *records[:first_in], record, *records[first_in + 1:]]

    stop = next(i for i, r in enumerate(records) if '"what":"stop"' in r)

    def gap(ns: int) -> Callable[[], Lines]:
        """A note `ns` after the last one before the stop; the stop and what follows it later
        by as much."""
        def later(record: str) -> str:
            r = json.loads(record)
            return json.dumps({**r, "t": r["t"] + ns + 1})
        return lambda: [header, *records[:stop], heard(last_t + ns),
                        *map(later, records[stop:])]

    cases: dict[str, Callable[[], Lines] | bytes] = {
        "not-an-object": one("[1, 2, 3]"),
        "keys-missing": one('{"t": 5, "k": "in"}'),
        "t-1e999": one(heard("1e999")),
        "5000-digits": one(heard("9" * 5000)),
        "bad-hex": one(heard(t, data="9zz")),
        "unknown-player": one(heard(t, player="nobody")),
        "gap-12-days": gap(10**15),  # the demo is a spatial piece (a ring of 8 speakers)
        "gap-3-years": gap(10**17),
        "header-elsewhere": lambda: [_elsewhere(header, work), *records],
        "bad-utf8": "\n".join([header, *records]).encode().replace(
            b'"player":"melody"', b'"player":"mel\xffody"', 1),
        "64MiB-line": "\n".join([header, "[" + "0," * 2**25 + "0]", *records]).encode(),
    }
    out: dict[str, Path] = {"missing": work / "missing"}  # the floor: start, refuse, exit
    for name, made in cases.items():
        folder = work / name
        folder.mkdir()
        data = made if isinstance(made, bytes) else ("\n".join(made()) + "\n").encode()
        (folder / "log.jsonl").write_bytes(data)
        out[name] = folder
    (work / "fifo").mkdir()
    os.mkfifo(work / "fifo" / "log.jsonl")
    out["fifo"] = work / "fifo"
    (work / "dev-zero").mkdir()
    os.symlink("/dev/zero", work / "dev-zero" / "log.jsonl")
    out["dev-zero"] = work / "dev-zero"
    # A type-0 file whose division (ticks per beat) is 0: every time in it divides by zero.
    track = bytes([0x00, 0x90, 60, 64, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    (work / "division-0.mid").write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0)
                                          + b"MTrk" + struct.pack(">I", len(track)) + track)
    out["division-0"] = work / "division-0.mid"
    return out


def heard(t: int | str, player: str = "melody", data: str = "903c40") -> str:
    """An `in` record (`t` as given: a number, or any text to put there)."""
    return f'{{"t": {t}, "k": "in", "player": "{player}", "data": "{data}"}}'


def _elsewhere(header: str, work: Path) -> str:
    """The header with its record.dir and performance name pointing out of the working folder
    (a replay with the recorded config must not write there)."""
    h = json.loads(header)
    h["config"]["record"]["dir"] = str(work / "a" / "b")
    h["config"]["performance"]["name"] = "../../escaped/x"
    return json.dumps(h)


if __name__ == "__main__":
    sys.exit(main())
