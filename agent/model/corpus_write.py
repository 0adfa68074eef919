"""`stage-agent corpus import`: the pieces found become a corpus folder, written atomically.

Everything is read first (agent/model/corpus_sources.py), in order of path; what cannot be used
is listed with its reason and the import goes on. Then the works get ids and splits and the
folder is written as a hidden temporary folder beside the target (`.<name>.import-<pid>`), which
is renamed into place only when complete: an import that is interrupted or fails leaves the old
corpus as it was. The next import of that name removes what a killed one left behind.

Ids and the split (segments below MIN_WORKS works) are agent/model/corpus_plan.py's.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from agent.errors import CorpusError, OutputError
from agent.files import safe_name
from agent.model.corpus import (
    CORPUS_FORMAT,
    CORPUS_VERSION,
    IMPORTED_BY,
    RECIPES,
    SPLITS,
    TICKS_PER_BEAT,
    corpus_hash,
    write_manifest,
)
from agent.model.corpus_import import Piece, Skip, piece_bytes
from agent.model.corpus_plan import ID_CHARS, MIN_WORKS, SEGMENT_BARS, plan
from agent.model.corpus_sources import Found, ReadRecording, Source, find_sources, read_source

DEFAULT_MIN_NOTES = 16  # a work of fewer notes is too short to learn from (a sound check)
# One process reads by default: on a 2-core machine already busy, two reading processes were
# slower (bench/corpus_import.py: 103 files 0.57 s in one, 1.86 s in two, starting them costs
# 0.4-1.3 s; 1,839 files 5.7 s against 5.9 s). --jobs N is for thousands of files and free cores.
DEFAULT_JOBS = 1
MIN_SOURCES_PER_JOB = 32  # and a process more only for at least this many sources each
PROGRESS_EVERY = 250  # sources between progress lines

RULES = {
    "velocity": "as played: every note-on's velocity is kept. The corpus's `velocity` is that "
                "one value when every note has it (flat dynamics), else null",
    "tempo": "`bpm` is the source's first tempo (120 without one); the whole tempo map is "
             "kept in the MIDI file's conductor track. Onsets and lengths are in quarter-note "
             "beats, however the tempo changes. SMPTE-timed files and recordings are counted "
             "in beats at their first tempo",
    "repeats": "as played: a MIDI file holds its repeats written out",
    "timing": f"{TICKS_PER_BEAT} ticks per quarter note (each source's ticks rounded to the "
              "nearest); notes paired as the agent hears live input (agent/listen/keys.py): "
              "note-on at velocity 0 ends a note, a key struck again ends its old note, a note "
              "held by the sustain or sostenuto pedal sounds until the pedal lifts, a note still "
              "sounding when its track ends ends there; notes of no length (grace notes written "
              "as 0 ticks) are left out and counted",
    "meter_and_key": "bar_beats, time_signature and key from the first time and key "
                     "signature (4/4 and null without); every later one is kept in the MIDI file",
    "parts": "each source track's channels are its parts, one track each in the corpus file, "
             "on the channel they were played on, with their first program change; a "
             "recording's parts are its players (never the agent's own part)",
    "drums": "channel 10, and a channel a bank select (MSB 120 or 127) or a Roland GS SysEx "
             "makes a drum kit, are left out as parts and counted",
    "split": f"from {MIN_WORKS} works, by work id: int(sha256(id), 16) % 10 == 0 -> test, "
             "== 1 -> valid, else train; a split left empty takes the work of lowest "
             f"sha256(id) from the largest split. Below {MIN_WORKS} works, each work is cut "
             f"into {SEGMENT_BARS}-bar segments at its bar lines (id <work>.b<first bar>), "
             "split the same way",
}


@dataclass(frozen=True)
class ImportSettings:
    name: str
    root: Path = Path("corpora")
    licence: str | None = None
    provenance: str | None = None
    description: str | None = None
    min_notes: int = DEFAULT_MIN_NOTES
    force: bool = False
    jobs: int = DEFAULT_JOBS  # processes reading the sources (1: this one)


@dataclass(frozen=True)
class LeftOut:
    source: str  # as given
    part: str | None  # None: the whole source
    reason: str

    def line(self) -> str:
        where = self.source if self.part is None else f"{self.source}, {self.part}"
        return f"left out {where}: {self.reason}"

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "part": self.part, "reason": self.reason}


@dataclass(frozen=True)
class Imported:
    path: Path
    manifest: dict[str, Any]
    sources: int  # files and recordings read


def import_corpus(given: Sequence[str], settings: ImportSettings, read_recording: ReadRecording,
                  say: Callable[[str], None] = lambda _: None) -> Imported:
    """Read everything under `given` into settings.root/settings.name (CorpusError, exit 2,
    when nothing usable came in or it is too small to validate; the old corpus stays)."""
    target = _target(settings)
    _clear_leftovers(target)
    _check_replace(target, settings.force)
    found = find_sources(given)
    tmp = target.with_name(f".{target.name}.import-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "midi").mkdir(parents=True)
        read = _read_all(found, settings, read_recording, say)
        if not read.kept:
            raise CorpusError(_nothing_usable(given, found))
        works, unit = plan([(source.stem, piece) for source, piece in read.kept])
        manifest = _write(tmp, works, unit, read, settings, given, found)
        _swap(tmp, target)
    except OSError as e:  # a read-only folder, a full disk: not the sources' fault
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{target}: cannot write the corpus ({e.strerror or e}); nothing "
                          "imported, an old corpus of that name is as it was") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Imported(target, manifest, len(found.sources))


def _target(settings: ImportSettings) -> Path:
    name = settings.name
    if safe_name(name, "", ID_CHARS) != name:
        raise CorpusError(f"--name {name!r}: a corpus name is letters, digits, - and _ "
                          "(e.g. my-tunes), the name of its folder")
    if name in RECIPES:
        raise CorpusError(f"--name {name}: the name of a recipe corpus "
                          f"(`stage-agent corpus build {name}`); choose another")
    if settings.min_notes < 1:
        raise CorpusError(f"--min-notes {settings.min_notes}: at least 1")
    if settings.jobs < 1:
        raise CorpusError(f"--jobs {settings.jobs}: at least 1")
    return settings.root / name


def _check_replace(target: Path, force: bool) -> None:
    if target.exists() or target.is_symlink():
        if not force:
            raise CorpusError(f"{target} exists: --force replaces it")
        if not target.is_dir() or target.is_symlink() or (
                not (target / "manifest.json").is_file() and any(target.iterdir())):
            raise CorpusError(f"{target} is not a corpus folder (no manifest.json): "
                              "not replaced, even with --force")


@dataclass
class _Read:
    kept: list[tuple[Source, Piece]] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    drum_parts: int = 0  # listed as left out (in the works kept and the others)
    drum_notes: int = 0


def _read_all(found: Found, settings: ImportSettings, read_recording: ReadRecording,
              say: Callable[[str], None]) -> _Read:
    read = _Read()
    same_bytes: dict[str, str] = {}
    same_notes: dict[str, str] = {}

    def leave(source: str, part: str | None, reason: str) -> None:
        read.left_out.append(LeftOut(source, part, reason))
        say(read.left_out[-1].line())

    for path, reason in found.missing:
        leave(path, None, reason)
    pieces = _read_each(found.sources, read_recording, settings.jobs)
    for i, (source, piece) in enumerate(zip(found.sources, pieces, strict=True)):
        if i and i % PROGRESS_EVERY == 0:
            say(f"read {i} of {len(found.sources)}: {len(read.kept)} works")
        if isinstance(piece, Skip):
            leave(source.path, None, str(piece))
            continue
        if piece.source_sha256 in same_bytes:
            leave(source.path, None, f"duplicate of {same_bytes[piece.source_sha256]} "
                                     "(the same bytes)")
            continue
        same_bytes[piece.source_sha256] = source.path
        for part, reason in piece.left_out:
            leave(source.path, part, reason)
        read.drum_parts += piece.drums[0]
        read.drum_notes += piece.drums[1]
        if piece.notes < settings.min_notes:
            leave(source.path, None, f"too short: {piece.notes} notes, fewer than the "
                                     f"{settings.min_notes} of --min-notes")
            continue
        content = piece.content_hash()
        if content in same_notes:
            leave(source.path, None, f"duplicate of {same_notes[content]} (the same notes)")
            continue
        same_notes[content] = source.path
        read.kept.append((source, piece))
    return read


def _read_each(sources: list[Source], read_recording: ReadRecording,
               jobs: int) -> Iterator[Piece | Skip]:
    """Each source's piece or why there is none, in order; in `jobs` processes when there
    are enough sources to pay for starting them (the pieces are the same either way)."""
    read = partial(_read_one, read_recording=read_recording)
    jobs = min(jobs, len(sources) // MIN_SOURCES_PER_JOB)
    if jobs <= 1:
        yield from map(read, sources)
        return
    # spawn, not fork: the caller may run threads (a fork copies their locks held).
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(read, sources, chunksize=4)


def _read_one(source: Source, read_recording: ReadRecording) -> Piece | Skip:
    try:
        return read_source(source, read_recording)
    except Skip as e:
        return e
    except Exception as e:  # a file no rule foresaw: listed with the error, the import goes on
        return Skip(f"not read: {type(e).__name__}: {e} (a fault of the importer: please "
                    "report it with the file)")


def _nothing_usable(given: Sequence[str], found: Found) -> str:
    if not found.sources:
        other = f" ({found.ignored} other files)" if found.ignored else ""
        return (f"no MIDI file (.mid, .midi, .smf, .kar, .rmi) or recording in "
                f"{', '.join(given)}{other}: nothing imported")
    return (f"nothing usable: none of the {len(found.sources)} files and recordings read gave "
            "a work (each is listed above with its reason); nothing imported")


# --- the folder ------------------------------------------------------------------------------

def _write(tmp: Path, works: list[tuple[str, str, Piece]], unit: str, read: _Read,
           settings: ImportSettings, given: Sequence[str], found: Found) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    files: list[tuple[str, bytes]] = []
    for work_id, split, piece in works:
        data = piece_bytes(piece, work_id)
        (tmp / "midi" / f"{work_id}.mid").write_bytes(data)
        files.append((work_id, data))
        entries.append(_entry(work_id, split, piece, data, settings.name))
    manifest = _manifest(entries, unit, read, settings, given, found, corpus_hash(files))
    write_manifest(tmp / "manifest.json", manifest)
    return manifest


def _entry(work_id: str, split: str, piece: Piece, data: bytes,
           collection: str) -> dict[str, Any]:
    num, den = piece.time_signature
    return {
        "id": work_id, "title": piece.title, "source": piece.source,
        "source_sha256": piece.source_sha256, "collection": collection, "split": split,
        "key": piece.key, "bpm": piece.bpm, "tempo_changes": max(len(piece.tempos) - 1, 0),
        "bar_beats": piece.bar_beats, "time_signature": f"{num}/{den}",
        "bars": list(piece.bars) if piece.bars else None, "notes": piece.notes,
        "parts": [{"name": p.name, "channel": p.channel + 1, "program": p.program,
                   "notes": len(p.notes)} for p in piece.parts],
        "velocity_range": list(piece.velocity_range()), "grace_left_out": piece.grace,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _manifest(entries: list[dict[str, Any]], unit: str, read: _Read,
              settings: ImportSettings, given: Sequence[str], found: Found,
              digest: str) -> dict[str, Any]:
    def count(ws: list[dict[str, Any]]) -> dict[str, int]:
        return {"works": len(ws), "notes": sum(int(w["notes"]) for w in ws)}

    low = min(w["velocity_range"][0] for w in entries)
    high = max(w["velocity_range"][1] for w in entries)
    sources = sorted({w["source"] for w in entries})
    return {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "name": settings.name,
        "description": settings.description or (
            f"Imported with `stage-agent corpus import` from {len(sources)} MIDI files and "
            "recordings"),
        "source": {"program": IMPORTED_BY, "paths": sorted(given)},
        "collections": [{"name": settings.name, "provenance": settings.provenance,
                         "licence": settings.licence,
                         "remarks": "as declared with --provenance and --licence (null: not "
                                    "declared)", **count(entries)}],
        "rules": RULES,
        "voices": None,  # each work lists its parts
        "ticks_per_beat": TICKS_PER_BEAT,
        "velocity": low if low == high else None,
        "velocity_range": [low, high],
        "split_unit": unit,
        "splits": {s: count([w for w in entries if w["split"] == s]) for s in SPLITS},
        "works": entries,
        "skipped": [item.record() for item in read.left_out],
        "counts": {"sources": len(found.sources), "works_from": len(sources),
                   "files_left_out": sum(1 for i in read.left_out if i.part is None),
                   "parts_left_out": sum(1 for i in read.left_out if i.part is not None),
                   "drum_parts": read.drum_parts, "drum_notes": read.drum_notes,
                   "other_files_ignored": found.ignored},
        "hash": digest,
    }


def _swap(tmp: Path, target: Path) -> None:
    """The new folder in place of the old: two renames (a folder cannot replace another in
    one); between them the old one waits under a hidden name that _clear_leftovers puts back."""
    if not target.exists():
        tmp.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _clear_leftovers(target: Path) -> None:
    """What a killed import left: its temporary folder (removed), or the old corpus moved aside
    for the swap (put back if the new one never came, else removed). Another running import of
    the same name keeps its own."""
    for leftover in sorted(target.parent.glob(f".{target.name}.*-*")):
        kind, _, pid = leftover.name[len(target.name) + 2:].rpartition("-")
        if kind not in ("import", "old") or not pid.isdigit() or _running(int(pid)):
            continue
        if kind == "old" and not target.exists():
            leftover.rename(target)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process runs one import at a time: anything of ours is old
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
