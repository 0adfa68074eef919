"""`stage-agent corpus build|list|import`: the training corpora's commands (corpora/README.md).

music21 is imported only by `build`; `import` needs only mido-free reading (agent/model/
corpus_import.py). Recordings are read by the function agent/cli.py passes in (the model floor
does not read logs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agent.errors import EXIT_OK, StageAgentError
from agent.model.corpus import RECIPES, SPLITS, build_corpus, read_manifest
from agent.model.corpus_plan import MIN_WORKS, SEGMENT_BARS
from agent.model.corpus_sources import ReadRecording
from agent.model.corpus_write import (
    DEFAULT_JOBS,
    DEFAULT_MIN_NOTES,
    Imported,
    ImportSettings,
    import_corpus,
)

CORPORA_DIR = Path("corpora")


def add_parsers(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                read_recording: ReadRecording) -> None:
    corpus = sub.add_parser("corpus", help="build, import and list training corpora "
                                           "(corpora/README.md)")
    corpus_sub = corpus.add_subparsers(required=True, metavar="ACTION")
    build = corpus_sub.add_parser("build", help="build a corpus from music21's bundled corpus")
    build.add_argument("name", help=f"one of: {', '.join(RECIPES)}")
    build.add_argument("--root", type=Path, default=CORPORA_DIR,
                       help="folder holding the corpora (default: corpora)")
    build.add_argument("--limit", type=int, help="build only the first N works")
    build.set_defaults(run=_build)

    imp = corpus_sub.add_parser(
        "import", help="make a corpus of your own MIDI files, folders of them and recordings")
    imp.add_argument("sources", nargs="+", metavar="SOURCE",
                     help="a MIDI file, a folder (walked recursively) or a recording folder")
    imp.add_argument("--name", required=True, help="the corpus's name (its folder under --root)")
    imp.add_argument("--root", type=Path, default=CORPORA_DIR,
                     help="folder holding the corpora (default: corpora)")
    imp.add_argument("--licence", help="the terms the music is under, as you declare them "
                                       "(recorded in the manifest and in every model trained "
                                       "on it)")
    imp.add_argument("--provenance", help="where the music comes from, who played or wrote it")
    imp.add_argument("--description", help="what the corpus holds (default: a count of sources)")
    imp.add_argument("--min-notes", type=int, default=DEFAULT_MIN_NOTES,
                     help=f"a work of fewer notes is left out as too short "
                          f"(default {DEFAULT_MIN_NOTES})")
    imp.add_argument("--force", action="store_true", help="replace a corpus of that name")
    imp.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                     help=f"processes reading the files (default {DEFAULT_JOBS}: in this "
                          "process); more pay for thousands of files on a machine with free "
                          "cores")
    imp.add_argument("--json", action="store_true",
                     help="print the summary as JSON, the files and parts left out in it")
    imp.add_argument("--quiet", action="store_true",
                     help="only the summary: not a line for every file and part left out")
    imp.set_defaults(run=lambda args: _import(args, read_recording))

    listing = corpus_sub.add_parser("list", help="the corpus recipes and imported corpora")
    listing.add_argument("--root", type=Path, default=CORPORA_DIR)
    listing.set_defaults(run=_list)


def _build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    corpus = build_corpus(args.name, args.root, limit=args.limit,
                          progress=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - started
    skipped = len(read_manifest(corpus.path)["skipped"])
    per_split = ", ".join(f"{s} {len(corpus.split(s))}" for s in SPLITS)
    notes = sum(len(w.pitch) for w in corpus.works)
    print(f"{corpus.name}: {len(corpus.works)} works ({per_split}), {notes} notes, "
          f"{skipped} skipped, {seconds:.1f} s -> {corpus.path}")
    return EXIT_OK


def _import(args: argparse.Namespace, read_recording: ReadRecording) -> int:
    settings = ImportSettings(name=args.name, root=args.root, licence=args.licence,
                              provenance=args.provenance, description=args.description,
                              min_notes=args.min_notes, force=args.force, jobs=args.jobs)
    started = time.perf_counter()
    result = import_corpus(args.sources, settings, read_recording,
                           say=(lambda _: None) if args.quiet or args.json else
                           (lambda line: print(line, flush=True)))
    summary = import_summary(result, time.perf_counter() - started)
    if args.json:
        print(json.dumps({**summary, "left_out": result.manifest["skipped"]}, indent=1))
    else:
        print(format_import(summary))
    return EXIT_OK


def import_summary(result: Imported, seconds: float) -> dict[str, object]:
    """What came in and what was left out, with the time it took (for people and --json)."""
    m = result.manifest
    notes = sum(int(w["notes"]) for w in m["works"])
    counts = m["counts"]
    return {
        "corpus": str(result.path), "name": m["name"], "works": len(m["works"]),
        "split_unit": m["split_unit"], "splits": {s: m["splits"][s]["works"] for s in SPLITS},
        "notes": notes, "velocity": m["velocity"], "velocity_range": m["velocity_range"],
        "sources": result.sources, "works_from": counts["works_from"],
        "files_left_out": counts["files_left_out"], "parts_left_out": counts["parts_left_out"],
        "drum_parts": counts["drum_parts"], "drum_notes": counts["drum_notes"],
        "other_files_ignored": counts["other_files_ignored"],
        "licence": m["collections"][0]["licence"], "hash": m["hash"],
        "seconds": round(seconds, 3),
        "files_per_second": round(result.sources / seconds, 1) if seconds > 0 else None,
        "notes_per_second": round(notes / seconds) if seconds > 0 else None,
    }


def format_import(s: dict[str, object]) -> str:
    splits = s["splits"]
    assert isinstance(splits, dict)
    unit = "works" if s["split_unit"] == "work" else "segments"
    velocity = (f"flat velocity {s['velocity']}" if s["velocity"] is not None
                else "velocities {}-{}".format(*s["velocity_range"]))  # type: ignore[misc]
    lines = [
        f"{s['name']}: {s['works']} {unit} ({', '.join(f'{k} {v}' for k, v in splits.items())})"
        f" from {s['works_from']} of {s['sources']} files and recordings, {s['notes']} notes, "
        f"{velocity} -> {s['corpus']}",
        f"  left out: {s['files_left_out']} files, {s['parts_left_out']} parts "
        f"({s['drum_parts']} drum parts, {s['drum_notes']} notes); "
        f"{s['other_files_ignored']} other files ignored",
        f"  {s['seconds']} s: {s['files_per_second']} files/s, {s['notes_per_second']} notes/s",
    ]
    if s["split_unit"] == "segment":
        lines.append(f"  fewer than {MIN_WORKS} works: each cut into {SEGMENT_BARS}-bar segments, "
                     "split by segment")
    if s["licence"] is None:
        lines.append("  no --licence declared: the manifest says null (not declared)")
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    imported = sorted(p.parent.name for p in args.root.glob("*/manifest.json")
                      if p.parent.name not in RECIPES)
    for name in [*RECIPES, *imported]:
        path = args.root / name
        description = RECIPES[name].description if name in RECIPES else ""
        try:
            m = read_manifest(path)
        except StageAgentError as e:
            state = "not built" if name in RECIPES else str(e)
        else:
            built = (path / "midi").is_dir() and all(
                (path / "midi" / f"{w['id']}.mid").is_file() for w in m["works"])
            splits = ", ".join(f"{s} {m['splits'][s]['works']}" for s in SPLITS)
            state = (f"{len(m['works'])} works ({splits}), "
                     f"{sum(w['notes'] for w in m['works'])} notes, "
                     f"{len(m['skipped'])} skipped; "
                     + ("MIDI files built" if built else "MIDI files not built"))
            if name not in RECIPES:
                licence = (m["collections"][:1] or [{}])[0].get("licence") or "not declared"
                description = f"{m.get('description', '')} (licence: {licence})"
        print(f"{name}: {state}")
        print(f"  {description}")
    return EXIT_OK
