"""The `stage-agent` command: ports, perform, replay, demo, corpus, train, eval, evaluate,
report, compare."""

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
from typing import Any

from agent import __version__
from agent import config as config_mod
from agent.console import say
from agent.errors import EXIT_FAILURE, EXIT_OK, StageAgentError
from agent.io.instance_lock import one_instance
from agent.io.ports import choose_backend, list_ports
from agent.model import commands as model_commands
from agent.model import corpus_commands
from agent.record.corpus_recording import read_recording
from agent.record.evaluate import evaluate as evaluate_recording
from agent.record.evaluate import format_report as format_evaluation
from agent.record.overrides import MODE_CHOICES, Overrides, parse_styles
from agent.record.replay import (
    Recording,
    default_note,
    fit_config,
    load_recording,
    replay_dir,
    replay_fast,
)
from agent.record.scrub import OptionError, describe_window, parse_bars, parse_seconds, scrub
from agent.record.strict import strict_replay
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
    p.add_argument("--version", action="version", version=f"stage-agent {__version__}")
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
    replay.add_argument("--from", dest="from_ns", type=_seconds, metavar="T0",
                        help="replay from T0: seconds from the recording's first record")
    replay.add_argument("--to", dest="to_ns", type=_seconds, metavar="T1",
                        help="replay up to T1 (excluded): seconds from the first record")
    replay.add_argument("--bars", type=_bars, metavar="A-B",
                        help="replay bars A to B (from 1, inclusive) of the beat the agent heard")
    replay.add_argument("--loop", type=_passes, default=1, metavar="N",
                        help="play the window N times back to back (the agent is not reset)")
    _add_overrides(replay)
    replay.add_argument("--strict", action="store_true",
                        help="replay the whole log with its own config and seed; stop at the "
                             "first emitted message that differs from the recorded one (exit 1)")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(run=_replay)

    demo = sub.add_parser("demo", help="replay the shipped demo rehearsal (no hardware needed)")
    demo.add_argument("--out", type=Path)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(run=_demo, recording=DEMO_DIR / "rehearsal.mid",
                      config=DEMO_DIR / "performance.toml", seed=None, realtime=False,
                      from_ns=None, to_ns=None, bars=None, loop=1, strict=False, mode=None,
                      styles=None)

    layout = sub.add_parser("layout", help="speaker layouts: show one, import SpatGRIS/IEM files "
                            "(layouts/README.md)")
    layout_sub = layout.add_subparsers(required=True, metavar="ACTION")
    show = layout_sub.add_parser("show", help="what a layout file holds (any supported format)")
    show.add_argument("path", type=Path)
    show.add_argument("--speakers", action="store_true", help="list every speaker")
    show.add_argument("--subwoofers", type=_channels, default=(),
                      help="channels that are subwoofers (SpatGRIS files do not say), e.g. 94-98")
    show.set_defaults(run=_layout_show)
    imp = layout_sub.add_parser("import", help="convert a SpatGRIS XML or IEM JSON layout into "
                                "the project's format")
    imp.add_argument("source", type=Path)
    imp.add_argument("out", type=Path)
    imp.add_argument("--subwoofers", type=_channels, default=())
    imp.add_argument("--aed", action="store_true",
                     help="write azimuth/elevation/distance (for hand editing) instead of xyz")
    imp.set_defaults(run=_layout_import)

    corpus_commands.add_parsers(sub, read_recording)
    model_commands.add_parsers(sub)
    ev = sub.add_parser("evaluate", help="how the agent's part fits the players' (a recording)")
    ev.add_argument("recording", type=Path, help="a recording folder or its log.jsonl")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.set_defaults(run=_evaluate)
    rep = sub.add_parser("report", help="an HTML page with pictures of a recording")
    rep.add_argument("recording", type=Path, help="a recording folder or its log.jsonl")
    rep.add_argument("--out", type=Path, help="the report folder (default: report/ in the "
                                              "recording folder)")
    rep.set_defaults(run=_report)
    cmp = sub.add_parser("compare", help="re-improvise a recording with other settings and "
                         "show both runs side by side (an HTML page)")
    cmp.add_argument("recording", type=Path, help="a recording folder or its log.jsonl (run A)")
    cmp.add_argument("--config", type=Path, help="performance.toml for run B (default: the "
                                                 "recorded one)")
    cmp.add_argument("--checkpoint", type=Path, help="the model for run B")
    cmp.add_argument("--seed", type=int, help="the performance seed for run B")
    _add_overrides(cmp)
    cmp.add_argument("--out", type=Path, help="the comparison folder (default: a new one under "
                                              "compare/ in the recording folder)")
    cmp.set_defaults(run=_compare)
    return p


