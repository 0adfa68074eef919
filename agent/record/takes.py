"""Takes, markers and the capture ring buffer: slices of the always-on log, saved as recordings.

Every performance is recorded in full (log.jsonl, performance.mid). Live runs also offer
(policy/commands.py checks the fields):

    record {"action": "start", "name"?}  a take begins now (one at a time)
    record {"action": "stop"}            it ends now: saved to takes/<NN>-<name or "take">/
    record {"action": "mark", "label"?}  a marker: the session logs it (a `ctl` record), and
                                         smf.py and summary.py show it; nothing to do here
    capture-save {"seconds"?, "name"?}   the last `seconds` (default: all the ring buffer holds)
                                         saved to captures/<NN>-<name or "capture">/

A saved slice is a recording folder of its own, inside the performance's: `log.jsonl` (the full
log's header plus "slice": {"of", "from_ns", "to_ns", "reason", "name"}, then exactly the full
log's records with from_ns <= t <= to_ns, the command's own `ctl` record included) and
`performance.mid` (time 0 = from_ns; notes still sounding at to_ns are released there).
`stage-agent replay` takes such a folder like any other (replay.py: with a fresh model, never the
recorded answers: they followed what the agent had heard before the slice).

Where the records come from:
- captures: the ring buffer, a tap on the log holding the last `record.capture_s` seconds (by
  record time), and at most MAX_RING_RECORDS records: a flood (aftertouch, a stuck controller)
  drops the oldest first, so the buffer then covers less time; a capture says what it held.
- takes: the full log itself. A take marks the log at its start and at its stop (log.py's mark:
  its writer says where the file ended once the records before had reached it) and reads that
  byte range back: a take may be longer than the ring buffer, and costs no memory while it runs.
  A run without a recording (its disk could not take one) refuses takes.

Timing and concurrency: commands arrive on the event loop, which also runs the music, so only
cheap work happens there, and no I/O: the snapshot (a list copy of the ring's references, or a
mark on the log, whose offset the writer thread waits for),
taken SETTLE_S after the command, so that the session's `ctl` record for the command, and input
stamped before the command but still queued, are in the slice.
Filtering, encoding and writing run on one writer thread, one slice at a time; it gives the GIL
back every BATCH records (time.sleep(0)) so the loop and rtmidi's callback do not wait on it for
long (at worst the interpreter's switch interval, 5 ms, while mido builds the file). The outcome
comes back to the loop: a `note` record in the main log (what="take-saved", "capture-failed",
...: summary.py lists them), a line for the operator (stdout, or the error on stderr) and, with
a control plane, the retained MQTT state `take` / `capture` (not OSC: its stream has fixed kinds).
At the stop the saves left get SAVE_WAIT_S in all: one a hung disk holds is reported not saved
("failed") and left to the writer thread, a daemon one, so that the process still exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.clock import NS_PER_S
from agent.config import Config
from agent.console import say
from agent.files import safe_name
from agent.policy.commands import MAX_NAME, CommandError
from agent.record import smf
from agent.record.log import Mark, log_line, read_log
from agent.record.session import LOG_NAME, MIDI_NAME, Session
from agent.threads import DaemonWorker

log = logging.getLogger(__name__)

# ~300-450 bytes a record (measured): at most ~45-70 MB. A busy band with a MIDI clock logs ~100
# records a second, so 300 s fit five times over; only a flood reaches the cap.
MAX_RING_RECORDS = 150_000
BATCH = 500  # records encoded (or parsed) between two GIL releases on the writer thread
SETTLE_S = 0.1  # a slice is taken this long after its command (see Takes._defer)
MAX_WAITING = 4  # capture-saves not written yet: more are refused (each holds a snapshot)
MARK_TIMEOUT_S = 3.0  # a take waits this long for the log's disk to take its records
# At the stop, the saves not finished yet (a take running at the end among them) get this long
# in all; then each one left is reported not saved and abandoned to its (daemon) thread. A hung
# disk must not hold the exit past systemd's TimeoutStopSec=30, whose other work takes up to
# ~15 s: the log's close (CLOSE_TIMEOUT_S, 5 s), performance.mid and the summary from a long
# show's log (6-8 s), the drain. A take of a long busy show takes seconds to save.
SAVE_WAIT_S = 8.0
TAKES, CAPTURES = "takes", "captures"
Record = dict[str, Any]
Publish = Callable[[str, dict[str, Any]], None]
Action = Callable[[dict[str, Any], int], None]


def in_window(records: list[Record], from_ns: int, to_ns: int) -> list[Record]:
    return [r for r in records if from_ns <= r["t"] <= to_ns]


def slice_header(header: Record, of: str, from_ns: int, to_ns: int, reason: str,
                 name: str | None) -> Record:
    return {**header, "slice": {"of": of, "from_ns": from_ns, "to_ns": to_ns, "reason": reason,
                                "name": name}}


def write_slice(folder: Path, header: Record, records: list[Record]) -> None:
    """A recording folder for a slice (its header says which): log.jsonl and performance.mid.
    Refuses (FileExistsError) to write into a folder that exists. Blocking: a writer thread."""
    folder.mkdir(parents=True)
    with (folder / LOG_NAME).open("x", encoding="utf-8") as f:
        f.write(log_line(header))  # exactly as the full log has them
        for i in range(0, len(records), BATCH):
            f.write("".join(log_line(r) for r in records[i:i + BATCH]))
            time.sleep(0)  # the GIL goes back to the loop between batches
    # The MIDI file is made by a child process from the log just written: building it holds
    # the GIL in long stretches (mido), which stalled the music's loop 14 ms for 30,000 records
    # when done on this thread.
    # At the lowest CPU priority: on a 2-core machine it must not take a core from the music.
    done = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "agent.record.takes",
                           str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{MIDI_NAME} not written: {done.stderr.strip()[-500:]}")


def _export_slice_midi(folder: Path) -> None:
    """`python -m agent.record.takes FOLDER`: a slice folder's performance.mid from its log."""
    header, records = read_log(folder / LOG_NAME)
    window = header["slice"]
    smf.export(header, records, folder / MIDI_NAME, start_ns=window["from_ns"],
               end_ns=window["to_ns"])


