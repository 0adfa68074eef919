"""`stage-agent report`: the page's data from a small hand-made log (exact values), the page's
escaping, the folder it writes, and the command's errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.errors import RecordingError
from agent.record.log import FORMAT, VERSION
from agent.record.summary import summarise
from agent.report.build import LATENCIES, PAGE_NAME, PIANO_ROLL, TIMELINE, write_report
from agent.report.data import (
    Moment,
    Segment,
    Span,
    TempoPoint,
    note_spans,
    p50_p99,
    recorded_at,
    report_data,
    segments,
)
from agent.report.page import render_page

T0 = 1_000_000_000
MS = 1_000_000
OUT, SIDE = "virtual:out", "virtual:side"
PLAYER = 'bass <b>&"'  # a name is user input: the page must show it, not run it


def at(ms: int) -> int:
    return T0 + ms * MS


HEADER: dict[str, Any] = {
    "format": FORMAT, "version": VERSION, "seed": 1, "clock": "manual",
    "config": {
        "performance": {"name": "tiny", "seed": 1, "beats_per_bar": 4},
        "players": [{"name": "melody"}, {"name": PLAYER}],
        "agent": {"mode": "respond-old", "outputs": [OUT, SIDE], "channel": 3},
        "sections": [{"name": "A", "mode": "call-response"}, {"name": "B", "mode": ""}],
        "model": {"checkpoint": ""},
    },
}
RECORDS: list[dict[str, Any]] = [
    {"t": at(0), "k": "in", "player": "melody", "data": "903c50"},
    {"t": at(250), "k": "in", "player": PLAYER, "data": "913046"},  # never released
    {"t": at(500), "k": "in", "player": "melody", "data": "803c00"},
    {"t": at(500), "k": "state", "what": "tempo", "bpm": 120.0, "confidence": 0.5,
     "source": "onsets"},
    {"t": at(500), "k": "state", "what": "key", "key": None, "chord": "C"},
    {"t": at(700), "k": "state", "what": "key", "key": "C major", "chord": "C"},
    {"t": at(900), "k": "tempo", "bpm": 118.5},
    {"t": at(1000), "k": "model", "what": "request", "notes": 2},
    {"t": at(1003), "k": "model", "what": "answer", "why": "model", "asked": at(1000),
     "notes": []},
    {"t": at(1050), "k": "model", "what": "answer", "why": "late", "asked": at(1000),
     "notes": None},
    {"t": at(1050), "k": "decision", "what": "answer", "plan": [[at(1100), 72, 90, 500 * MS]]},
    {"t": at(1102), "k": "emit", "deadline": at(1100), "port": OUT, "data": "92485a",
     "why": "planned", "ok": True, "cause": at(600)},
    {"t": at(1105), "k": "emit", "deadline": at(1100), "port": SIDE, "data": "92485a",
     "why": "planned", "ok": True, "cause": at(600)},
    {"t": at(1200), "k": "ctl", "what": "record", "action": "mark", "label": "the <drop>"},
    {"t": at(1500), "k": "state", "what": "section", "name": "B", "index": 1, "bar": 0},
    {"t": at(1500), "k": "state", "what": "mode", "mode": "accompany", "section": "B"},
    {"t": at(1600), "k": "emit", "deadline": at(1600), "port": OUT, "data": "824800",
     "why": "planned", "ok": True},
    {"t": at(1700), "k": "decision", "what": "comp", "chord": "C", "plan": []},
    {"t": at(1800), "k": "state", "what": "mode", "mode": "accompany", "section": "B"},
    {"t": at(2000), "k": "ctl", "what": "stop"},
]


def write_log(folder: Path, header: dict[str, Any] = HEADER,
              records: list[dict[str, Any]] = RECORDS) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps(header), *(json.dumps(r) for r in records)]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_the_piano_roll_has_each_player_then_the_agent_on_its_first_port() -> None:
    data = report_data(HEADER, RECORDS)
    assert data.t0_ns == T0 and data.seconds == 2.0
    assert [(p.name, p.is_agent) for p in data.parts] == [
        ("melody", False), (PLAYER, False), ("agent", True)]
    melody, bass, agent = (p.notes for p in data.parts)
    assert melody == (Span(0.0, 60, 80, 0.5),)
    assert bass == (Span(0.25, 48, 70, 1.75),)  # still held at the end: lasts until then
    assert agent == (Span(1.102, 72, 90, 0.498),)  # its note on the side port is left out


def test_latencies_are_the_constructed_ones_and_match_the_summary() -> None:
    lat = report_data(HEADER, RECORDS).latencies
    assert lat.reaction_ms == (502.0, 505.0)  # emit t - cause, note-ons on every port
    assert lat.lateness_ms == (2.0, 5.0, 0.0)  # emit t - deadline, every message
    assert dict(lat.model_wait_ms) == {"late": (50.0,), "model": (3.0,)}
    summary = summarise(HEADER, RECORDS)
    p50, p99 = p50_p99(lat.reaction_ms)  # type: ignore[misc]
    assert (p50, p99) == (summary["reaction_ms"]["p50"], summary["reaction_ms"]["p99"])
    assert p50_p99([]) is None


def test_the_timeline_starts_in_the_first_section_and_its_mode() -> None:
    data = report_data(HEADER, RECORDS)
    tl = data.timeline
    assert tl.tempo == (TempoPoint(0.5, 120.0, "onsets"),)
    assert tl.clock_tempo == (TempoPoint(0.9, 118.5, "midi-clock"),)
    assert tl.keys == (Segment(0.7, 2.0, "C major"),)  # unknown (None) before 0.7 s
    assert tl.chords == (Segment(0.5, 2.0, "C"),)
    assert tl.sections == (Segment(0.0, 1.5, "A"), Segment(1.5, 2.0, "B"))
    # Section A names its mode, which wins over [agent] mode; a repeated mode changes nothing.
    assert tl.modes == (Segment(0.0, 1.5, "call-response"), Segment(1.5, 2.0, "accompany"))
    assert tl.decisions == (Moment(1.05, "answer"), Moment(1.7, "comp"))
    assert data.markers == (Moment(1.2, "the <drop>"),)


def test_segments_join_repeats_skip_unknowns_and_drop_empty_stretches() -> None:
    changes = [(0.0, "x"), (1.0, "x"), (2.0, None), (3.0, "y"), (3.0, "z"), (5.0, "z")]
    assert segments(changes, "w", 6.0) == (
        Segment(0.0, 2.0, "x"), Segment(3.0, 6.0, "z"))
    assert segments([], None, 6.0) == ()
    assert segments([], "only", 0.0) == ()


def test_note_spans_release_on_off_retrigger_and_all_notes_off() -> None:
    s = 1_000_000_000
    messages = [(0, bytes.fromhex("903c40")), (1 * s, bytes.fromhex("903c50")),  # re-trigger
                (2 * s, bytes.fromhex("903c00")),  # velocity 0: a note-off
                (3 * s, bytes.fromhex("903e40")), (3 * s, bytes.fromhex("914040")),
                (4 * s, bytes.fromhex("b07b00")),  # all notes off on channel 1 only
                (5 * s, bytes.fromhex("f8"))]  # not a note: ignored
    assert note_spans(messages, 0, 6 * s) == (
        Span(0.0, 60, 0x40, 1.0), Span(1.0, 60, 0x50, 1.0),
        Span(3.0, 62, 0x40, 1.0), Span(3.0, 64, 0x40, 3.0))


def test_the_date_comes_from_the_recording_folders_name() -> None:
    assert recorded_at("demo-20261122-020711-123456-replay") == "2026-11-22 02:07:11 UTC"
    assert recorded_at("demo-20261122-020711-123456") == "2026-11-22 02:07:11 UTC"
    assert recorded_at("my-rehearsal") is None


def test_every_text_from_the_log_is_escaped() -> None:
    summary = summarise(HEADER, RECORDS)
    html = render_page("<tiny>", ["by <script>x</script>"], summary,
                       {"player_notes": 0, "agent_notes": 0, "answers": 0, "comp_notes": 0,
                        "response_delay_ms": {"n": 0, "p50": None, "p90": None},
                        "response_delay_beats": {"n": 0, "p50": None, "p90": None},
                        "responses_within_a_beat": None, "density_correlation": None,
                        "copied_from_call_notes": 0, "in_key": None, "in_chord": None,
                        "comp_in_key": None, "comp_in_chord": None,
                        "grid_deviation_ms": {"n": 0, "p50": None, "p90": None}}, [])
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<title>&lt;tiny&gt;</title>" in html
    assert "<td>the &lt;drop&gt;</td>" in html  # the marker's label
    assert "http" not in html  # nothing fetched from anywhere


def test_the_report_folder_holds_the_page_and_its_pictures(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    rec = write_log(tmp_path / "tiny-20261122-020711-123456")
    assert main(["report", str(rec)]) == 0
    page = rec / "report" / PAGE_NAME
    assert capsys.readouterr().out.strip() == str(page)
    html = page.read_text()
    for name in (PIANO_ROLL, TIMELINE, LATENCIES):
        assert f'src="{name}"' in html
        assert (page.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trajectories" not in html  # no [spatial] layout: no picture of the voices
    assert "recorded 2026-11-22 02:07:11 UTC" in html
    assert "bass &lt;b&gt;&amp;&quot;" in html and PLAYER not in html  # in the alt text
    assert "<td>the &lt;drop&gt;</td>" in html
    # --out elsewhere; the log file itself is a recording too.
    other = write_report(rec / "log.jsonl", tmp_path / "elsewhere")
    assert other == tmp_path / "elsewhere" / PAGE_NAME and other.is_file()


def test_bad_recordings_exit_2_naming_what_is_wrong(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}" in capsys.readouterr().err
    midi_file = tmp_path / "band.mid"
    midi_file.write_bytes(b"MThd")
    assert main(["report", str(midi_file)]) == 2
    assert "a MIDI file has no log" in capsys.readouterr().err
    no_config = write_log(tmp_path / "broken", {"format": FORMAT, "version": VERSION})
    with pytest.raises(RecordingError, match="line 1: the header has no config"):
        write_report(no_config)
    assert not (no_config / "report").exists()  # nothing written for a log it cannot read
