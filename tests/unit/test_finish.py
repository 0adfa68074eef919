"""The end of a run (Session.finish): performance.mid and the summary from what the session kept
of each record as it was written, without reading the log back, when the file took every record;
from the file, read back, when it did not (the summary and the MIDI file never hold more than
the recording); the same bytes and figures either way."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from agent import config as config_mod
from agent import midi
from agent.clock import ManualClock
from agent.events import Heard
from agent.policy.commands import Command
from agent.record import log as log_mod
from agent.record import session as session_mod
from agent.record.log import read_log
from agent.record.session import LOG_NAME, MIDI_NAME, Session
from agent.record.summary import Tally, summarise
from tests.midi_files import mido_export

MS = 1_000_000
CONFIG = config_mod.from_dict({
    "players": [{"name": "keys", "port": "virtual:keys"}],
    "agent": {"outputs": ["synth"], "channel": 2, "mode": "harmony"},
    "harmony": {"intervals": [7]}})


def play(session: Session, clock: ManualClock, keys: range, start_ms: int = 0) -> None:
    """Each key pressed and released (the agent answers each with a fifth above)."""
    for i, key in enumerate(keys):
        for offset, velocity in ((0, 80), (50, 0)):
            clock.advance_to((start_ms + 100 * i + offset + 1) * MS)
            session.hear(Heard(clock.now_ns(), "keys", bytes([0x90, key, velocity])))


def run(folder: Path) -> tuple[Session, ManualClock]:
    clock = ManualClock()
    session = Session(CONFIG, clock, lambda port, data: True, folder, {"clock": "manual"})
    play(session, clock, range(60, 72))
    session.actions["record"] = lambda fields, t_ns: None  # a mark: the session logs it
    session.command(Command("record", {"action": "mark", "label": "verse"}), clock.now_ns())
    play(session, clock, range(72, 76), start_ms=2000)
    return session, clock


def from_the_file(folder: Path) -> tuple[dict[str, Any], bytes]:
    """The summary's figures and the MIDI file as the log file's records make them (mido's)."""
    header, records = read_log(folder / LOG_NAME)
    return summarise(header, records), mido_export(header, records)


def test_the_end_of_a_run_does_not_read_its_log_back(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a 200,000-record log back took seconds after the panic (bench/finish.py); the
    session kept what the end needs as the records were written."""
    session, clock = run(tmp_path / "run")
    session.stop(clock.now_ns())

    def refuse(path: Path) -> None:
        raise AssertionError(f"{path} read back")
    monkeypatch.setattr(session_mod, "read_log", refuse)
    summary = session.finish()
    monkeypatch.undo()
    assert summary["notes_heard"] == 16 and summary["notes_played"] == 16
    assert summary["markers"] == [{"label": "verse", "ms": 1150.0}]
    expected, midi_file = from_the_file(tmp_path / "run")
    assert {k: summary[k] for k in expected} == expected
    assert (tmp_path / "run" / MIDI_NAME).read_bytes() == midi_file


def test_records_the_disk_lost_are_in_neither_the_summary_nor_the_midi_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the recording holds, as before: the session kept the lost records too, but the
    summary and performance.mid are made from the file then, read back, and say what it lost."""
    session, clock = run(tmp_path / "run")
    session.log.flush()
    write = log_mod._File.write

    def full(self: log_mod._File, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(log_mod._File, "write", full)
    written = session.log.records
    play(session, clock, range(80, 84), start_ms=4000)  # 4 keys and their fifths: lost
    session.log.flush()
    lost = session.log.records - written
    monkeypatch.setattr(log_mod._File, "write", write)  # room again
    session.stop(clock.now_ns())
    summary = session.finish()
    assert lost >= 16 and summary["recording_lost"] == lost
    assert summary["recording_error"] == "[Errno 28] No space left on device"
    assert summary["notes_heard"] == 16  # the run heard 20 notes: 4 are not in the file
    expected, midi_file = from_the_file(tmp_path / "run")
    assert {k: summary[k] for k in expected} == expected
    assert (tmp_path / "run" / MIDI_NAME).read_bytes() == midi_file
    assert bytes([0x90, 80, 80]).hex() not in [
        r.get("data") for r in read_log(tmp_path / "run" / LOG_NAME)[1]]


def test_keeping_that_fails_never_reaches_the_note_path_and_the_end_reads_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session, clock = run(tmp_path / "run")
    add = Tally.add

    def broken(self: Tally, r: dict[str, Any], data: bytes | None = None) -> None:
        if r["k"] == "emit" and midi.is_note_on(bytes.fromhex(r["data"])) and \
                bytes.fromhex(r["data"])[1] == 84:
            raise ValueError("a bug")
        add(self, r, data)
    monkeypatch.setattr(Tally, "add", broken)
    play(session, clock, range(77, 80), start_ms=4000)  # 84 is the fifth above 77
    monkeypatch.setattr(Tally, "add", add)
    assert session.kept.failed == "ValueError: a bug"
    session.stop(clock.now_ns())
    summary = session.finish()
    assert summary["notes_played"] == 19 and summary["recording_lost"] == 0
    expected, midi_file = from_the_file(tmp_path / "run")
    assert {k: summary[k] for k in expected} == expected
    assert (tmp_path / "run" / MIDI_NAME).read_bytes() == midi_file