def read_span(path: Path, start: int, end: int) -> list[Record]:
    """The records in bytes [start, end) of a log: whole lines, as the log was flushed."""
    records = []
    with path.open("rb") as f:
        f.seek(start)
        at = start
        # Line by line, not one read and split: one split of a long take held the GIL 4-80 ms.
        for i, line in enumerate(f):
            at += len(line)
            if at > end:
                break
            if line.strip():
                records.append(json.loads(line))
            if i % BATCH == BATCH - 1:
                time.sleep(0)
    return records


class CaptureRing:
    """A tap on the log: the records of the last `seconds` (by record time), at most
    `max_records` of them (then the oldest go first)."""

    def __init__(self, seconds: float, max_records: int = MAX_RING_RECORDS) -> None:
        self.window_ns = round(seconds * NS_PER_S)
        self.max_records = max_records
        self._records: deque[Record] = deque()
        self.first_ns: int | None = None  # the first record's time
        self.newest_ns: int | None = None
        self.held_from_ns: int | None = None  # every record since is held (None: since first)
        self.dropped_at_cap = 0  # records dropped because the buffer was full, not old

    def __len__(self) -> int:
        return len(self._records)

    def tap(self, record: Record) -> None:
        t = record["t"]
        if self.newest_ns is None:
            self.first_ns = self.newest_ns = t
        elif t > self.newest_ns:
            self.newest_ns = t
        records = self._records
        records.append(record)
        horizon = self.newest_ns - self.window_ns
        while records and records[0]["t"] < horizon:
            self._forget(records.popleft())
        if len(records) > self.max_records:
            self._forget(records.popleft())
            self.dropped_at_cap += 1
            if self.dropped_at_cap == 1:  # once: this runs for every record of the flood
                log.warning("capture buffer full (%d records): the oldest are dropped, so a "
                            "capture-save covers less than record.capture_s", self.max_records)

    def _forget(self, record: Record) -> None:
        after = record["t"] + 1
        self.held_from_ns = after if self.held_from_ns is None else max(self.held_from_ns, after)

    def window_start(self, to_ns: int, seconds: float | None) -> int:
        """Where a capture of the last `seconds` (None: all the buffer holds) up to `to_ns`
        begins: no earlier than what the buffer still holds completely."""
        wanted = to_ns - (round(seconds * NS_PER_S) if seconds is not None else self.window_ns)
        held = self.held_from_ns if self.held_from_ns is not None else self.first_ns
        return wanted if held is None else max(wanted, held)

    def snapshot(self) -> list[Record]:
        """The records held, oldest first: a copy of references (records are never changed)."""
        return list(self._records)


@dataclass(frozen=True)
class Slice:
    kind: str  # "take" or "capture"
    folder: str  # relative to the recording folder: "takes/01-verse"
    name: str | None  # as given
    from_ns: int
    to_ns: int = 0  # set when it ends
    at_end: bool = False  # a take still running when the performance stopped

    @property
    def reason(self) -> str:
        return "take" if self.kind == "take" else "capture-save"


