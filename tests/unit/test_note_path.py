"""A note path that cannot fail half-way: the scheduler's releases and the event log on a disk
that fails (a real tmpfs filled up: ENOSPC)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import config as config_mod
from agent import midi
from agent.clock import ManualClock, MonotonicClock
from agent.errors import RecordingError
from agent.events import Emitted, Heard
from agent.io.remote import Remote
from agent.record.log import (
    FAILING,
    OFF,
    QUEUE_FULL,
    RECORDING,
    EventLog,
    LogStatus,
    read_log,
)
from agent.record.session import LOG_NAME, MIDI_NAME, Session
from agent.record.summary import format_summary
from agent.schedule.realtime import drive
from agent.schedule.scheduler import Scheduler
from tests.disks import fill, slow_write_library, small_tmpfs
from tests.unit.test_monitor import Stream, free_port, until

PITCHES = range(4, 124)  # 120 notes on one channel
TAIL = [midi.control_change(1, cc, 0) for cc in (64, 123, 120)]
MS = 1_000_000
S = 1000 * MS
# A header a log's reader takes (agent.record.schema checks what the readers index).
HEADER = {"config": {"players": [{"name": "p"}], "performance": {"name": "t"},
                     "agent": {"mode": "harmony", "outputs": ["o"]}}}


class FullDisk:
    """The recorder's hook once the disk is full: it raises ENOSPC at every message, as the
    old log's write did from inside the note path. A stand-in for the recorder (the real log no
    longer raises: see the tests below on a real full tmpfs), to hold the scheduler to its own
    promise whatever a hook does."""

    def __init__(self) -> None:
        self.full = False

    def __call__(self, e: Emitted, why: str) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


def sounding_120() -> tuple[Scheduler, list[tuple[str, bytes]], FullDisk]:
    sent: list[tuple[str, bytes]] = []
    hook = FullDisk()
    sched = Scheduler(ManualClock(), lambda port, data: sent.append((port, data)) is None,
                      60_000 * MS, hook)
    for pitch in PITCHES:
        sched.note_on(0, "synth", 1, pitch, 90)
    sched.run_due(0)
    assert len(sent) == 120
    sent.clear()
    return sched, sent, hook


RELEASES: dict[str, tuple[Callable[[Scheduler], None], bool]] = {
    "panic": (lambda s: s.panic("panic"), True),
    "close": (lambda s: s.close("stop"), True),
    "silence": (lambda s: s.silence("mute"), False),
    "panic_port": (lambda s: s.panic_port("synth", "output-back"), True),
    "release_port": (lambda s: s.release_port("synth", "output-lost"), False),
}


@pytest.mark.parametrize("release", list(RELEASES))
def test_a_release_sends_every_note_off_and_the_tail_though_the_recorder_raises(
        release: str) -> None:
    sched, sent, hook = sounding_120()
    hook.full = True
    action, with_tail = RELEASES[release]
    with pytest.raises(OSError, match="No space left"):  # said, after everything went out
        action(sched)
    assert [data for _, data in sent] == [midi.note_off(1, p) for p in PITCHES] + (
        TAIL if with_tail else [])
    assert sched.ledger.sounding() == []


def test_jobs_due_together_all_run_though_the_recorder_raises_at_the_first() -> None:
    sent: list[bytes] = []
    hook = FullDisk()
    clock = ManualClock()
    sched = Scheduler(clock, lambda port, data: sent.append(data) is None, 100 * MS, hook)
    for pitch in (60, 64, 67):
        sched.note_on(10 * MS, "synth", 1, pitch, 80)  # planned, never released by the plan
    hook.full = True
    clock.advance_to(10 * MS)
    with pytest.raises(OSError):
        sched.run_due(10 * MS)
    assert sent == [midi.note_on(1, p, 80) for p in (60, 64, 67)]
    hook.full = False  # each still ends at the maximum note length
    clock.advance_to(110 * MS)
    sched.run_due(110 * MS)
    assert sent[3:] == [midi.note_off(1, p) for p in (60, 64, 67)]


async def test_the_real_time_driver_goes_on_after_a_job_that_raised() -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(str(context["exception"])))
    clock = MonotonicClock()
    sent: list[bytes] = []

    def full_once(e: Emitted, why: str) -> None:  # the disk is full for the first note only
        if len(sent) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
    sched = Scheduler(clock, lambda port, data: sent.append(data) is None, S, full_once)
    driver = drive(loop, sched)
    try:
        now = clock.now_ns()
        sched.note_on(now + 5 * MS, "synth", 1, 60, 80)
        sched.note_on(now + 30 * MS, "synth", 1, 62, 80)  # planned already: no new timer
        await until(lambda: len(sent) == 2)
    finally:
        driver.stop()
    assert sent == [midi.note_on(1, 60, 80), midi.note_on(1, 62, 80)]
    assert errors == ["[Errno 28] No space left on device"]  # the loop said so


def test_a_stop_panics_whatever_writing_its_record_does(tmp_path: Path) -> None:
    """A tap that raises on the `stop` record (a bug stands in for any failure there)."""
    sent: list[bytes] = []
    cfg = config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"outputs": ["synth"], "channel": 2, "mode": "harmony"},
        "harmony": {"intervals": [7]}})
    clock = ManualClock()
    session = Session(cfg, clock, lambda port, data: sent.append(data) is None, tmp_path / "r",
                      {"clock": "manual"})
    session.hear(Heard(0, "keys", bytes([0x90, 60, 80])))

    def broken(record: dict[str, Any]) -> None:
        if record.get("what") == "stop":
            raise RuntimeError("a tap's bug")
    session.log.taps.append(broken)
    with pytest.raises(RuntimeError, match="a tap's bug"):
        session.stop(MS)
    assert sent == [midi.note_on(1, 67, 80), midi.note_off(1, 67), *TAIL]


# -- the log on a real full disk ------------------------------------------------------------

def disk(tmp_path: Path, kib: int = 256) -> Any:
    return small_tmpfs(tmp_path / "disk", kib)


def written(path: Path) -> tuple[list[int], list[dict[str, Any]]]:
    """The `n` of the records in the file, and its records-lost notes; every line whole."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    _header, records = read_log(path)
    assert len(records) == raw.count(b"\n") - 1  # no torn line anywhere
    return ([r["n"] for r in records if r["k"] == "x"],
            [r for r in records if r["k"] == "note" and r["what"] == "records-lost"])