def _add_overrides(command: argparse.ArgumentParser) -> None:
    """replay's and compare's --mode and --styles (agent/record/overrides.py)."""
    command.add_argument("--mode", choices=MODE_CHOICES,
                         help="play the whole recording in this mode (sections' and recorded "
                              "commands' modes are dropped)")
    command.add_argument("--styles", type=_styles, metavar="NAME[:WEIGHT],...",
                         help="blend the model's styles with these weights, e.g. "
                              "oneill-1850:0.7,bach-chorales:0.3 (a name alone weighs 1)")


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
    with one_instance(cfg):  # held until the recording is written; a second one: exit 2
        summary = asyncio.run(perform(cfg))
    say(format_summary(summary))  # stdout may be gone (a closed terminal): still exit 0
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    recording = load_recording(args.recording)
    if args.strict:
        return _strict(args, recording)
    cfg = fit_config(recording, config_mod.load(args.config) if args.config else None)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, performance=dataclasses.replace(
            cfg.performance, seed=args.seed))
    out = args.out or replay_dir(cfg, args.config, "-replay")
    header: dict[str, Any] = {}
    window = scrub(args.recording, recording, args.config is None, args.from_ns, args.to_ns,
                   args.bars, args.loop)
    if window is not None:  # a window of it, or a loop: a re-improvisation
        recording, header = window
    # After the window: the controls it puts back at its start are overridden too.
    recording, cfg = Overrides(args.mode, args.styles).apply(recording, cfg)
    if (note := default_note(cfg)) is not None:  # on stderr: --json's stdout stays JSON
        print(f"stage-agent: {note}", file=sys.stderr)
    started = time.perf_counter()
    if args.realtime:
        from agent.service import rehearse  # opens real ports only when asked to

        summary = asyncio.run(rehearse(recording, cfg, out, str(args.recording), header))
    else:
        summary = replay_fast(recording, cfg, out, str(args.recording), header=header)
    wall = time.perf_counter() - started
    summary["wall_seconds"] = round(wall, 3)
    summary["speed"] = round(summary["seconds"] / wall, 1) if wall > 0 else None
    summary.update(header)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        if window is not None:
            print(describe_window(header["window"]))
        print(format_summary(summary))
        if not args.realtime:
            print(f"  replayed {summary['seconds']:.1f} s in {wall:.2f} s "
                  f"({summary['speed']}x real time)")
    return EXIT_OK


def _strict(args: argparse.Namespace, recording: Recording) -> int:
    """`replay --strict`: exit 0 when every emitted message matched, 1 at a divergence."""
    given = [name for name, value in (("--config", args.config), ("--seed", args.seed),
                                      ("--from", args.from_ns), ("--to", args.to_ns),
                                      ("--bars", args.bars)) if value is not None]
    given += ["--realtime"] * args.realtime + ["--loop"] * (args.loop != 1)
    given += Overrides(args.mode, args.styles).given()
    if given:
        raise OptionError(f"--strict replays the whole log with its own config and seed: it "
                          f"cannot be combined with {', '.join(given)}")
    cfg = fit_config(recording, None)
    out = args.out or replay_dir(cfg, None, "-strict")
    result = strict_replay(args.recording, recording, out)
    if args.json:
        print(json.dumps({"matched": result.matched, "identical": result.divergence is None,
                          "divergence": dataclasses.asdict(result.divergence)
                          if result.divergence else None, "replay": str(out)}, indent=2))
    else:
        print(result.report)
    return EXIT_OK if result.divergence is None else EXIT_FAILURE


def _seconds(text: str) -> int:
    try:
        return parse_seconds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bars(text: str) -> tuple[int, int]:
    try:
        return parse_bars(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _styles(text: str) -> tuple[tuple[str, float], ...]:
    try:
        return parse_styles(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _passes(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: --loop takes a number of passes >= 1")
    return int(text)


def _evaluate(args: argparse.Namespace) -> int:
    report = evaluate_recording(args.recording)
    print(json.dumps(report, indent=1) if args.json else format_evaluation(report))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from agent.report.build import write_report  # matplotlib only when drawing

    print(write_report(args.recording, args.out))
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from agent.report.compare import write_compare  # matplotlib (and the model) only here

    print(write_compare(args.recording, args.out, args.config, args.checkpoint, args.seed,
                        Overrides(args.mode, args.styles)))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    return _replay(args)


def _channels(text: str) -> tuple[int, ...]:
    """"94-98" or "94,95,98" -> channel numbers."""
    out: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            out += range(int(low), int(high or low) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a channel list like 94-98") from None
    return tuple(out)


def _layout_show(args: argparse.Namespace) -> int:
    from agent.spatial.importers import import_layout

    print(import_layout(args.path, subwoofers=args.subwoofers).describe(speakers=args.speakers))
    return EXIT_OK


def _layout_import(args: argparse.Namespace) -> int:
    from agent.spatial.importers import import_layout
    from agent.spatial.layout import save_layout

    layout = import_layout(args.source, subwoofers=args.subwoofers)
    save_layout(layout, args.out, coordinates="aed" if args.aed else "xyz")
    print(f"{args.out}: {layout.describe()}".splitlines()[0])
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
