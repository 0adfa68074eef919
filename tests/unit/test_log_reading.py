"""Reading a log (agent.record.log.read_log and agent.record.schema), fuzzed with hypothesis: a
small real log file with one record replaced by anything (any JSON; a real record with a key
dropped, or one of its values replaced by anything, or any time at all) is either refused with a
RecordingError naming the file and the line, or taken by every reader of logs without an
exception: the summary, the report's data, evaluate (and the judge), the MIDI export, the scrub
timeline and window, the spatial paths, and a fast replay of it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import config as config_mod
from agent.errors import RecordingError
from agent.files import FileRefused, FileTooLarge, lines, open_regular, read_regular, sha256_file
from agent.record import smf
from agent.record.evaluate import evaluate_log
from agent.record.log import FORMAT, VERSION, read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.schema import MAX_TIME_NS
from agent.record.scrub import select_window, timeline_of
from agent.record.session import LOG_NAME
from agent.record.summary import summarise
from agent.report.data import report_data
from agent.spatial.engine import SpatialEngine, trajectories

S = 1_000_000_000
CONFIG = json.loads(json.dumps(config_mod.from_dict({
    "performance": {"name": "fuzz", "seed": 1},
    "players": [{"name": "a", "port": "virtual:a"}, {"name": "b", "port": "virtual:b"}],
    "agent": {"mode": "call-response", "outputs": ["out", "side"]},
    "sections": [{"name": "A"}, {"name": "B", "mode": "solo"}],
}).to_dict()))
HEADER = {"format": FORMAT, "version": VERSION, "config": CONFIG, "seed": 1, "clock": "manual"}
RECORDS: list[dict[str, Any]] = [
    {"t": 1 * S, "k": "in", "player": "a", "data": "903c50"},
    {"t": S + 5, "k": "in", "player": "b", "data": "913046"},
    {"t": 2 * S, "k": "state", "what": "tempo", "bpm": 120.0, "source": "onsets"},
    {"t": 2 * S, "k": "tempo", "bpm": 118.5},
    {"t": 2 * S, "k": "state", "what": "key", "key": "C major", "chord": "C"},
    {"t": 2 * S, "k": "state", "what": "section", "name": "A", "index": 0},
    {"t": 2 * S, "k": "state", "what": "mode", "mode": "call-response"},
    {"t": 2 * S, "k": "state", "what": "controls", "density": 1.0, "styles": {}, "mute": False},
    {"t": 3 * S, "k": "model", "what": "request", "notes": 2},
    {"t": 3 * S, "k": "model", "what": "answer", "why": "model", "asked": 3 * S,
     "notes": [[72, 0, 90, S // 2]]},
    {"t": 3 * S, "k": "decision", "what": "answer", "caller": "a",
     "plan": [[3 * S + 100, 72, 90, S // 2]]},
    {"t": 3 * S + 100, "k": "emit", "deadline": 3 * S + 100, "port": "out", "data": "92485a",
     "why": "planned", "ok": True, "cause": S},
    {"t": 3 * S + 101, "k": "emit", "deadline": 3 * S + 100, "port": "side", "data": "92485a",
     "why": "planned", "ok": True},
    {"t": 4 * S, "k": "ctl", "what": "record", "action": "mark", "label": "here"},
    {"t": 4 * S, "k": "ctl", "what": "mode", "mode": "solo"},
    {"t": 4 * S, "k": "ctl", "what": "cue", "section": "B"},
    {"t": 4 * S, "k": "ctl", "what": "port-lost", "player": "b"},
    {"t": 4 * S, "k": "note", "what": "take-saved", "folder": "takes/01-take", "seconds": 1.5,
     "records": 3},
    {"t": 5 * S, "k": "in", "player": "a", "data": "803c00"},
    {"t": 6 * S, "k": "ctl", "what": "stop"},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=8)


@st.composite
def spoilt(draw: st.DrawFn) -> Any:
    """Anything at all, or a real record with one thing changed."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    record = dict(draw(st.sampled_from(RECORDS)))
    key = draw(st.sampled_from(sorted(record)))
    change = draw(st.integers(0, 3))
    if change == 0:
        del record[key]
    elif change == 1:
        record["t"] = draw(st.integers(-1, MAX_TIME_NS + 1) | st.integers(0, 10**13))
    else:
        record[key] = draw(json_values)
    return record


