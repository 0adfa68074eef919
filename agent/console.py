"""Lines for whoever started the agent, on stdout and stderr while they are there: never a reason
to stop.

A live run's stdout and stderr may go away under it: `perform ... | head` ends (`|&`: both), the
terminal or SSH session that ran it closes (writes then fail with EIO), journald restarts under
systemd (EPIPE on both). The show goes on: the first failed write sends that stream to /dev/null
(so the interpreter's own flush at exit cannot fail again, which would make the exit status 120),
says so once in the log, and what would have gone to stdout goes to stderr, as best it can.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TextIO

log = logging.getLogger(__name__)

_gone: set[str] = set()  # "stdout", "stderr": streams that failed (now /dev/null)


def say(text: str) -> None:
    """Print `text` (one line or more) on stdout, or on stderr once stdout is gone; flush it;
    never raise."""
    if not _print(sys.stdout, "stdout", text):
        _print(sys.stderr, "stderr", text)


def say_err(text: str) -> None:
    """Print `text` on stderr and flush it; never raise."""
    _print(sys.stderr, "stderr", text)


def _print(stream: TextIO, name: str, text: str) -> bool:
    if name in _gone:
        return False
    try:
        print(text, file=stream, flush=True)
        return True
    except (OSError, ValueError) as e:  # EPIPE, EIO, or a closed file object
        _gone.add(name)
        _to_devnull(stream)
        log.warning("%s is gone (%s): playing on%s", name, e,
                    "; what the agent prints goes to stderr" if name == "stdout" else "")
        return False


def _to_devnull(stream: TextIO) -> None:
    """Point the stream's file descriptor at /dev/null: what is still buffered in it is then
    flushed there, at the latest at exit, instead of failing again."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor behind it: nothing to flush
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