def check_gaps(numbers: list[int], notes: list[dict[str, Any]], total: int,
               path: Path) -> None:
    """What the file holds plus what its notes say was lost is everything, in order, and each
    note stands where its records are missing."""
    records = read_log(path)[1]
    expected = 0
    for r in records:
        if r["k"] == "note":
            expected += r["lost"]
        else:
            assert r["n"] == expected, (r, expected)
            expected += 1
    assert expected == total
    assert len(numbers) + sum(n["lost"] for n in notes) == total


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_a_full_disk_loses_records_without_raising_and_the_log_says_where(
        tmp_path: Path, background: bool) -> None:
    with disk(tmp_path) as folder:
        path = folder / LOG_NAME
        log = EventLog(path, HEADER, flush_ms=10, background=background)
        for n in range(200):
            log.write("x", n, n=n)
        log.flush()
        if background:
            log.mark().result(10)
        filler = fill(folder)
        for n in range(200, 3199):  # ~100 KiB: never fits
            log.write("x", n, n=n)
        # The writer takes what is queued in chunks of its own sizing, and a small last chunk
        # can fit in the slack of the file's last page (then the log is rightly "recording"
        # again); a record larger than a page never fits, so the log ends this burst failing.
        log.write("x", 3199, n=3199, pad="p" * 8192)
        log.mark().result(10)
        status = log.status()
        assert status.state == FAILING and status.lost > 0
        assert status.error == "[Errno 28] No space left on device"
        filler.unlink()  # room again: the log goes on, after a note of what it lost
        for n in range(3200, 3300):
            log.write("x", n, n=n)
        log.close()
        assert log.status().state == RECORDING
        numbers, notes = written(path)
        assert numbers[:200] == list(range(200)) and numbers[-100:] == list(range(3200, 3300))
        assert len(notes) >= 1 and notes[0]["error"] == "[Errno 28] No space left on device"
        assert log.status().lost == sum(n["lost"] for n in notes)
        check_gaps(numbers, notes, 3300, path)


