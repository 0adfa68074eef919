"""What `corpus import` reads: the MIDI files and recording folders under the paths given.

A path given is a MIDI file (read whatever its name), a recording folder (it holds `log.jsonl`)
or its log, or a folder walked recursively: its MIDI files (.mid, .midi, .smf, .kar, .rmi in
any case) and its recording folders (read whole; what lies under one, replays and reports of
it, is not walked). Folders whose name starts with "." (.git, .Trash) are not walked; symlinked
folders are, once each. Everything is found first and read in order of its path as given, so
the corpus never depends on the order a file system lists a folder in.

Files are read as regular files of at most MAX_FILE_BYTES (agent/files.py: a FIFO or a device
named *.mid is refused, never waited on). Recordings are read by the function the command passes
in (agent/record/corpus_recording.py): the model floor does not read logs itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.files import FileRefused, FileTooLarge, read_regular, size_text
from agent.model.corpus_import import Piece, Skip, piece_from_smf

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar", ".rmi")
LOG_NAME = "log.jsonl"
MAX_FILE_BYTES = 16 << 20  # a MIDI file of a whole opera is ~1 MiB

ReadRecording = Callable[[Path, str], Piece]  # (folder, its path as given) -> Piece, or Skip


@dataclass(frozen=True)
class Source:
    path: str  # as the user gave it (a folder's files: the folder as given, then the rest)
    stem: str  # what its work id is made of: its path under the folder given, no suffix
    recording: bool  # a recording folder, not a MIDI file


@dataclass(frozen=True)
class Found:
    sources: list[Source]  # in order of path
    missing: list[tuple[str, str]]  # (path given, reason): paths that are nothing to read
    ignored: int  # files in the folders walked that are not MIDI files


def find_sources(given: Sequence[str]) -> Found:
    sources: list[Source] = []
    missing: list[tuple[str, str]] = []
    ignored = 0
    for text in given:
        path = Path(text)
        if path.name == LOG_NAME and path.is_file():
            folder = path.parent.resolve()
            sources.append(Source(text, _recording_stem(folder, folder.name), True))
        elif path.is_dir() and (path / LOG_NAME).is_file():
            sources.append(Source(text, _recording_stem(path.resolve(), path.resolve().name),
                                  True))
        elif path.is_dir():
            for found, stem, is_recording in _walk(path):
                if found is None:
                    ignored += 1
                else:
                    sources.append(Source(str(path / found), stem, is_recording))
        elif path.exists() or path.is_symlink():
            sources.append(Source(text, path.stem, False))
        else:
            missing.append((text, "not found"))
    sources.sort(key=lambda s: s.path)
    return Found(_once_each(sources), missing, ignored)


def _once_each(sources: list[Source]) -> list[Source]:
    """A file named twice (on its own and in its folder, or through a link) is read once."""
    seen: set[Path] = set()
    out = []
    for source in sources:
        real = Path(source.path).resolve()
        if real not in seen:
            seen.add(real)
            out.append(source)
    return out


def _walk(top: Path) -> Iterator[tuple[str | None, str, bool]]:
    """(path under top, its stem, is a recording) of every source under top, and (None, "",
    False) for each other file."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(top, followlinks=True):
        here = Path(folder)
        info = here.stat()
        under = here.relative_to(top)
        if (info.st_dev, info.st_ino) in seen:  # a symlink loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        if LOG_NAME in files and here != top:
            dirs[:] = []
            yield str(under), _recording_stem(here.resolve(), str(under)), True
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(MIDI_SUFFIXES):
                rel = under / name
                yield str(rel), str(rel.with_suffix("")), False
            else:
                yield None, "", False


def _recording_stem(folder: Path, otherwise: str) -> str:
    """A recording's id stem: performances/<piece>/recordings/<run>/ -> <piece>-<run>, else
    `otherwise` (its path under the folder walked, or its name)."""
    if folder.parent.name == "recordings":
        return f"{folder.parent.parent.name}-{folder.name}"
    return otherwise


def read_source(source: Source, read_recording: ReadRecording) -> Piece:
    """The source's piece; Skip saying why there is none."""
    path = Path(source.path)
    if source.recording:
        folder = path.parent if path.name == LOG_NAME else path
        return read_recording(folder, source.path)
    return piece_from_smf(read_midi_file(path), source.path, title=path.stem)


def read_midi_file(path: Path) -> bytes:
    """A MIDI file's bytes: Skip for one that cannot be read (the reason in words)."""
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except FileTooLarge:
        raise Skip(f"larger than the {size_text(MAX_FILE_BYTES)} a MIDI file is read up to"
                   ) from None
    except FileRefused as e:
        raise Skip(str(e)) from None
    except OSError as e:
        raise Skip(f"cannot read: {e.strerror}") from None
