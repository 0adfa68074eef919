"""One `perform` of a piece at a time: a lock on a file beside its recordings.

Two agents performing one piece both hear the players and both play to the synth: every note
doubled. The lock is `flock` on `<record dir>/<performance name>.lock`, the folder that holds the
piece's recordings. The kernel holds it for the open file, so it goes with the process however
that ends (SIGKILL, OOM, the watchdog): a crash never leaves a stale lock. The file itself stays
(with the pid of the last holder); only a running process holds the lock on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from agent.config import Config
from agent.errors import AlreadyPerforming

log = logging.getLogger(__name__)


def lock_path(config: Config) -> Path:
    return Path(config.source).parent / config.record.dir / f"{config.performance.name}.lock"


@contextlib.contextmanager
def one_instance(config: Config) -> Iterator[None]:
    """Hold the piece's lock for the block. Raises AlreadyPerforming (exit 2, naming the pid of
    the one that holds it) when another process does. A lock that cannot be made (a read-only
    or full disk) does not stop the show: the run goes on without it, and says so."""
    path = lock_path(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        log.warning("cannot make the lock %s (%s): performing without the guard against a "
                    "second perform of %r", path, e.strerror or e, config.performance.name)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise AlreadyPerforming(
                f"{config.source}: {config.performance.name!r} is already being performed by "
                f"process {holder or '(pid not written yet)'} (it holds {path}); stop that one "
                f"first, or give this one another [performance] name or [record] dir") from None
        with contextlib.suppress(OSError):  # the pid is for the message above only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
