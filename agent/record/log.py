"""The append-only event log: the ground truth of a performance or replay.

One JSON object per line. The first line is a header (format version, resolved config, seed,
clock kind); then records `{"t": ns, "k": kind, ...}` in the order they happened. MIDI payloads are
hex strings. Kinds:

  in       a player's message         player, data
  emit     a message the agent sent   deadline, port, data, why, ok, [cause]
  decision what the policy decided    what, ... (free-form, for people and reports)
  ctl      control that changes play  what ("panic", "stop", "port-lost", "port-back", ...), ...
  tempo    MIDI clock tempo estimate  bpm
  state    what the agent hears/does  what ("mode", "section", "tempo", "key", "roles", ...), ...
  model    model requests, answers, restarts
  note     something worth knowing    text (what="records-lost": lost, error; see below)

Taps (`taps`) see every record as it is written: the spatial engine follows the performance this
way, live and in replay alike, and the session keeps what the end of the run needs (session.Kept).

Writing is best effort and never reaches back into the caller, which is the music's note path
(the scheduler records every message it sends through here). A record is encoded where it is
written, on the caller's thread, so the log's bytes and order never depend on threads. The lines
then reach the file in one of two ways:
- in the background (live runs): a writer thread takes them from a bounded queue and writes
  them every `flush_ms` (at once for a mark or at close). The loop never waits on the disk: a
  slow or hung disk holds up only the writer. Should the queue hold MAX_QUEUED_BYTES (the disk
  has taken nothing for minutes), further records are dropped and counted;
- inline (a replay on the manual clock, which waits on nobody): buffered, and written by the
  caller every INLINE_BYTES and at flush; deterministic, and as fast as a buffered file.
An I/O error (disk full, read-only, gone) cuts the file back to its last whole line, counts the
lines lost, and is retried with the next lines (a full disk may get room again). Where lines were
lost, the log says so: a `note` record what="records-lost" (`lost`, `error`, `text`), written
before the next line that reaches the file, or last at close. A log that cannot be created (or
take its header) leaves a live run without a recording (state "off"), and makes a replay fail
(RecordingError). `status()` says which; `on_status` hears of every change (from flush_if_due).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.clock import NS_PER_MS, NS_PER_S
from agent.errors import RecordingError
from agent.files import FileRefused, lines, open_regular
from agent.record.schema import BadRecord, RecordChecker, check_header, short

FORMAT = "stage-agent-log"
VERSION = 1
# ~300-450 bytes a record: ~100,000 records, 15 minutes of a busy band with a MIDI clock.
MAX_QUEUED_BYTES = 32 * 1024 * 1024
INLINE_BYTES = 64 * 1024  # what an inline log buffers before a write (as a buffered file does)
# At most this much is joined and encoded at once by the writer: it holds the GIL meanwhile
# (~1 ms a MiB here), which the loop must not wait on for long after a backlog.
CHUNK_BYTES = 1024 * 1024
CLOSE_TIMEOUT_S = 5.0  # at close, the writer gets this long to write what is queued (a hung
# disk must not hold the exit past systemd's TimeoutStopSec=30; the notes are off by then)
REPORT_EVERY_NS = NS_PER_S  # on_status: a state change at once, a growing loss once a second
RECORDING, FAILING, OFF = "recording", "failing", "off"
QUEUE_FULL = "the disk fell behind: the queue of records waiting for it was full"


@dataclass(frozen=True)
class LogStatus:
    state: str  # RECORDING, FAILING (the last write failed) or OFF (no file, or given up)
    lost: int  # records not in the file
    error: str | None  # the last I/O error, if any


@dataclass(frozen=True)
class Mark:
    """Where the file ended once every record written before the mark had reached it (None:
    there is no file), and the records lost by then."""

    offset: int | None
    lost: int


class _Gap:
    """Records lost at one place in the log (the writer says so there, in a note)."""

    def __init__(self, t_ns: int, error: str) -> None:
        self.count, self.t_ns, self.error = 0, t_ns, error

    def add(self, count: int, t_ns: int, error: str) -> None:
        self.count += count
        self.t_ns = max(self.t_ns, t_ns)
        self.error = error

    def line(self) -> str:
        return log_line({"t": self.t_ns, "k": "note", "what": "records-lost", "lost": self.count,
                         "error": self.error,
                         "text": f"{self.count} records not written: {self.error}"})


Item = tuple[int, str] | _Gap | Future[Mark]  # a line (t, text), a gap or a mark, in order


class _File:
    """The log file, written in whole lines: a write that fails is cut back (positioned writes
    at the known length, so nothing torn stays before what comes next)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.size = 0  # bytes of whole lines
        self._torn = False  # bytes past `size` that could not be cut off yet

    def write(self, data: bytes) -> None:
        if self._torn:
            os.ftruncate(self.fd, self.size)
            self._torn = False
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], self.size + done)
        except OSError:
            if done:
                try:
                    os.ftruncate(self.fd, self.size)
                except OSError:
                    self._torn = True
            raise
        self.size += done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def discard(self) -> None:
        """A log that never took its header: no file is better than an unreadable one."""
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def describe(e: OSError) -> str:
    return f"[Errno {e.errno}] {e.strerror}" if e.strerror else repr(e)
