"""Drawing the voices' trajectories at the end of a long show (the summary's trajectories.png).

The demo (its [spatial] ring and orbit/wander styles) is replayed once on the manual clock; its
log's records are repeated, shifted in time, until they span `--hours`; then what the end of a
run does is timed: `agent.spatial.runtime.picture` (the engine fed every record, the paths
sampled, the PNG drawn), split into sampling and drawing. Peer in the same run, on the same
records: the paths sampled at every tick of `[spatial] tick_hz` (as before issue 14) and drawn.

    .venv/bin/python bench/trajectories.py [--hours 4] [--no-peer]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, heading, show_ratio

from agent import config as config_mod
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.spatial.engine import trajectories
from agent.spatial.importers import import_layout
from agent.spatial.picture import draw
from agent.spatial.runtime import make_engine, picture

DEMO = REPO / "performances" / "demo"
GAP_NS = 2_000_000_000  # between two passes
TIMES = ("t", "deadline", "cause", "asked")  # a record's times, all shifted together


def long_show(records: list[dict[str, Any]], hours: float) -> list[dict[str, Any]]:
    """The records repeated, each pass shifted past the last, until they span `hours`."""
    span = records[-1]["t"] - records[0]["t"] + GAP_NS
    out: list[dict[str, Any]] = []
    shift = 0
    while not out or out[-1]["t"] - out[0]["t"] < hours * 3600e9:
        for r in records:
            moved = {**r, **{k: r[k] + shift for k in TIMES if isinstance(r.get(k), int)}}
            if r.get("plan"):
                moved["plan"] = [[n[0] + shift, *n[1:]] for n in r["plan"]]
            out.append(moved)
        shift += span
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--hours", type=float, default=4.0, help="length of the show (default 4)")
    p.add_argument("--no-peer", action="store_true", help="skip the tick-rate peer")
    args = p.parse_args(argv)
    heading(f"trajectories: the picture at the end of a {args.hours:g}-hour show (the demo)")
    with tempfile.TemporaryDirectory(prefix="bench-trajectories-") as tmp:
        recording = load_recording(DEMO / "rehearsal.mid")
        cfg = fit_config(recording, config_mod.load(DEMO / "performance.toml"))
        replay_fast(recording, cfg, Path(tmp) / "replay", "bench")
        _, records = read_log(Path(tmp) / "replay" / "log.jsonl")
        show = long_show(records, args.hours)
        hours = (show[-1]["t"] - show[0]["t"]) / 3600e9
        print(f"  {len(show)} records over {hours:.2f} h")
        layout = import_layout(cfg.layout_path(), subwoofers=cfg.spatial.subwoofers)
        speakers = [s.xyz for s in layout.panning_speakers()]

        started = time.perf_counter()
        paths = trajectories(make_engine(cfg, layout), show, cfg.spatial.tick_hz)
        sampled = time.perf_counter()
        picture(cfg, show, Path(tmp))  # samples again, then draws: the whole end-of-run cost
        whole = time.perf_counter() - sampled
        samples = len(paths["lead"])
        print(f"  {'picture() at the end of the run':<34} {whole:8.2f} s "
              f"({whole / hours:.2f} s per hour of show; sampling {sampled - started:.2f} s, "
              f"{samples} samples a voice)")
        if args.no_peer:
            return
        started = time.perf_counter()
        every_tick = trajectories(make_engine(cfg, layout), show, cfg.spatial.tick_hz,
                                  max_samples=1 << 62)
        sampled = time.perf_counter()
        draw(every_tick, speakers, Path(tmp) / "every-tick.png", "every tick")
        peer = time.perf_counter() - started
        print(f"  {'peer: every tick, drawn':<34} {peer:8.2f} s "
              f"({peer / hours:.2f} s per hour of show; sampling {sampled - started:.2f} s, "
              f"{len(every_tick['lead'])} samples a voice)")
        show_ratio("ratio", whole, peer, "picture() / every tick")


if __name__ == "__main__":
    main()
