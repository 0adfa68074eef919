"""The end of a long show: how long Session.finish takes (performance.mid, the summary, the
voices' picture, the originality figure) after N records.

The demo (its model, its [spatial] ring) is replayed once on the manual clock; its log's records
are repeated, shifted in time (trajectories.long_show), until there are N. Each repetition writes
them through a fresh Session's log, as a run does (every tap on the log sees them), then times
finish. Peer in the same run, on the same file: the log read back and everything made again from
the records (read_log, summarise, smf.export, picture, the originality figure), timed part by
part: what finish did before it kept what it needs as the records came. With --before DIR, the
same is measured with the code of another checkout (its own finish), in a child process, for
before and after in one run. Torch is imported by the replay here; a live run's finish imports
it for a model piece's originality figure (the model runs in a worker process): that import is
timed on its own, in a fresh process.

    .venv/bin/python bench/finish.py [--records 200000] [--repeat 5] [--before DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, Summary, heading, show, show_ratio
from trajectories import GAP_NS, long_show

import agent
from agent import config as config_mod
from agent.clock import ManualClock
from agent.model.originality import longest_shared_run
from agent.record import smf
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import Session
from agent.record.summary import notes_of, summarise
from agent.spatial.runtime import picture

PARTS = ("read_log", "summarise", "smf.export", "picture", "originality")


def measure(n: int, repeat: int) -> dict[str, Any]:
    """Times of this process's code (the checkout on PYTHONPATH), as JSON for the parent."""
    demo = Path(agent.__file__).resolve().parent.parent / "performances" / "demo"
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as tmp:
        recording = load_recording(demo / "rehearsal.mid")
        cfg = fit_config(recording, config_mod.load(demo / "performance.toml"))
        replay_fast(recording, cfg, Path(tmp) / "replay", "bench")
        _, records = read_log(Path(tmp) / "replay" / "log.jsonl")
        passes = -(-n // len(records))  # long_show's passes are GAP_NS apart
        span_ns = passes * (records[-1]["t"] - records[0]["t"] + GAP_NS)
        show = long_show(records, span_ns / 3600e9)[:n]
        writes = [(r["k"], r["t"], {k: v for k, v in r.items() if k not in ("t", "k")})
                  for r in show]
        figures: dict[str, Any] = {"records": len(show), "hours": (show[-1]["t"] - show[0][
            "t"]) / 3600e9, "write": [], "finish": [], "peer": [], **{p: [] for p in PARTS}}
        for k in range(repeat):
            folder = Path(tmp) / f"run-{k}"
            session = Session(cfg, ManualClock(show[0]["t"]), lambda port, data: True, folder,
                              {"clock": "manual"})
            started = time.perf_counter()
            for kind, t, fields in writes:
                session.log.write(kind, t, **fields)
            figures["write"].append(time.perf_counter() - started)
            started = time.perf_counter()
            session.finish()
            figures["finish"].append(time.perf_counter() - started)
            peer = read_back(cfg, folder, Path(tmp) / f"peer-{k}")
            for part, seconds in peer.items():
                figures[part].append(seconds)
            figures["peer"].append(sum(peer.values()))
    return figures


def read_back(cfg: config_mod.Config, folder: Path, out: Path) -> dict[str, float]:
    """Each part of making the run's files from its log file (what finish did before it kept
    what it needs as the run went), in seconds."""
    out.mkdir()
    times = [time.perf_counter()]
    header, records = read_log(folder / "log.jsonl")
    times.append(time.perf_counter())
    summarise(header, records)
    times.append(time.perf_counter())
    smf.export(header, records, out / "performance.mid")
    times.append(time.perf_counter())
    picture(cfg, records, out)
    times.append(time.perf_counter())
    from agent.model.checkpoint import load  # as finish does (torch: imported by the replay)

    _players, notes = notes_of(records, cfg.agent.outputs[0])
    longest_shared_run([note.pitch for note in notes], load(cfg.model_path()).corpus_lines)
    times.append(time.perf_counter())
    return {part: b - a for part, (a, b) in zip(PARTS, itertools.pairwise(times), strict=True)}


def run_child(source: Path, n: int, repeat: int) -> dict[str, Any]:
    """This bench's measure() with the code of `source` (a checkout), in its own process."""
    done = subprocess.run([sys.executable, __file__, "--child", "--records", str(n),
                           "--repeat", str(repeat)], cwd=source, capture_output=True,
                          text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(source)})
    if done.returncode != 0:
        raise SystemExit(f"the measure with {source} failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return figures


def report(label: str, figures: dict[str, Any]) -> Summary:
    print(f"  {label}")
    show("write the records (the run)", [s * 1e9 for s in figures["write"]], unit="s")
    ours = show("finish", [s * 1e9 for s in figures["finish"]], unit="s")
    peer = show("peer: read back, made again", [s * 1e9 for s in figures["peer"]], unit="s")
    print("    the peer's parts, p50: " + ", ".join(
        f"{part} {float(np.median(figures[part])):.3f} s" for part in PARTS))
    show_ratio("p50 ratio", ours.p50, peer.p50, "finish / read back")
    show_ratio("p99 ratio", ours.p99, peer.p99, "finish / read back")
    return ours


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--records", type=int, default=200_000, help="records in the log")
    p.add_argument("--repeat", type=int, default=5, help="finishes timed (default 5)")
    p.add_argument("--before", type=Path, metavar="DIR",
                   help="also measure the code of this checkout (the code before a change)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.records, args.repeat)))
        return
    now = run_child(REPO, args.records, args.repeat)
    heading(f"finish: the end of a show of {now['records']} records ({now['hours']:.1f} h of "
            f"the demo, repeated), {args.repeat} times")
    ours = report("this checkout", now)
    if args.before:
        before = report(f"before: {args.before}", run_child(args.before.resolve(), args.records,
                                                             args.repeat))
        show_ratio("p50 ratio, finish", ours.p50, before.p50, "this checkout / before")
        show_ratio("p99 ratio, finish", ours.p99, before.p99, "this checkout / before")
    imported = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                               "import torch; print(time.perf_counter() - t)"],
                              capture_output=True, text=True, check=True)
    print(f"  and a live model piece's finish imports torch: {float(imported.stdout):.2f} s "
          "(a fresh process)")


if __name__ == "__main__":
    main()
