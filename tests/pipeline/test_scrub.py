"""Loop, scrub and strict replay on the shipped demo, through the command (agent.cli.main)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent import __version__, code_digest, midi
from agent.cli import main
from agent.record.log import read_log
from agent.record.replay import load_recording
from agent.record.scrub import WINDOW, seconds, timeline
from agent.record.session import LOG_NAME
from agent.record.strict import EmitLine

DEMO = Path(__file__).resolve().parents[2] / "performances" / "demo"
Record = dict[str, Any]


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rehearsal replayed once (with its model): a log to scrub and check."""
    out = tmp_path_factory.mktemp("scrub") / "demo"
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--config",
                 str(DEMO / "performance.toml"), "--out", str(out)]) == 0
    return out


def records(out: Path) -> list[Record]:
    return read_log(out / LOG_NAME)[1]


def emits(rs: list[Record]) -> list[Record]:
    return [r for r in rs if r["k"] == "emit"]


def played(out: Path, before_ns: int | None = None) -> list[tuple[int, str, str, str]]:
    """The agent's output (deadline, port, data, why), up to a time if given."""
    return [(r["deadline"], r["port"], r["data"], r["why"]) for r in emits(records(out))
            if before_ns is None or r["deadline"] < before_ns]


def test_strict_replay_of_a_log_matches_every_message(
        demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(demo_log), "--strict", "--out", str(tmp_path / "s")]) == 0
    count = len(emits(records(demo_log)))
    assert count > 300
    assert capsys.readouterr().out.splitlines() == [
        f"{demo_log}: identical: {count} emitted messages matched",
        f"the replay: {tmp_path / 's'}"]


