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
  note     something worth knowing    text

Taps (`taps`) see every record as it is written: the spatial engine follows the performance this
way, live and in replay alike.

Writes are buffered and flushed at least every `flush_ms` (a periodic task calls flush_if_due),
and on close; a crash loses at most that much.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from agent.clock import NS_PER_MS
from agent.errors import RecordingError
from agent.files import FileRefused, lines, open_regular
from agent.record.schema import BadRecord, RecordChecker, check_header, short

FORMAT = "stage-agent-log"
VERSION = 1
MAX_LINE_BYTES = 8 << 20  # a line (a record, or the header): a SysEx of 1 MiB is 2 MiB of hex


class EventLog:
    def __init__(self, path: Path, header: dict[str, Any], flush_ms: int = 100) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = path.open("x", encoding="utf-8")  # never overwrite a log
        self._flush_ns = flush_ms * NS_PER_MS
        self._last_flush_ns = 0
        self.records = 0
        self.taps: list[Callable[[dict[str, Any]], None]] = []
        self._write({"format": FORMAT, "version": VERSION, **header})
        self.flush()

    def write(self, kind: str, t_ns: int, **fields: Any) -> None:
        record = {"t": t_ns, "k": kind, **fields}
        self._write(record)
        self.records += 1
        for tap in self.taps:
            tap(record)

    def _write(self, obj: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(log_line(obj))

    def flush_if_due(self, now_ns: int) -> None:
        if now_ns - self._last_flush_ns >= self._flush_ns:
            self._last_flush_ns = now_ns
            self.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._file.close()
            self._file = None


def log_line(obj: dict[str, Any]) -> str:
    """A record (or the header) as one line of the log."""
    return json.dumps(obj, separators=(",", ":")) + "\n"


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
