"""Write a recording's report folder: index.html and its pictures, side by side.

The pictures are PNG files next to the page, referred to by relative paths (not inlined as data
URIs): the page stays small and readable as text, each picture can be opened, copied or sent on
its own, the trajectory picture is a file the spatial code writes anyway, and the folder can be
moved or served as it is.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from agent.errors import OutputError, RecordingError, StageAgentError
from agent.record.evaluate import evaluate_log
from agent.record.log import read_log
from agent.record.session import log_path
from agent.record.summary import summarise
from agent.report.data import ReportData, recorded_at, report_data
from agent.report.figures import draw_latencies, draw_piano_roll, draw_timeline
from agent.report.page import Picture, render_page

REPORT_DIR = "report"  # under the recording folder, by default
PAGE_NAME = "index.html"
PIANO_ROLL, TIMELINE, LATENCIES = "piano_roll.png", "timeline.png", "latencies.png"
MIDI_SUFFIXES = (".mid", ".midi", ".smf")


def log_of(recording: Path) -> Path:
    """A recording folder or its log.jsonl -> the log (a plain MIDI file has none)."""
    path = log_path(recording)
    if path.suffix.lower() in MIDI_SUFFIXES:
        raise RecordingError(f"{path}: a MIDI file has no log to report on; replay it first "
                             "(stage-agent replay) and report on the replay's folder")
    if not path.exists():  # anything else is read_log's to refuse (a FIFO, a device)
        raise RecordingError(f"{path}: no such recording")
    return path


def write_report(recording: Path, out_dir: Path | None = None) -> Path:
    """Draw the pictures and write the page; returns the page's path."""
    log = log_of(recording)
    header, records = read_log(log)  # checked: every field the figures read is there
    data = report_data(header, records)
    summary = summarise(header, records)
    evaluation = evaluate_log(header, records)
    out = out_dir if out_dir is not None else log.parent / REPORT_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write(out, log, header, records, data, summary, evaluation)
    except OSError as e:  # a read-only folder, a full disk
        raise OutputError(f"{out}: cannot write the report: {e}") from None


def _write(out: Path, log: Path, header: dict[str, Any], records: list[dict[str, Any]],
           data: ReportData, summary: dict[str, Any], evaluation: dict[str, Any]) -> Path:
    name = str(summary["performance"])
    pictures = [
        png_picture(draw_piano_roll(data, out / PIANO_ROLL, f"{name}: who played what"),
                    roll_alt(data, name),
                    "Every note over time, pitch upward: each player in a colour of their own, the "
                    "agent's notes outlined in black (the legend names them). Dotted lines: "
                    "markers and take starts and stops."),
        png_picture(draw_timeline(data, out / TIMELINE, f"{name}: what the agent heard and did"),
                    f"Timeline of {name}: tempo, key and chord, section, and the agent's mode "
                    f"with {len(data.timeline.decisions)} decisions",
                    "The tempo the agent plays to (tracked from the players' onsets, or a MIDI "
                    "clock), the key and chord it heard, the piece's section, and the agent's mode "
                    "with its decisions: answers and other responses (triangles), solos (stars), "
                    "comping on a beat (bars), yielding to a player coming in (crosses)."),
        png_picture(draw_latencies(data.latencies, out / LATENCIES,
                                   header.get("clock") == "manual"),
                    "Histograms of reaction latency, scheduler lateness and model wait, with p50 "
                    "and p99 marked",
                    "Reaction: from what the agent reacted to (the end of a call, a heard note) to "
                    "its note. Lateness: when each message left minus when it was due. Model wait: "
                    "from a request to the model's answer, by whether it came in time. p50 solid, "
                    "p99 dashed. In a replay the clock is the recording's, so lateness and model "
                    "wait are zero there; reaction latency is the musical delay."),
    ]
    missing = []
    trajectories = _trajectories(log, header, records, out)
    if isinstance(trajectories, Path):
        pictures.append(png_picture(
            trajectories, f"The agent's voices on the speaker rig over {name}",
            "The agent's voices on the rig: their paths seen from above (front is up, speakers "
            "as squares) and their elevation over time."))
    elif trajectories is not None:
        missing.append(f"The voices' trajectories could not be drawn: {trajectories}")
    page = out / PAGE_NAME
    page.write_text(render_page(f"{name}: rehearsal report", _meta(log, header, summary),
                                summary, evaluation, pictures, missing), encoding="utf-8")
    return page


def _trajectories(log: Path, header: dict[str, Any], records: list[dict[str, Any]],
                  out: Path) -> Path | str | None:
    """The spatial picture (agent.spatial.runtime.picture) for pieces with a speaker layout;
    None without one; why not, as text, when it cannot be drawn (e.g. the layout file moved)."""
    if not header["config"].get("spatial", {}).get("layout"):
        return None
    from agent.record.replay import load_recording  # the recorded config, as a replay has it
    from agent.spatial.runtime import picture

    try:
        config = load_recording(log).config
        assert config is not None  # a log always has one
        return picture(config, records, out)
    except StageAgentError as e:
        return str(e)


def _meta(log: Path, header: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    folder = log.parent.name
    when = recorded_at(folder)
    if when is None:
        stamp = dt.datetime.fromtimestamp(log.stat().st_mtime, dt.UTC)
        when = f"log last written {stamp:%Y-%m-%d %H:%M:%S} UTC"
    lines = [f"recorded {when}; recording {folder}/{log.name}; {summary['seconds']:.1f} s"]
    if header.get("replay_of"):
        lines.append(f"a replay of {header['replay_of']} (clock {header.get('clock', '?')})")
    piece = header.get("slice")
    if isinstance(piece, dict):
        lines.append(f"a {piece.get('reason', 'slice')} ({piece.get('name', '')}) of "
                     f"{piece.get('of', '?')}")
    if header.get("model"):
        lines.append(f"model {header['model'].get('path')}")
    return lines


def roll_alt(data: ReportData, name: str) -> str:
    players = [p for p in data.parts if not p.is_agent]
    agent = sum(len(p.notes) for p in data.parts if p.is_agent)
    heard = ", ".join(f"{p.name} {len(p.notes)}" for p in players)
    return (f"Piano roll of {name} over {data.seconds:.1f} s: player notes ({heard}) and "
            f"{agent} agent notes")


def png_picture(path: Path, alt: str, caption: str) -> Picture:
    width, height = _png_size(path)
    return Picture(path.name, width, height, alt, caption)


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (bytes 16-24), for the page's layout."""
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")

