"""Replay speed of the demo: agent.record.replay.replay_fast on the manual clock, K times.

Each repetition loads the rehearsal (load_recording), fits the demo config and replays it into a
fresh folder (log, performance.mid and summary included), timed with perf_counter. Peer in the
same run, timed the same way: mido's own iteration over the same file (parse + tempo map).

    .venv/bin/python bench/replay_speed.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mido
from _common import REPO, Summary, heading, show, show_ratio

from agent import config as config_mod
from agent.record.replay import fit_config, load_recording, replay_fast

DEMO = REPO / "performances" / "demo"


def agent_replay(mid: Path, toml: Path, out_dir: Path) -> tuple[float, float]:
    """(wall seconds, recording seconds) of one fast replay."""
    started = time.perf_counter()
    recording = load_recording(mid)
    cfg = fit_config(recording, config_mod.load(toml))
    summary = replay_fast(recording, cfg, out_dir, str(mid))
    return time.perf_counter() - started, float(summary["seconds"])


def mido_iterate(mid: Path) -> float:
    started = time.perf_counter()
    for _ in mido.MidiFile(mid):
        pass
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--repeat", type=int, default=20, help="repetitions (default 20)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="stop repeating after this much wall time (default 120)")
    args = p.parse_args()
    mid, toml = DEMO / "rehearsal.mid", DEMO / "performance.toml"
    heading(f"replay speed: {mid.relative_to(REPO)} with {toml.relative_to(REPO)}, "
            f"up to {args.repeat} times")
    walls: list[float] = []
    peer: list[float] = []
    seconds = 0.0
    give_up = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        for k in range(args.repeat):
            if time.monotonic() > give_up:
                break
            wall, seconds = agent_replay(mid, toml, Path(tmp) / f"run-{k}")
            walls.append(wall)
            peer.append(mido_iterate(mid))  # interleaved: both see the same machine
    speeds = [seconds / w for w in walls]
    print(f"  recording: {seconds:.1f} s; {len(walls)} replays")
    ours = show("replay_fast wall", [w * 1e9 for w in walls])
    plain = show("mido MidiFile iteration wall", [w * 1e9 for w in peer])
    s = Summary.of(speeds)
    print(f"  {'speed (recording s / wall s)':<34} p50 {s.p50:9.0f}x worst {min(speeds):9.0f}x"
          f"   (target >= 200x)")
    show_ratio("p50 wall ratio", ours.p50, plain.p50, "replay_fast / mido iteration")
    show_ratio("p99 wall ratio", ours.p99, plain.p99, "replay_fast / mido iteration")


if __name__ == "__main__":
    main()
