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

FORMAT = "stage-agent-log"
VERSION = 1


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
    """(header, records). A torn last line (a crash mid-write) is tolerated; others are errors."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise RecordingError(f"{path}: cannot read: {e}") from None
    if not lines:
        raise RecordingError(f"{path}: empty file")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        raise RecordingError(f"{path}: line 1: not a stage-agent log header") from None
    if header.get("format") != FORMAT:
        raise RecordingError(f"{path}: line 1: not a stage-agent log (format {FORMAT!r})")
    if header.get("version") != VERSION:
        raise RecordingError(f"{path}: log version {header.get('version')}, expected {VERSION}")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # torn final line
            raise RecordingError(f"{path}: line {number}: not JSON") from None
    return header, records