MAX_LINE_BYTES = 8 << 20  # a line (a record, or the header): a SysEx of 1 MiB is 2 MiB of hex


class EventLog:
    def __init__(self, path: Path, header: dict[str, Any], flush_ms: int = 100,
                 background: bool = False,
                 on_status: Callable[[LogStatus], None] | None = None,
                 max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.path = path
        self.header = {"format": FORMAT, "version": VERSION, **header}
        self.records = 0
        self.taps: list[Callable[[dict[str, Any]], None]] = []
        self._flush_ns = flush_ms * NS_PER_MS
        self._last_flush_ns = 0
        self._on_status = on_status
        self._reported: tuple[str, int] | None = None
        self._reported_ns = 0
        self._max_queued = max_queued_bytes
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[Item] = deque()
        self._pending_bytes = 0
        self._in_flight = 0  # lines taken from the queue, not yet written or counted lost
        self._lost = 0
        self._error: str | None = None
        self._gap: _Gap | None = None  # lost since the last line that reached the file
        self._failing = False
        self._hurry = False  # a mark, a flush or the close waits: write now
        self._closing = False
        self._file: _File | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = _File(path)  # never overwrite a log: FileExistsError is raised
            self._file.write(log_line(self.header).encode())
        except FileExistsError:
            raise
        except OSError as e:
            if self._file is not None:
                self._file.discard()
                self._file = None
            self._error = f"cannot write {path}: {describe(e)}"
            if not background:
                raise RecordingError(self._error) from None
        self.created = self._file is not None  # the file took its header
        self._thread: threading.Thread | None = None
        if background and self._file is not None:
            self._thread = threading.Thread(target=self._writer, name="event-log", daemon=True)
            self._thread.start()

    @property
    def on_disk(self) -> bool:
        """The log has a file (its header, at least, was written), not given up at close."""
        return self._file is not None

    def write(self, kind: str, t_ns: int, **fields: Any) -> None:
        record = {"t": t_ns, "k": kind, **fields}
        self._put(t_ns, log_line(record))
        self.records += 1
        for tap in self.taps:
            tap(record)

    def _put(self, t_ns: int, line: str) -> None:
        with self._lock:
            if self._file is None or self._closing:
                self._lost += 1
            elif self._thread is None or self._pending_bytes + len(line) <= self._max_queued:
                self._pending.append((t_ns, line))
                self._pending_bytes += len(line)
            else:  # the writer is minutes behind: this record is dropped, and said so
                self._lost += 1
                last = self._pending[-1] if self._pending else None
                gap = last if isinstance(last, _Gap) else _Gap(t_ns, QUEUE_FULL)
                gap.add(1, t_ns, QUEUE_FULL)
                if gap is not last:
                    self._pending.append(gap)
        if self._thread is None and self._pending_bytes >= INLINE_BYTES:
            self._write_pending()

    def flush_if_due(self, now_ns: int) -> None:
        """Called often by whoever runs the clock: writes (inline), and reports the status."""
        if now_ns - self._last_flush_ns >= self._flush_ns:
            self._last_flush_ns = now_ns
            if self._thread is None:
                self._write_pending()
            self._report(now_ns)

    def flush(self) -> None:
        """Inline: everything written so far goes to the file now. In the background: the
        writer is woken (never waited for: see mark() for that)."""
        if self._thread is None:
            self._write_pending()
        else:
            self._hurry_writer()

    def _hurry_writer(self) -> None:
        with self._lock:
            self._hurry = True
            self._wake.notify()

    def mark(self) -> Future[Mark]:
        """A Future for where the file ends once every record written so far has reached it
        (resolved by the writer; at once inline). Wait for it off the loop."""
        future: Future[Mark] = Future()
        with self._lock:
            if self._thread is not None and not self._closing:
                self._pending.append(future)
                self._hurry = True
                self._wake.notify()
                return future
        if self._thread is None:
            self._write_pending()
        future.set_result(Mark(self._file.size if self._file is not None else None, self._lost))
        return future

    def status(self) -> LogStatus:
        with self._lock:
            state = OFF if self._file is None else FAILING if self._failing else RECORDING
            return LogStatus(state, self._lost, self._error)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is left (the writer gets `timeout_s`; a disk that takes longer is given
        up: what it did not take is counted lost) and close the file."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake.notify()
        if self._thread is None:
            self._write_pending()
            self._end()
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # stuck in a write: left to the OS (a daemon thread)
            with self._lock:
                left, self._pending = self._pending, deque()
                self._lost += self._in_flight + sum(isinstance(item, tuple) for item in left)
                self._error = f"the disk took nothing for {timeout_s:g} s at the end"
                self._file = None
            for item in left:
                if isinstance(item, Future):
                    item.set_result(Mark(None, self._lost))

    # -- the writing itself (the writer thread, or the caller when inline) --------------------
    def _writer(self) -> None:
        while True:
            with self._lock:
                if not (self._closing or self._hurry):
                    self._wake.wait(self._flush_ns / NS_PER_S)
                self._hurry = False
                items = self._take()
                closing = self._closing
            self._write_items(items)
            if closing:
                self._end()
                return

    def _write_pending(self) -> None:
        with self._lock:
            items = self._take()
        self._write_items(items)

    def _take(self) -> deque[Item]:
        """Everything queued (the lock held)."""
        items, self._pending, self._pending_bytes = self._pending, deque(), 0
        self._in_flight = sum(isinstance(item, tuple) for item in items)
        return items

    def _write_items(self, items: Iterable[Item]) -> None:
        chunk: list[tuple[int, str]] = []
        size = 0
        for item in items:
            if isinstance(item, tuple):
                chunk.append(item)
                size += len(item[1])
                if size < CHUNK_BYTES:
                    continue
            self._write_chunk(chunk)
            chunk, size = [], 0
            if isinstance(item, _Gap):
                self._lost_here(item.count, item.t_ns, item.error)
            elif isinstance(item, Future):
                file = self._file
                item.set_result(Mark(file.size if file is not None else None, self._lost))
        self._write_chunk(chunk)

    def _write_chunk(self, chunk: list[tuple[int, str]]) -> None:
        file = self._file  # once: close() gives up on a hung disk by setting it to None
        if not chunk or file is None:
            return
        gap = self._gap
        text = (gap.line() if gap is not None else "") + "".join(line for _, line in chunk)
        try:
            file.write(text.encode())
        except OSError as e:
            self._lost_here(len(chunk), chunk[-1][0], describe(e), counted=False)
            with self._lock:
                self._failing = True
                self._in_flight -= len(chunk)
            return
        with self._lock:
            self._gap = None
            self._failing = False
            self._in_flight -= len(chunk)

    def _lost_here(self, count: int, t_ns: int, error: str, counted: bool = True) -> None:
        """`count` records lost at `t_ns` (already counted when dropped from the queue)."""
        with self._lock:
            if not counted:
                self._lost += count
            self._error = error
        if self._gap is None:
            self._gap = _Gap(t_ns, error)
        self._gap.add(count, t_ns, error)

    def _end(self) -> None:
        """The trailer (a note of what was lost since the last line written), then close."""
        if self._file is None:
            return
        if self._gap is not None:
            with contextlib.suppress(OSError):
                self._file.write(self._gap.line().encode())
                self._gap = None
        self._file.close()

    def _report(self, now_ns: int) -> None:
        if self._on_status is None:
            return
        status = self.status()
        key = (status.state, status.lost)
        if key == self._reported or (self._reported is not None and status.state ==
                                     self._reported[0] and now_ns - self._reported_ns <
                                     REPORT_EVERY_NS):
            return
        self._reported, self._reported_ns = key, now_ns
        self._on_status(status)


# json.dumps with any option builds a new encoder at every call: 3.2 us for an `in` record, 1.4
# with this one kept (4.2 -> 3.0 for an `emit`), and every message heard and sent is a record.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def log_line(obj: dict[str, Any]) -> str:
    """A record (or the header) as one line of the log (as json.dumps with these separators)."""
    return _ENCODER.encode(obj) + "\n"


def read_log(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records), each checked (agent.record.schema): RecordingError naming the file and
    the line for anything else, including a file that is not a regular one (a FIFO would hang
    the reader, /dev/zero fill the memory) and a line longer than MAX_LINE_BYTES. A torn last
    line (a crash mid-write: no newline after it, and not a whole record) is tolerated."""
    try:
        with open_regular(path) as f:
            header: dict[str, Any] | None = None
            records: list[dict[str, Any]] = []
            check: Callable[[Any], dict[str, Any]] | None = None
            for number, line, ended in lines(f, MAX_LINE_BYTES):
                try:
                    value = _parse(line)
                except ValueError as e:
                    if not ended and number > 1:
                        break  # torn final line
                    what = " (not a stage-agent log header)" if number == 1 else ""
                    raise RecordingError(f"{path}: line {number}: {e}{what}") from None
                try:
                    if check is None:
                        header = check_header(_checked_format(value))
                        check = RecordChecker(header)
                    else:
                        records.append(check(value))
                except BadRecord as e:
                    raise RecordingError(f"{path}: line {number}: {e}") from None
    except FileRefused as e:
        raise RecordingError(f"{path}: {e}") from None
    except OSError as e:
        raise RecordingError(f"{path}: cannot read: {e.strerror}") from None
    if header is None:
        raise RecordingError(f"{path}: empty file")
    return header, records


def _parse(line: bytes) -> Any:
    """One line's JSON. ValueError for anything that is not (invalid UTF-8, an integer of more
    digits than Python converts, nesting deeper than the parser's recursion allows)."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {line[e.start]:#04x} at {e.start})") from None
    except RecursionError:
        raise ValueError("not JSON (nested too deeply)") from None
    except ValueError as e:  # json.JSONDecodeError, or an integer of too many digits
        raise ValueError(f"not JSON ({e})") from None


def _checked_format(header: Any) -> Any:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadRecord(f"not a stage-agent log (format {FORMAT!r})")
    if header.get("version") != VERSION:
        raise BadRecord(f"log version {short(header.get('version'))}, expected {VERSION}")
    return header


def records_lost(records: list[dict[str, Any]]) -> int:
    """The records a log says it could not write (its `records-lost` notes, summed)."""
    return sum(r.get("lost", 0) for r in records
               if r["k"] == "note" and r.get("what") == "records-lost")
