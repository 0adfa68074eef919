"""Takes, markers and captures on a manual clock: real sessions, real files, real mido."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import mido
import pytest

from agent import config as config_mod
from agent import console
from agent.clock import ManualClock
from agent.events import Heard
from agent.model.live import InlineModel, RecordedModel
from agent.policy.commands import CommandError, parse_command
from agent.record import smf
from agent.record.log import read_log
from agent.record.replay import Recording, fit_config, load_recording, replay_fast, replay_model
from agent.record.session import LOG_NAME, MIDI_NAME, Session
from agent.record.summary import format_summary
from agent.record.takes import MAX_WAITING, CaptureRing, Takes, safe_name
from tests.model_fixtures import save_random_checkpoint

MS = 1_000_000
S = 1000 * MS
Record = dict[str, Any]


class Stage:
    """A session (harmony a fifth up: every note heard is answered at once) with its takes."""

    def __init__(self, folder: Path, capture_s: float = 10.0) -> None:
        self.clock = ManualClock()
        self.cfg = config_mod.from_dict({
            "players": [{"name": "keys", "port": "virtual:keys"}],
            "agent": {"outputs": ["synth"], "channel": 2, "mode": "harmony"},
            "harmony": {"intervals": [7]}, "record": {"capture_s": capture_s}})
        self.out = folder / "perf-1"
        self.session = Session(self.cfg, self.clock, lambda port, data: True, self.out,
                               {"clock": "manual"})
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.takes = Takes(self.cfg, self.session, asyncio.get_running_loop(),
                           lambda kind, payload: self.published.append((kind, payload)),
                           settle_s=0.0)
        self.session.actions.update(self.takes.actions())

    def at(self, t_ms: float) -> int:
        t = round(t_ms * MS)
        self.clock.advance_to(t)
        self.session.run_due(t)
        return t

    def play(self, t_ms: float, *data: int) -> None:
        self.session.hear(Heard(self.at(t_ms), "keys", bytes(data)))

    def note(self, on_ms: float, off_ms: float, pitch: int) -> None:
        self.play(on_ms, 0x90, pitch, 80)
        self.play(off_ms, 0x80, pitch, 0)

    async def command(self, t_ms: float, verb: str, **fields: Any) -> None:
        self.session.command(parse_command(verb, fields), self.at(t_ms))
        while self.takes.snapshots_due:  # the loop runs on: the slice is taken after it
            await asyncio.sleep(0)

    async def end(self, t_ms: float) -> dict[str, Any]:
        self.session.stop(self.at(t_ms))
        await self.takes.close(self.clock.now_ns())
        return self.session.finish()


def run(scenario: Callable[[Stage], Awaitable[Any]], folder: Path, **stage: Any) -> Any:
    async def main() -> Any:
        return await scenario(Stage(folder, **stage))
    return asyncio.run(main())


def window(records: list[Record], from_ms: float, to_ms: float) -> list[Record]:
    return [r for r in records if from_ms * MS <= r["t"] <= to_ms * MS]


def heard(records: list[Record]) -> list[tuple[int, str]]:
    return [(r["t"] // MS, r["data"]) for r in records if r["k"] == "in"]


def markers(mid: mido.MidiFile) -> list[str]:
    return [m.text for m in mid.tracks[0] if m.type == "marker"]


def sounding_at_end(mid: mido.MidiFile) -> dict[str, list[int]]:
    """Per track, the notes still on at the end of the file (note-offs of notes begun before
    the file are ignored)."""
    out = {}
    for track in mid.tracks[1:]:
        on: dict[tuple[int, int], int] = {}
        for m in track:
            if m.type == "note_on" and m.velocity:
                on[(m.channel, m.note)] = on.get((m.channel, m.note), 0) + 1
            elif m.type in ("note_on", "note_off") and on.get((m.channel, m.note)):
                on[(m.channel, m.note)] -= 1
        out[track.name] = sorted(note for (_, note), n in on.items() for _ in range(n))
    return out


# -- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "folder"), [
    ("Verse 1 / take 2", "Verse-1-take-2"), ("../../etc/passwd", "etc-passwd"), ("..", "take"),
    ("Café crème", "Cafe-creme"), ("-rf", "rf"), ("日本", "take"), ("a\\b:c*d", "a-b-c-d"),
    ("under_score-ok", "under_score-ok"), (None, "take"), ("x" * 64, "x" * 64),
    ("_.hidden", "hidden"),
])
def test_names_become_safe_folder_names(name: str | None, folder: str) -> None:
    assert safe_name(name, "take") == folder


# -- the ring buffer ---------------------------------------------------------------------------

def test_the_ring_keeps_the_last_seconds_by_record_time() -> None:
    ring = CaptureRing(10.0)
    for s in range(21):
        ring.tap({"t": s * S, "k": "in"})
    assert [r["t"] // S for r in ring.snapshot()] == list(range(10, 21))
    assert ring.window_start(20 * S, None) == 10 * S  # all it holds
    assert ring.window_start(20 * S, 5.0) == 15 * S
    assert ring.window_start(20 * S, 60.0) == 9 * S + 1  # no more than it holds
    assert ring.dropped_at_cap == 0


def test_a_run_shorter_than_the_ring_is_held_from_its_first_record() -> None:
    ring = CaptureRing(10.0)
    for s in (3, 4, 5):
        ring.tap({"t": s * S, "k": "in"})
    assert ring.window_start(6 * S, None) == 3 * S
    assert ring.window_start(6 * S, 2.0) == 4 * S


def test_a_flood_drops_the_oldest_records_at_the_cap() -> None:
    ring = CaptureRing(10.0, max_records=5)
    for i in range(8):
        ring.tap({"t": i * MS, "k": "in"})
    assert len(ring) == 5 and ring.dropped_at_cap == 3
    assert [r["t"] // MS for r in ring.snapshot()] == [3, 4, 5, 6, 7]
    assert ring.window_start(8 * MS, None) == 2 * MS + 1  # it holds everything since then


# -- takes and captures ------------------------------------------------------------------------

async def performance(stage: Stage) -> dict[str, Any]:
    stage.note(100, 200, 60)
    await stage.command(1000, "record", action="start", name="Verse 1")
    stage.note(1100, 1200, 62)
    stage.play(1300, 0x90, 64, 80)  # held across the take's stop
    await stage.command(1500, "record", action="mark", label="the drop")
    await stage.command(2000, "record", action="stop")
    stage.play(2100, 0x80, 64, 0)
    stage.note(2500, 2600, 65)
    stage.play(2800, 0x90, 67, 80)  # held across the capture's end
    await stage.command(3000, "capture-save", seconds=1.5, name="that bit")
    stage.play(3500, 0x80, 67, 0)
    return await stage.end(4000)


def test_a_take_is_exactly_the_logs_records_between_its_start_and_stop(tmp_path: Path) -> None:
    run(performance, tmp_path)
    out = tmp_path / "perf-1"
    header, records = read_log(out / LOG_NAME)
    take = out / "takes" / "01-Verse-1"
    take_header, take_records = read_log(take / LOG_NAME)
    assert take_header == {**header, "slice": {"of": "perf-1", "from_ns": 1000 * MS,
                                               "to_ns": 2000 * MS, "reason": "take",
                                               "name": "Verse 1"}}
    assert take_records == window(records, 1000, 2000)
    assert heard(take_records) == [(1100, "903e50"), (1200, "803e00"), (1300, "904050")]
    ctl = [(r["what"], r.get("action")) for r in take_records if r["k"] == "ctl"]
    assert ctl == [("record", "start"), ("record", "mark"), ("record", "stop")]
    mid = mido.MidiFile(take / MIDI_NAME)
    assert markers(mid) == ["take start: Verse 1", "the drop", "take stop"]
    assert sounding_at_end(mid) == {"keys": [], "stage-agent": []}
    # 64 (and its fifth) still sounded at the stop: released at the take's end, time 1 s.
    last = [(m.type, m.note) for m in mid.tracks[1] if not m.is_meta][-1]
    assert last == ("note_off", 64)
    assert mid.tracks[1][-2].time > 0 and round(mid.length, 3) == 1.0


def test_a_capture_is_the_last_seconds_and_releases_what_it_cuts(tmp_path: Path) -> None:
    run(performance, tmp_path)
    out = tmp_path / "perf-1"
    _header, records = read_log(out / LOG_NAME)
    capture = out / "captures" / "01-that-bit"
    cap_header, cap_records = read_log(capture / LOG_NAME)
    assert cap_header["slice"] == {"of": "perf-1", "from_ns": 1500 * MS, "to_ns": 3000 * MS,
                                   "reason": "capture-save", "name": "that bit"}
    assert cap_records == window(records, 1500, 3000)
    assert heard(cap_records) == [(2100, "804000"), (2500, "904150"), (2600, "804100"),
                                  (2800, "904350")]
    mid = mido.MidiFile(capture / MIDI_NAME)
    assert sounding_at_end(mid) == {"keys": [], "stage-agent": []}
    assert markers(mid) == ["the drop", "take stop"]
    keys = [(m.type, m.note) for m in mid.tracks[1] if not m.is_meta]
    # the note-off of 64 (begun before the capture) is kept; 67 is released at the end
    assert keys == [("note_off", 64), ("note_on", 65), ("note_off", 65), ("note_on", 67),
                    ("note_off", 67)]


def test_markers_and_slices_are_in_the_full_recording_and_its_summary(tmp_path: Path) -> None:
    summary = run(performance, tmp_path)
    out = tmp_path / "perf-1"
    assert markers(mido.MidiFile(out / MIDI_NAME)) == [
        "take start: Verse 1", "the drop", "take stop"]
    assert summary["markers"] == [{"label": "the drop", "ms": 1400.0}]  # from the first record
    counts = [len(read_log(out / folder / LOG_NAME)[1])
              for folder in ("takes/01-Verse-1", "captures/01-that-bit")]
    assert counts == [9, 11]
    assert summary["takes"] == [{"folder": "takes/01-Verse-1", "seconds": 1.0, "records": 9}]
    assert summary["captures"] == [{"folder": "captures/01-that-bit", "seconds": 1.5,
                                    "records": 11}]
    text = format_summary(summary)
    assert "  markers: 1.400 s the drop" in text
    assert "  take takes/01-Verse-1: 1.0 s, 9 records" in text
    assert "  capture captures/01-that-bit: 1.5 s, 11 records" in text
    _, records = read_log(out / LOG_NAME)
    notes = [r["what"] for r in records if r["k"] == "note"]
    assert notes == ["take-saved", "capture-saved"]


def test_the_operator_hears_of_every_slice(tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> list[tuple[str, dict[str, Any]]]:
        await performance(stage)
        return stage.published
    published = run(scenario, tmp_path)
    assert [(kind, p["state"], p["folder"]) for kind, p in published] == [
        ("take", "recording", "takes/01-Verse-1"), ("take", "saving", "takes/01-Verse-1"),
        ("capture", "saving", "captures/01-that-bit"),
        ("take", "saved", "takes/01-Verse-1"), ("capture", "saved", "captures/01-that-bit")]
    assert published[3][1] == {"state": "saved", "folder": "takes/01-Verse-1",
                               "name": "Verse 1", "seconds": 1.0, "records": 9}


def test_take_errors_refuse_the_command_and_record_nothing(tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> None:
        with pytest.raises(CommandError, match=r"^record stop: no take is running "
                                               r"\(record start first\)$"):
            await stage.command(100, "record", action="stop")
        await stage.command(200, "record", action="start")
        with pytest.raises(CommandError, match=r"^record start: take takes/01-take is running "
                                               r"\(record stop first\)$"):
            await stage.command(300, "record", action="start", name="again")
        await stage.command(400, "record", action="stop")
        await stage.command(500, "record", action="start", name="second")
        await stage.command(600, "record", action="stop")
        stage.session.stop(stage.at(700))
        await stage.takes.close(stage.clock.now_ns())
        with pytest.raises(CommandError, match=r"^capture-save: the performance is stopping$"):
            await stage.command(800, "capture-save")
        stage.session.finish()
    run(scenario, tmp_path)
    _, records = read_log(tmp_path / "perf-1" / LOG_NAME)
    assert [(r["t"] // MS, r["action"]) for r in records if r["k"] == "ctl"
            and r["what"] == "record"] == [(200, "start"), (400, "stop"), (500, "start"),
                                           (600, "stop")]
    assert sorted(p.name for p in (tmp_path / "perf-1" / "takes").iterdir()) == [
        "01-take", "02-second"]


def test_capture_saves_waiting_to_be_written_are_bounded(tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> None:
        for i in range(MAX_WAITING):  # the loop does not run in between: none is taken yet
            stage.session.command(parse_command("capture-save", {}), stage.at(100 + i))
        with pytest.raises(CommandError, match=r"^capture-save: 4 saves are still being "
                                               r"written \(try again in a moment\)$"):
            stage.session.command(parse_command("capture-save", {}), stage.at(200))
        await stage.end(300)
    run(scenario, tmp_path)
    assert sorted(p.name for p in (tmp_path / "perf-1" / "captures").iterdir()) == [
        "01-capture", "02-capture", "03-capture", "04-capture"]


def test_a_take_running_at_the_end_is_closed_and_saved(tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> dict[str, Any]:
        await stage.command(100, "record", action="start")
        stage.play(200, 0x90, 60, 80)  # still held at the end: the stop's panic releases it
        return await stage.end(500)
    summary = run(scenario, tmp_path)
    take = tmp_path / "perf-1" / "takes" / "01-take"
    _, records = read_log(take / LOG_NAME)
    assert records[-1]["t"] <= 500 * MS
    assert [r["what"] for r in records if r["k"] == "ctl"] == ["record", "stop"]
    assert summary["takes"] == [{"folder": "takes/01-take", "seconds": 0.4,
                                 "records": len(records), "at_end": True}]
    assert "(still running at the end: closed at the stop)" in format_summary(summary)
    assert sounding_at_end(mido.MidiFile(take / MIDI_NAME)) == {"keys": [], "stage-agent": []}


def test_a_take_can_be_longer_than_the_ring_buffer(tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> None:
        await stage.command(500, "record", action="start")
        for s in range(1, 30):
            stage.note(s * 1000, s * 1000 + 100, 60)
        await stage.command(30_000, "record", action="stop")
        await stage.command(30_000, "capture-save", seconds=60)
        await stage.end(31_000)
    run(scenario, tmp_path, capture_s=10.0)
    _, take = read_log(tmp_path / "perf-1" / "takes" / "01-take" / LOG_NAME)
    assert len(heard(take)) == 58
    capture_header, capture = read_log(tmp_path / "perf-1" / "captures" / "01-capture" / LOG_NAME)
    assert capture_header["slice"]["from_ns"] > 19_000 * MS  # the buffer holds 10 s
    assert [t for t, _ in heard(capture)] == [t for s in range(20, 30)
                                              for t in (s * 1000, s * 1000 + 100)]


def test_a_slice_that_cannot_be_written_is_reported_and_the_show_goes_on(
        tmp_path: Path) -> None:
    async def scenario(stage: Stage) -> dict[str, Any]:
        (stage.out / "takes" / "01-take").mkdir(parents=True)  # in the way
        await stage.command(100, "record", action="start")
        await stage.command(200, "record", action="stop")
        return await stage.end(300)
    summary = run(scenario, tmp_path)
    (failed,) = summary["takes"]
    assert failed["folder"] == "takes/01-take" and failed["error"].startswith("FileExistsError")
    assert "  take takes/01-take NOT saved: FileExistsError" in format_summary(summary)


def test_a_slice_is_reported_saved_when_stdout_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """stdout a pipe whose reader has gone (`perform | head`, a closed terminal): the "saved"
    line cannot be printed, and the operator still hears that the take and capture were saved
    (state/take was left at "saving" when the print raised); the line goes to stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as broken:
        monkeypatch.setattr(sys, "stdout", broken)
        monkeypatch.setattr(console, "_gone", set())  # restored after the test

        async def scenario(stage: Stage) -> list[tuple[str, dict[str, Any]]]:
            await performance(stage)
            return stage.published
        published = run(scenario, tmp_path)
        monkeypatch.undo()  # sys.stdout back before `broken` is closed
    assert [(kind, p["state"]) for kind, p in published][-2:] == [
        ("take", "saved"), ("capture", "saved")]
    err = capsys.readouterr().err
    assert "stage-agent: take saved to takes/01-Verse-1: 1.0 s, 9 records" in err, err