class Takes:
    """The live actions `record` and `capture-save` for one session (register `actions()`),
    and `close()` at the end of the run: after session.stop(), before session.finish()."""

    def __init__(self, config: Config, session: Session, loop: asyncio.AbstractEventLoop,
                 publish: Publish | None = None, settle_s: float = SETTLE_S) -> None:
        self._session = session
        self._loop = loop
        self._settle_s = settle_s
        self._publish = publish or (lambda kind, payload: None)
        self._log_path = session.log.path
        self._header: Record = session.log.header
        self.ring = CaptureRing(config.record.capture_s)
        session.log.taps.append(self.ring.tap)
        self._take: Slice | None = None
        self._take_start: Future[Mark] | None = None  # the log's mark when the take began
        self._made = {"take": 0, "capture": 0}
        self._deferred: list[tuple[asyncio.TimerHandle, Callable[[], None]]] = []
        # A daemon thread: one stuck in a write to a hung disk must not hold the exit.
        self._writer = DaemonWorker("takes")
        self._saving: dict[asyncio.Task[None], Slice] = {}  # in the order submitted
        self._closed = False

    def actions(self) -> dict[str, Action]:
        return {"record": self._record, "capture-save": self._capture}

    @property
    def take(self) -> Slice | None:
        """The take running, if any."""
        return self._take

    @property
    def snapshots_due(self) -> int:
        """Slices whose records are not taken yet (they are, `settle_s` after the command)."""
        return len(self._deferred)

    # -- the commands (on the loop) ------------------------------------------------------------
    def _record(self, fields: dict[str, Any], t_ns: int) -> None:
        action = fields["action"]
        if self._closed:
            raise CommandError(f"record {action}: the performance is stopping")
        if action == "start":
            if self._take is not None:
                raise CommandError(f"record start: take {self._take.folder} is running "
                                   "(record stop first)")
            if not self._session.log.on_disk:
                raise CommandError("record start: the performance is not being recorded "
                                   f"({self._session.log.status().error})")
            self._take_start = self._session.log.mark()  # the take's records come after it
            self._take = Slice("take", self._reserve("take", fields.get("name")),
                               fields.get("name"), t_ns)
            self._publish("take", {"state": "recording", "folder": self._take.folder,
                                   "name": self._take.name})
        elif action == "stop":
            if self._take is None:
                raise CommandError("record stop: no take is running (record start first)")
            take, start = dataclasses.replace(self._take, to_ns=t_ns), self._take_start
            self._take = None
            assert start is not None
            self._defer(lambda: self._save_take(take, start))
        # "mark": the session logs it; nothing else to keep

    def _capture(self, fields: dict[str, Any], t_ns: int) -> None:
        if self._closed:
            raise CommandError("capture-save: the performance is stopping")
        if len(self._saving) + len(self._deferred) >= MAX_WAITING:
            raise CommandError(f"capture-save: {MAX_WAITING} saves are still being written "
                               "(try again in a moment)")
        seconds = fields.get("seconds")
        folder, name = self._reserve("capture", fields.get("name")), fields.get("name")

        def snapshot() -> None:
            # The window is found now, not at the command: the ring has moved on meanwhile.
            capture = Slice("capture", folder, name, self.ring.window_start(t_ns, seconds), t_ns)
            held_s = (t_ns - capture.from_ns) / NS_PER_S
            if seconds is not None and held_s < seconds:
                log.warning("capture-save %s: %.1f s asked, the buffer held %.1f s%s", folder,
                            seconds, held_s, f" ({self.ring.dropped_at_cap} records dropped "
                            "at its cap)" if self.ring.dropped_at_cap else "")
            records = self.ring.snapshot()  # on the loop: a copy of references, no more
            self._publish("capture", {"state": "saving", "folder": folder, "name": name})
            self._submit(capture, lambda: in_window(records, capture.from_ns, capture.to_ns))
        self._defer(snapshot)

    def _reserve(self, kind: str, name: str | None) -> str:
        """The slice's folder, numbered in command order: takes/01-verse, captures/02-capture."""
        self._made[kind] += 1
        where = TAKES if kind == "take" else CAPTURES
        return f"{where}/{self._made[kind]:02d}-{safe_name(name, kind, MAX_NAME)}"

    def _defer(self, action: Callable[[], None]) -> None:
        """Run `action` on the loop in `settle_s`: the session logs the command's `ctl` record
        after this handler returns, and input stamped before the command may still be queued."""
        def run() -> None:
            self._deferred = [d for d in self._deferred if d[1] is not action]
            action()
        self._deferred.append((self._loop.call_later(self._settle_s, run), action))

    def _run_deferred(self) -> None:
        """Everything deferred, now, in order (the run is ending)."""
        while self._deferred:
            handle, action = self._deferred.pop(0)
            handle.cancel()
            action()

    def _save_take(self, take: Slice, start: Future[Mark]) -> None:
        end = self._session.log.mark()  # the records up to now: the stop's own are in

        def records() -> list[Record]:  # on the writer thread
            try:
                first, last = start.result(MARK_TIMEOUT_S), end.result(MARK_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(f"the log's disk took nothing for {MARK_TIMEOUT_S:g} s "
                                   "(the full log may still get it)") from None
            if first.offset is None or last.offset is None:
                raise RuntimeError("the log is not on disk")
            return in_window(read_span(self._log_path, first.offset, last.offset),
                             take.from_ns, take.to_ns)
        self._publish("take", {"state": "saving", "folder": take.folder, "name": take.name})
        self._submit(take, records)

    # -- writing (a thread) and reporting (the loop) -------------------------------------------
    def _submit(self, sl: Slice, records: Callable[[], list[Record]]) -> None:
        header = slice_header(self._header, self._session.out_dir.name, sl.from_ns, sl.to_ns,
                              sl.reason, sl.name)
        folder = self._session.out_dir / sl.folder

        def write() -> int:
            chosen = records()
            write_slice(folder, header, chosen)
            return len(chosen)
        task = self._loop.create_task(self._save(sl, write), name=f"save {sl.folder}")
        self._saving[task] = sl
        task.add_done_callback(lambda done: self._saving.pop(done, None))

    async def _save(self, sl: Slice, write: Callable[[], int]) -> None:
        seconds = round((sl.to_ns - sl.from_ns) / NS_PER_S, 3)
        try:
            count = await asyncio.wrap_future(self._writer.submit(write))
        except Exception as e:  # the show goes on: say what failed, where the full log still is
            error = f"{type(e).__name__}: {e}"
            log.error("%s %s not saved: %s (the full recording has it)", sl.kind, sl.folder,
                      error)
            self._report(sl, "failed", error=error)
            return
        end = " (still running at the end: closed at the stop)" if sl.at_end else ""
        say(f"stage-agent: {sl.kind} saved to {sl.folder}: {seconds:.1f} s, {count} records"
            f"{end}")  # never raises: a lost stdout must not leave state/take at "saving"
        self._report(sl, "saved", seconds=seconds, records=count,
                     **({"at_end": True} if sl.at_end else {}))

    def _report(self, sl: Slice, state: str, **fields: Any) -> None:
        text = f"{sl.kind} {sl.folder} {state}" + (f": {fields['error']}"
                                                  if "error" in fields else "")
        self._session.log.write("note", self._session.clock.now_ns(), text=text,
                                what=f"{sl.kind}-{state}", folder=sl.folder, from_ns=sl.from_ns,
                                to_ns=sl.to_ns, **fields)
        self._publish(sl.kind, {"state": state, "folder": sl.folder, "name": sl.name, **fields})

    async def close(self, t_ns: int, wait_s: float = SAVE_WAIT_S) -> None:
        """The end of the run (after session.stop, whose panic belongs in a running take): the
        take still running is closed and saved, and the saves finish, before returning; those
        not finished within `wait_s` (a hung disk) are reported not saved, and left behind."""
        self._closed = True
        self._run_deferred()
        if self._take is not None:
            take = dataclasses.replace(self._take, to_ns=t_ns, at_end=True)
            self._take = None
            assert self._take_start is not None
            self._save_take(take, self._take_start)
        if self._saving:
            await asyncio.wait(list(self._saving), timeout=wait_s)
        # Still being written, or waiting to be. A save done in this very turn (its callback,
        # which reports it saved and forgets it, not run yet) is not one of them.
        left = [(task, sl) for task, sl in self._saving.items() if not task.done()]
        for task, sl in left:
            task.cancel()  # nothing more is said of it (a save not begun never will be)
            error = (f"not written within {wait_s:g} s of the stop (a hung or slow disk?): "
                     f"abandoned, {sl.folder} may be incomplete")
            log.error("%s %s not saved: %s (the full recording has it)", sl.kind, sl.folder,
                      error)
            self._report(sl, "failed", error=error)
        if left:  # cancelled: they end at once (a stuck thread is no longer awaited)
            await asyncio.wait([task for task, _ in left])
        self._writer.close()  # its thread ends once unstuck, or with the process
        if self.ring.tap in self._session.log.taps:
            self._session.log.taps.remove(self.ring.tap)


if __name__ == "__main__":
    _export_slice_midi(Path(sys.argv[1]))