def test_what_is_lost_at_the_end_is_counted_and_the_file_stays_whole_lines(tmp_path: Path) -> None:
    with disk(tmp_path) as folder:
        path = folder / LOG_NAME
        log = EventLog(path, HEADER, flush_ms=10, background=True)
        for n in range(100):
            log.write("x", n, n=n)
        log.mark().result(10)
        fill(folder)
        for n in range(100, 1100):
            log.write("x", n, n=n)
        log.close()
        numbers, notes = written(path)
        assert numbers == list(range(100)) and log.status().lost == 1000
        # The trailer says so if it fits in what the file's last page has left (it did here:
        # tmpfs gives whole pages); the count is in the status (and the summary) either way.
        assert [(n["t"], n["lost"]) for n in notes] in ([], [(1099, 1000)])


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_a_log_that_cannot_be_created(tmp_path: Path, background: bool) -> None:
    with disk(tmp_path, kib=16) as folder:
        fill(folder)
        path = folder / "run" / LOG_NAME
        header = {"config": {"players": ["x" * 100] * 100}}  # more than a page: never fits
        if not background:  # a replay: nothing to play, so an error
            with pytest.raises(RecordingError, match="No space left on device"):
                EventLog(path, header)
            return
        log = EventLog(path, header, background=True)  # live: plays on without it
        assert not log.on_disk and not path.exists()
        log.write("x", 1, n=1)
        status = log.status()
        assert status == LogStatus(OFF, 1, f"cannot write {path}: [Errno 28] No space left "
                                   "on device")


HELD_WRITER = """
import json, sys
from pathlib import Path
from agent.record.log import EventLog
HEADER = {"config": {"players": [{"name": "p"}], "performance": {"name": "t"},
                     "agent": {"mode": "harmony", "outputs": ["o"]}}}
path, gate = Path(sys.argv[1]), Path(sys.argv[2])
log = EventLog(path, HEADER, flush_ms=1, background=True, max_queued_bytes=2_000)
log.write("x", 0, n=0)
log.mark().result(10)
gate.touch()  # the disk hangs from now on
for n in range(1, 100):
    log.write("x", n, n=n)
gate.unlink()
log.close()
print(json.dumps(log.status().__dict__))
"""