# -- replay of a slice -------------------------------------------------------------------------

def test_a_take_folder_replays_as_a_recording(tmp_path: Path) -> None:
    run(performance, tmp_path)
    take = tmp_path / "perf-1" / "takes" / "01-Verse-1"
    recording = load_recording(take)
    assert recording.slice is not None and recording.slice["reason"] == "take"
    summary = replay_fast(recording, fit_config(recording, None), tmp_path / "again", str(take))
    assert summary["notes_heard"] == 2 and summary["notes_played"] == 2  # 62, 64: a fifth up
    _, replayed = read_log(tmp_path / "again" / LOG_NAME)
    _, original = read_log(take / LOG_NAME)
    assert heard(replayed) == heard(original)


def test_a_slice_is_never_replayed_with_its_recorded_model_answers(tmp_path: Path) -> None:
    save_random_checkpoint(tmp_path / "m.pt")
    cfg = config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"outputs": ["synth"], "mode": "call-response"},
        "model": {"checkpoint": str(tmp_path / "m.pt")}})
    answers = [{"t": 1, "k": "model", "what": "answer", "why": "model", "asked": 0,
                "notes": None}]
    whole = Recording(cfg, [], ["keys"], None, answers)
    sliced = Recording(cfg, [], ["keys"], None, answers,
                       {"of": "x", "from_ns": 0, "to_ns": 1, "reason": "take", "name": None})
    nothing = cast(Any, None)  # these factories need neither scheduler nor log
    whole_model = replay_model(whole, cfg)
    sliced_model = replay_model(sliced, cfg)
    assert whole_model is not None and sliced_model is not None
    assert isinstance(whole_model(nothing, nothing), RecordedModel)
    assert isinstance(sliced_model(nothing, nothing), InlineModel)


