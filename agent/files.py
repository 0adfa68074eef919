"""Files named from outside (a command, a log's header, the command line): regular files only,
read in bounded pieces, and paths confined to the folders allowed.

A FIFO blocks its reader until someone writes into it, and a device such as /dev/zero never
ends, so a reader that trusts a name can hang or fill the memory. Every file here is opened
without blocking (O_NONBLOCK: opening a FIFO returns at once), checked with fstat on the open
descriptor (no race between the check and the read), and refused unless it is a regular file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # bytes read at a time when hashing


class FileRefused(Exception):
    """A file that cannot be read as asked: not there, not a regular file, or too large. The
    message says which, without the path (the caller names the file as it knows it)."""


class FileTooLarge(FileRefused):
    """Larger than the reader allows (a caller may say so in its own words)."""


def open_regular(path: Path, max_bytes: int | None = None) -> BinaryIO:
    """The file, opened for reading in binary; FileRefused unless it is a regular file (after
    symlinks) of at most `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise FileRefused(f"cannot open: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"not a regular file (a {_kind(info.st_mode)}): refused")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLarge(f"{info.st_size} bytes, more than the {size_text(max_bytes)} "
                               "allowed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, at most `max_bytes` (FileRefused otherwise, also for a file
    that grows past it while being read)."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"more than the {size_text(max_bytes)} allowed")
    return data


def lines(f: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """(line number from 1, its bytes without the newline, whether a newline ended it), reading
    at most `max_line` bytes a line: FileRefused for a longer one (a file of one endless line
    must not be read into memory whole)."""
    for number in range(1, 1 << 62):
        line = f.readline(max_line + 1)
        if not line:
            return
        ended = line.endswith(b"\n")
        if len(line) > max_line + ended:
            raise FileRefused(f"line {number}: longer than {size_text(max_line)}")
        yield number, line[:-1] if ended else line, ended


def sha256_file(path: Path, max_bytes: int) -> str:
    """The file's sha256, read in chunks (memory stays at one chunk, whatever the size).
    Blocking: call it off the event loop."""
    digest = hashlib.sha256()
    read = 0
    with open_regular(path, max_bytes) as f:
        while chunk := f.read(CHUNK):
            read += len(chunk)
            if read > max_bytes:
                raise FileTooLarge(f"more than the {size_text(max_bytes)} allowed")
            digest.update(chunk)
    return digest.hexdigest()


def confined(path: Path, roots: Iterable[Path]) -> Path | None:
    """`path` with every symlink and `..` resolved, if that lies inside one of `roots` (resolved
    too); None if it lies outside all of them."""
    resolved = path.resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return resolved
    return None


def safe_name(name: str | None, default: str, max_chars: int = 64) -> str:
    """A folder name from free text: ASCII letters, digits, - and _ only (accents dropped,
    every other run of characters one "-", no "-" or "_" at either end, so never a path
    separator, ".." or an option-like name), at most `max_chars` characters; `default` if
    nothing is left."""
    if name is None:
        return default
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", plain).strip("-_")[:max_chars].strip("-_")
    return safe or default


def size_text(n: int) -> str:
    """1073741824 -> "1 GiB"; sizes that are not a whole number of units in bytes."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"