def test_a_writer_held_up_by_a_hung_disk_drops_the_newest_and_says_so(tmp_path: Path) -> None:
    """The queue's bound, in a process whose disk writes hang (tests/disks.py's library) while
    a gate file exists."""
    library = slow_write_library(tmp_path)
    folder, gate = tmp_path / "disk", tmp_path / "gate"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", HELD_WRITER, str(folder / LOG_NAME), str(gate)],
                          env={**os.environ, "LD_PRELOAD": str(library),
                               "SLOW_WRITE_DIR": str(folder), "SLOW_WRITE_GATE": str(gate)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    numbers, notes = written(folder / LOG_NAME)
    assert status["state"] == RECORDING and status["lost"] > 0
    assert status["error"] == QUEUE_FULL
    assert [n["error"] for n in notes] == [QUEUE_FULL]
    assert notes[0]["lost"] == status["lost"]
    # At most what the bound holds waited, besides the batch the writer was stuck in.
    assert len(numbers) < 1 + 2 * 2_000 // len('{"t":10,"k":"x","n":10}\n')
    check_gaps(numbers, notes, 100, folder / LOG_NAME)


# -- a session stopping on a full disk ------------------------------------------------------

def test_a_stop_on_a_full_disk_releases_all_120_notes_and_says_what_was_lost(
        tmp_path: Path) -> None:
    with disk(tmp_path) as folder:
        sent: list[bytes] = []
        cfg = config_mod.from_dict({
            "players": [{"name": "keys", "port": "virtual:keys"}],
            "agent": {"outputs": ["synth"], "channel": 2, "mode": "harmony",
                      "max_note_ms": 60_000.0},
            "harmony": {"intervals": [-40, 1, 42]}})
        clock = ManualClock()
        session = Session(cfg, clock, lambda port, data: sent.append(data) is None,
                          folder / "run", {"clock": "monotonic"}, log_in_background=True)
        for i, key in enumerate(range(42, 82)):  # 40 keys held: 120 harmony notes
            clock.advance_to((i + 1) * MS)
            session.hear(Heard(clock.now_ns(), "keys", bytes([0x90, key, 80])))
        assert sum(midi.is_note_on(d) for d in sent) == 120
        session.log.mark().result(10)
        fill(folder)
        sent.clear()
        session.stop(clock.now_ns())  # the stop's own records cannot be written
        assert sorted(d[1] for d in sent[:120]) == sorted(
            k + i for k in range(42, 82) for i in (-40, 1, 42))
        assert all(midi.is_note_off(d) for d in sent[:120])
        assert sent[120:] == TAIL
        summary = session.finish()
        assert summary["recording_lost"] == 124  # the stop, and its 123 messages
        assert summary["midi_error"] == (f"cannot write {folder / 'run' / MIDI_NAME}: "
                                         "[Errno 28] No space left on device")
        assert not (folder / "run" / MIDI_NAME).exists()  # no half-written file
        assert summary["notes_played"] == 120  # from what the log holds
        text = format_summary(summary)
        assert ("RECORDING INCOMPLETE: 124 records lost ([Errno 28] No space left on device)"
                in text)
        assert "performance.mid NOT written: cannot write" in text


async def test_the_monitor_and_the_recording_state_say_when_the_disk_fills(
        tmp_path: Path) -> None:
    with disk(tmp_path) as folder:
        cfg = config_mod.from_dict({
            "performance": {"name": "full"},
            "players": [{"name": "keys", "port": "virtual:keys"}],
            "agent": {"mode": "harmony", "outputs": ["synth"], "channel": 2},
            "harmony": {"intervals": [7]},
            "monitor": {"listen": str(free_port())},
        }, str(tmp_path / "performance.toml"))
        clock = ManualClock(S)
        session = Session(cfg, clock, lambda port, data: True, folder / "rec",
                          {"clock": "monotonic"}, log_in_background=True)
        remote = Remote(cfg, session)  # publishes to the monitor (and MQTT, when configured)
        assert remote.monitor is not None
        await remote.start()
        try:
            stream = await Stream.open(remote.monitor.address[1])
            session.log.flush_if_due(clock.now_ns())  # at the start: the state as it is
            assert await stream.until("recording") == {
                "state": "recording", "folder": str(folder / "rec"), "lost": 0, "error": None}
            fill(folder)
            for i in range(300):  # the answers' records: ~30 KiB, and no room
                clock.advance_to(clock.now_ns() + MS)
                session.hear(Heard(clock.now_ns(), "keys", bytes([0x90 | (i % 2) << 4, 60, 90])))
            await asyncio.to_thread(session.log.mark().result, 10)
            clock.advance_to(clock.now_ns() + S)
            session.log.flush_if_due(clock.now_ns())
            state = await stream.until("recording")
            assert state["state"] == "failing" and state["lost"] > 0
            assert state["error"] == "[Errno 28] No space left on device"
            remote.telemetry({"emitted": 0})  # once a second in perform: the status goes along
            status = await stream.until("status")
            assert status["recording_ok"] is False
            assert status["recording"] == (f"{folder / 'rec'}: failing, {state['lost']} records "
                                           "lost ([Errno 28] No space left on device)")
            stream.close()
        finally:
            await remote.close()
            session.stop(clock.now_ns())
            session.finish()


HUNG_AT_THE_END = """
import json, sys
from pathlib import Path
from agent.record.log import EventLog
HEADER = {"config": {"players": [{"name": "p"}], "performance": {"name": "t"},
                     "agent": {"mode": "harmony", "outputs": ["o"]}}}
path, gate = Path(sys.argv[1]), Path(sys.argv[2])
log = EventLog(path, HEADER, flush_ms=10, background=True)
for n in range(10):
    log.write("x", n, n=n)
log.mark().result(10)
gate.touch()  # the disk hangs from now on, and never comes back
for n in range(10, 30):
    log.write("x", n, n=n)
log.close(timeout_s=0.5)
print(json.dumps(log.status().__dict__), flush=True)
"""


def test_a_disk_that_hangs_at_the_end_is_given_up_and_the_process_exits(
        tmp_path: Path) -> None:
    library = slow_write_library(tmp_path)
    folder, gate = tmp_path / "disk", tmp_path / "gate"
    folder.mkdir()
    try:
        done = subprocess.run(
            [sys.executable, "-c", HUNG_AT_THE_END, str(folder / LOG_NAME), str(gate)],
            env={**os.environ, "LD_PRELOAD": str(library), "SLOW_WRITE_DIR": str(folder),
                 "SLOW_WRITE_GATE": str(gate)},
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        gate.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"state": OFF, "lost": 20,
                                       "error": "the disk took nothing for 0.5 s at the end"}
    assert written(folder / LOG_NAME)[0] == list(range(10))