def read_everything(path: Path) -> None:
    """Every reader of logs, on the log at `path` (checked first by read_log)."""
    header, records = read_log(path)
    summarise(header, records)
    report_data(header, records)
    evaluate_log(header, records)
    smf.export(header, records, path.parent / "out.mid")
    engine = SpatialEngine(floor_z=-1.0, players={}, style="orbit", section_styles={}, seed=1,
                           output=header["config"]["agent"]["outputs"][0])
    trajectories(engine, records, 50.0)
    recording = load_recording(path)
    line = timeline_of(records, recording, str(path))
    select_window(recording.inputs, line.origin_ns, line.end_ns)
    replay_fast(recording, fit_config(recording, None), path.parent / "replayed", str(path))


def test_the_real_records_read_and_replay() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LOG_NAME
        path.write_text("\n".join(json.dumps(r) for r in [HEADER, *RECORDS]) + "\n")
        read_everything(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RECORDS) - 1), spoilt())
def test_a_spoilt_record_is_refused_by_line_or_read_by_every_reader(at: int, bad: Any) -> None:
    records: list[Any] = [*RECORDS]
    records[at] = bad
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LOG_NAME
        path.write_text("\n".join(json.dumps(r) for r in [HEADER, *records]) + "\n")
        try:
            read_log(path)
        except RecordingError as e:
            assert str(e).startswith(f"{path}: line {at + 2}: "), e
            return
        read_everything(path)


@pytest.mark.parametrize(("text", "refused"), [
    (b"[1]\n", "line 1: not a stage-agent log (format 'stage-agent-log')"),
    (b'{"format": "stage-agent-log", "version": 1}\n', "line 1: the header has no config"),
    (json.dumps({**HEADER, "config": {**CONFIG, "players": [{"name": 3}]}}).encode() + b"\n",
     "line 1: config.players[0].'name': not a string"),
    (json.dumps({**HEADER, "model": {"path": 1, "sha256": None}}).encode() + b"\n",
     "line 1: model.'path': not a string"),
    (b"", "empty file"),
])
def test_a_bad_header_is_refused_on_line_1(text: bytes, refused: str, tmp_path: Path) -> None:
    (tmp_path / LOG_NAME).write_bytes(text)
    with pytest.raises(RecordingError) as e:
        read_log(tmp_path / LOG_NAME)
    assert str(e.value) == f"{tmp_path / LOG_NAME}: {refused}"


def test_a_torn_last_line_is_dropped_but_not_a_torn_middle(tmp_path: Path) -> None:
    """A process killed mid-write leaves its last line without a newline, cut anywhere (also
    inside a UTF-8 character): that line is dropped. The same line anywhere else is an error."""
    whole = "\n".join(json.dumps(r) for r in [HEADER, *RECORDS]).encode() + b"\n"
    torn = json.dumps({"t": 7 * S, "k": "note", "text": "café"}, ensure_ascii=False).encode()[:-3]
    (tmp_path / LOG_NAME).write_bytes(whole + torn)
    assert read_log(tmp_path / LOG_NAME)[1] == RECORDS
    (tmp_path / LOG_NAME).write_bytes(whole + torn + b"\n")
    with pytest.raises(RecordingError, match=f"line {len(RECORDS) + 2}: not UTF-8 text"):
        read_log(tmp_path / LOG_NAME)


def test_lines_are_read_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345\n123456\n1234567")
    with open_regular(path) as f:
        got = []
        with pytest.raises(FileRefused, match="line 3: longer than 6 bytes"):
            for line in lines(f, 6):
                got.append(line)
    assert got == [(1, b"12345", True), (2, b"123456", True)]


def test_a_file_too_large_is_refused_as_too_large_and_a_fifo_as_not_regular(
        tmp_path: Path) -> None:
    """Callers tell the two apart by the exception's class (a corpus import says the size in
    its own words), never by its message."""
    big = tmp_path / "big.mid"
    big.write_bytes(b"\0" * 100)
    with pytest.raises(FileTooLarge, match="100 bytes, more than the 64 bytes allowed"):
        read_regular(big, 64)
    with pytest.raises(FileTooLarge):
        sha256_file(big, 64)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match="not a regular file") as refused:
        read_regular(fifo, 64)
    assert not isinstance(refused.value, FileTooLarge)