def test_a_log_says_which_version_made_it_and_strict_says_when_another_replays_it(
        demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The header holds the package's version (`stage-agent --version`); a strict replay of a
    log made by another version says so under its verdict: a byte-identical replay depends on
    the code."""
    header = json.loads((demo_log / LOG_NAME).read_text().splitlines()[0])
    assert header["agent_version"] == __version__ != "unknown"
    assert header["agent_code"] == code_digest() and len(code_digest()) == 16
    lines = (demo_log / LOG_NAME).read_text().splitlines()
    for name, changed in (("older", {"agent_version": "0.0.9"}),
                          ("edited", {"agent_code": "0123456789abcdef"})):
        log_dir = tmp_path / name
        log_dir.mkdir()
        (log_dir / LOG_NAME).write_text("\n".join(
            [json.dumps({**header, **changed}), *lines[1:]]) + "\n")
        assert main(["replay", str(log_dir), "--strict", "--out", str(tmp_path / f"s{name}")]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"{log_dir}: identical: ")
        was = {**header, **changed}
        assert out[1] == (f"note: recorded by stage-agent {was['agent_version']} (code "
                          f"{was['agent_code']}), replayed by {__version__} (code "
                          f"{code_digest()}): a difference may come from the code's change")


def test_strict_replay_stops_at_an_edited_message_and_says_where(
        demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "edited"
    edited.mkdir()
    lines = (demo_log / LOG_NAME).read_text().splitlines()
    emit_lines = [n for n, line in enumerate(lines) if '"k":"emit"' in line]
    index = 150
    record = json.loads(lines[emit_lines[index]])
    original = record["data"]
    record["data"] = original[:-2] + f"{int(original[-2:], 16) ^ 1:02x}"  # one data byte
    lines[emit_lines[index]] = json.dumps(record, separators=(",", ":"))
    (edited / LOG_NAME).write_text("\n".join(lines) + "\n")

    assert main(["replay", str(edited), "--strict", "--out", str(tmp_path / "s")]) == 1
    recorded = [EmitLine.of(r) for r in emits(records(demo_log))]
    line = timeline(edited, load_recording(edited))
    assert line.bars is not None
    origin = line.origin_ns
    at = recorded[index].deadline_ns
    assert capsys.readouterr().out.splitlines() == [
        f"{edited}: diverged at emit {index} ({(at - origin) / 1e6:.6f} ms from the "
        f"start, {line.bars.describe(at)})",
        f"  expected {EmitLine.of(record).text(origin)}",
        f"  replayed {recorded[index].text(origin)}",
        "the last matching emits:",
        *[f"  {i} {recorded[i].text(origin)}" for i in range(index - 3, index)],
        f"the replay: {tmp_path / 's'}"]
    # The replay stopped there: nothing after the divergence but the stop's panic.
    again = emits(records(tmp_path / "s"))
    assert [EmitLine.of(r) for r in again[:index + 1]] == recorded[:index + 1]
    assert {r["why"] for r in again[index + 1:]} <= {"stop"}


def test_strict_replay_refuses_what_it_cannot_check(
        demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--strict"]) == 2
    assert capsys.readouterr().err == (
        f"stage-agent: error: {DEMO / 'rehearsal.mid'}: --strict needs a stage-agent log: a MIDI "
        "file has no recorded output to compare with\n")
    take = tmp_path / "take"
    take.mkdir()
    header, *rest = (demo_log / LOG_NAME).read_text().splitlines()
    sliced = {**json.loads(header), "slice": {"of": "demo", "from_ns": 0, "to_ns": 1,
                                              "reason": "take", "name": "take"}}
    (take / LOG_NAME).write_text("\n".join([json.dumps(sliced), *rest]) + "\n")
    assert main(["replay", str(take), "--strict"]) == 2
    assert "--strict cannot check a take (a slice of a performance" in capsys.readouterr().err
    assert main(["replay", str(demo_log), "--strict", "--seed", "3", "--loop", "2"]) == 2
    assert capsys.readouterr().err == (
        "stage-agent: error: --strict replays the whole log with its own config and seed: it "
        "cannot be combined with --seed, --loop\n")
    assert not (tmp_path / "recordings").exists()


def test_a_window_hears_only_its_own_input(demo_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert main(["replay", str(demo_log), "--from", "20", "--to", "30.5", "--out",
                 str(out)]) == 0
    header, rs = read_log(out / LOG_NAME)
    assert header["window"] == {"of": str(demo_log), "from_s": "20", "to_s": "30.5",
                                "bars": None, "beat": None, "passes": 1}
    origin = records(demo_log)[0]["t"]
    start, end = origin + 20 * 10**9, origin + 30_500_000_000
    assert rs[0] == {"t": start, "k": "ctl", "what": WINDOW, "pass": 1, "passes": 1,
                     "from_ns": start, "to_ns": end}
    source = [r for r in records(demo_log) if r["k"] == "in" and start <= r["t"] < end]
    heard = [r for r in rs if r["k"] == "in"]
    ons = [r for r in source if midi.is_note_on(bytes.fromhex(r["data"]))]
    assert ons and [r for r in heard if midi.is_note_on(bytes.fromhex(r["data"]))] == ons
    # Everything heard is the window's own input, or a note-off at its end (a note held there).
    assert all(r in source or (r["t"] == end and midi.is_note_off(bytes.fromhex(r["data"])))
               for r in heard)
    sounding: set[tuple[str, str]] = set()
    for r in heard:  # every note heard starts and ends in the window: nothing hangs
        key = (r["player"], r["data"][1:4])
        if midi.is_note_on(bytes.fromhex(r["data"])):
            sounding.add(key)
        else:
            sounding.remove(key)
    assert not sounding
    # The agent answered the window's calls, and nothing from before it (a call still sounding
    # at the end of the window ends there, with its note-off).
    answers = [r for r in emits(rs) if "cause" in r]
    assert answers and all(start <= r["cause"] <= end for r in answers)
    assert all(r["deadline"] >= start for r in emits(rs))
    # A re-improvisation: the model ran here, it did not give the recorded answers.
    assert any(r["k"] == "model" and r["what"] == "answer" for r in rs)


def test_bars_are_the_window_their_seconds_name(demo_log: Path, tmp_path: Path) -> None:
    line = timeline(demo_log, load_recording(demo_log))
    assert line.bars is not None and line.bars.source == "onsets"
    start, end = line.bars.window(9, 12)
    assert main(["replay", str(demo_log), "--bars", "9-12", "--out", str(tmp_path / "b")]) == 0
    assert main(["replay", str(demo_log), "--from", seconds(start - line.origin_ns), "--to",
                 seconds(end - line.origin_ns), "--out", str(tmp_path / "s")]) == 0
    assert read_log(tmp_path / "b" / LOG_NAME)[0]["window"]["bars"] == [9, 12]
    assert played(tmp_path / "b") == played(tmp_path / "s")
    assert len(played(tmp_path / "b")) > 10
    # The demo's bar 9 begins with the melody's second phrase, on its E5 ("Dormez-vous"): the
    # players take two bars each, then rest two; its bars are 2.4 s long from 0.6 s.
    first = next(r for r in records(tmp_path / "b") if r["k"] == "in")
    assert (first["player"], first["data"][:4]) == ("melody", "904c")
    assert abs(start - line.origin_ns - 8 * 2_400_000_000) < 60_000_000


def test_a_loop_plays_the_window_twice_and_the_agent_goes_on(
        demo_log: Path, tmp_path: Path) -> None:
    assert main(["replay", str(demo_log), "--bars", "9-12", "--out", str(tmp_path / "once")]) == 0
    assert main(["replay", str(demo_log), "--bars", "9-12", "--loop", "2", "--out",
                 str(tmp_path / "loop")]) == 0
    rs = records(tmp_path / "loop")
    markers = [r for r in rs if r["k"] == "ctl" and r["what"] == WINDOW]
    start, end = markers[0]["from_ns"], markers[0]["to_ns"]
    assert [(r["t"], r["pass"], r["passes"]) for r in markers] == [(start, 1, 2), (end, 2, 2)]
    heard = [(r["t"], r["player"], r["data"]) for r in rs if r["k"] == "in"]
    first = [h for h in heard if h[0] < end]
    assert heard == first + [(t + end - start, p, d) for t, p, d in first]
    # The first pass is the window played once (up to its end); the second is answered too, not
    # as the first was: the agent goes on from where it was (its memory, its random choices).
    first_pass = played(tmp_path / "loop", end)
    assert first_pass == played(tmp_path / "once", end)
    second_pass = [(t - (end - start), *rest) for t, *rest in played(tmp_path / "loop")
                   if end <= t < 2 * end - start]
    assert any(why == "planned" for _t, _port, _data, why in second_pass)
    assert second_pass != first_pass


def test_bars_need_a_beat_heard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--bars", "2-3"]) == 2
    assert capsys.readouterr().err == (
        f"stage-agent: error: --bars: {DEMO / 'rehearsal.mid'} is a MIDI file, which holds no "
        "beat the agent heard: replay it, then use --bars on the replay's log, or use "
        "--from/--to\n")


def test_a_window_of_a_run_without_a_model(tmp_path: Path) -> None:
    """Its recorded controls blend no style (`"styles": {}`), which the start state put back
    as a command: the agent refused it with a traceback."""
    text = (DEMO / "performance.toml").read_text()
    text = text[:text.index("[model]")] + text[text.index("[controls]"):]
    config = tmp_path / "performance.toml"
    config.write_text(text.replace('"../../layouts/', f'"{DEMO.parents[1] / "layouts"}/'))
    assert main(["replay", str(DEMO / "rehearsal.mid"), "--config", str(config), "--out",
                 str(tmp_path / "full")]) == 0
    assert main(["replay", str(tmp_path / "full"), "--from", "100", "--to", "120", "--out",
                 str(tmp_path / "w")]) == 0
    start = [r for r in records(tmp_path / "w") if r["k"] == "ctl" and r["what"] == "controls"]
    assert len(start) == 1 and "styles" not in start[0] and start[0]["mode"] == "auto"
