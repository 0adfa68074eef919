"""The `stage-agent` command: ports, perform, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from agent import config as config_mod
from agent.errors import EXIT_OK, StageAgentError
from agent.io.ports import choose_backend, list_ports
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import new_recording_dir
from agent.record.summary import format_summary

DEMO_DIR = Path(__file__).resolve().parent.parent / "performances" / "demo"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except StageAgentError as e:
        print(f"stage-agent: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stage-agent", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    ports = sub.add_parser("ports", help="list MIDI inputs and outputs and the API in use")
    ports.add_argument("--backend", default="auto", choices=config_mod.BACKENDS)
    ports.set_defaults(run=_ports)

    perform = sub.add_parser("perform", help="play live on the ports a performance.toml names")
    perform.add_argument("config", type=Path)
    perform.set_defaults(run=_perform)

    replay = sub.add_parser("replay", help="feed a recording (log or MIDI file) through the agent")
    replay.add_argument("recording", type=Path, help="a recording folder, log.jsonl, or .mid")
    replay.add_argument("--config", type=Path, help="performance.toml (default: the recorded one)")
    replay.add_argument("--seed", type=int, help="override the performance seed")
    replay.add_argument("--out", type=Path, help="output folder (default: a new one under the "
                                                 "config's record.dir)")
    replay.add_argument("--realtime", action="store_true",
                        help="replay at real speed and play the agent to its output ports")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(run=_replay)

    demo = sub.add_parser("demo", help="replay the shipped demo rehearsal (no hardware needed)")
    demo.add_argument("--out", type=Path)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(run=_demo, recording=DEMO_DIR / "rehearsal.mid",
                      config=DEMO_DIR / "performance.toml", seed=None, realtime=False)
    return p


def _ports(args: argparse.Namespace) -> int:
    backend = choose_backend(args.backend)
    found = list_ports(backend)
    print(f"MIDI API: {backend.name}")
    for kind in ("inputs", "outputs"):
        print(f"{kind}:")
        for name in found[kind] or ["(none)"]:
            print(f"  {name}")
    return EXIT_OK


def _perform(args: argparse.Namespace) -> int:
    from agent.service import perform  # imports rtmidi port code only when performing

    cfg = config_mod.load(args.config)
    summary = asyncio.run(perform(cfg))
    print(format_summary(summary))
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    recording = load_recording(args.recording)
    cfg = fit_config(recording, config_mod.load(args.config) if args.config else None)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, performance=dataclasses.replace(
            cfg.performance, seed=args.seed))
    base = Path(cfg.source).parent if Path(cfg.source).exists() else Path.cwd()
    out = args.out or new_recording_dir(base / cfg.record.dir, cfg.performance.name, "-replay")
    started = time.perf_counter()
    if args.realtime:
        from agent.service import rehearse  # opens real ports only when asked to

        summary = asyncio.run(rehearse(recording, cfg, out, str(args.recording)))
    else:
        summary = replay_fast(recording, cfg, out, str(args.recording))
    wall = time.perf_counter() - started
    summary["wall_seconds"] = round(wall, 3)
    summary["speed"] = round(summary["seconds"] / wall, 1) if wall > 0 else None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if not args.realtime:
            print(f"  replayed {summary['seconds']:.1f} s in {wall:.2f} s "
                  f"({summary['speed']}x real time)")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    return _replay(args)


if __name__ == "__main__":
    sys.exit(main())