# -- the MIDI file of any slice ----------------------------------------------------------------

def test_export_releases_notes_and_pedals_left_on_and_keeps_stray_note_offs(
        tmp_path: Path) -> None:
    header = {"config": {"players": [{"name": "keys"}]}}
    records = [{"t": 1 * S, "k": "in", "player": "keys", "data": "803c00"},  # begun before
               {"t": 1 * S, "k": "in", "player": "keys", "data": "b0407f"},  # pedal down
               {"t": 2 * S, "k": "in", "player": "keys", "data": "903e50"},
               {"t": 2 * S, "k": "in", "player": "keys", "data": "903e50"},  # struck twice
               {"t": 2 * S, "k": "ctl", "what": "record", "action": "mark", "label": "ünï 日"}]
    smf.export(header, records, tmp_path / "x.mid", start_ns=0, end_ns=4 * S)
    mid = mido.MidiFile(tmp_path / "x.mid")
    assert markers(mid) == ["ünï ?"]  # a file holds Latin-1 text only
    keys = [(m.type, getattr(m, "note", None), round(mido.tick2second(
        t, mid.ticks_per_beat, smf.TEMPO_US), 3)) for m, t in _absolute(mid.tracks[1])]
    assert keys == [("note_off", 60, 1.0), ("control_change", None, 1.0),
                    ("note_on", 62, 2.0), ("note_on", 62, 2.0),
                    ("note_off", 62, 4.0), ("note_off", 62, 4.0), ("control_change", None, 4.0)]
    assert [m.value for m in mid.tracks[1] if m.type == "control_change"] == [127, 0]


def _absolute(track: mido.MidiTrack) -> list[tuple[mido.Message, int]]:
    tick, out = 0, []
    for m in track:
        tick += m.time
        if not m.is_meta:
            out.append((m, tick))
    return out
