"""What the report shows, from a log's header and records alone (pure: same log, same data).

Times are seconds from the first record (as the summary's markers are). Notes are paired as a
listener hears them: a note-on sounds until its note-off on the same channel and pitch, a repeat
of the same note-on, an all-notes-off/all-sound-off on its channel, or the end of the log. The
players' sustain pedal is not drawn (a note ends at its key's release). The agent's notes are
those it sent to its first output port (every output gets the same notes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent import midi
from agent.clock import NS_PER_MS, NS_PER_S
from agent.record.smf import marker_text

CC_ALL_OFF = (midi.CC_ALL_SOUND_OFF, midi.CC_ALL_NOTES_OFF)
# Decisions drawn on the modes lane (sections have their own lane; "wait" is not an action).
DECISIONS = ("answer", "continue", "mirror", "solo", "comp", "yield")
# A recording folder's name ends in its UTC start time (agent.record.session.new_recording_dir).
FOLDER_STAMP = re.compile(r"-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-\d{6}(-replay)?$")


@dataclass(frozen=True)
class Span:
    """A sounding note."""

    start_s: float
    pitch: int
    velocity: int
    duration_s: float


@dataclass(frozen=True)
class Part:
    """A player's notes, or the agent's (`is_agent`): a name can be anything a config allows."""

    name: str
    is_agent: bool
    notes: tuple[Span, ...]


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one value (a key, a section, a mode)."""

    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class Moment:
    t_s: float
    label: str


@dataclass(frozen=True)
class TempoPoint:
    t_s: float
    bpm: float
    source: str  # "onsets", "clock" (state records), "midi-clock" (raw `tempo` records)


@dataclass(frozen=True)
class Timeline:
    tempo: tuple[TempoPoint, ...]  # the beat the agent plays to (state tempo), at each change
    clock_tempo: tuple[TempoPoint, ...]  # the MIDI clock's estimate (tempo records)
    keys: tuple[Segment, ...]
    chords: tuple[Segment, ...]
    sections: tuple[Segment, ...]
    modes: tuple[Segment, ...]
    decisions: tuple[Moment, ...]  # label: the decision's `what` (DECISIONS)


@dataclass(frozen=True)
class Latencies:
    """Milliseconds. reaction: an agent note-on with a `cause`, minus that cause; lateness: every
    emit's time minus its deadline; model wait: each model answer's time minus its request's,
    by the answer's `why` ("model" in time, else why the Markov memory answered)."""

    reaction_ms: tuple[float, ...]
    lateness_ms: tuple[float, ...]
    model_wait_ms: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class ReportData:
    t0_ns: int
    seconds: float
    parts: tuple[Part, ...]  # the players in the config's order, then the agent
    timeline: Timeline
    latencies: Latencies
    markers: tuple[Moment, ...]  # `record` marks and take starts/stops (as performance.mid has)


def report_data(header: dict[str, Any], records: list[dict[str, Any]]) -> ReportData:
    t0 = records[0]["t"] if records else 0
    end = records[-1]["t"] if records else 0
    return ReportData(
        t0_ns=t0, seconds=(end - t0) / NS_PER_S,
        parts=piano_roll(header, records, t0),
        timeline=timeline(header, records, t0),
        latencies=latencies(records),
        markers=tuple(Moment(_s(r["t"], t0), text) for r in records
                      if r["k"] == "ctl" and r.get("what") == "record"
                      and (text := marker_text(r)) is not None))


def note_spans(messages: Iterable[tuple[int, bytes]], t0_ns: int, end_ns: int) -> tuple[Span, ...]:
    """One voice's messages (time ns, bytes) in time order -> its notes, by start time."""
    sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, pitch) -> (start, velocity)
    out: list[Span] = []

    def close(key: tuple[int, int], t: int) -> None:
        start, velocity = sounding.pop(key)
        out.append(Span(_s(start, t0_ns), key[1], velocity, (t - start) / NS_PER_S))

    for t, data in messages:
        channel = midi.channel_of(data)
        if channel is None or len(data) < 3:
            continue
        key = (channel, data[1])
        if midi.is_note_on(data):
            if key in sounding:  # a re-trigger ends the note before it
                close(key, t)
            sounding[key] = (t, data[2])
        elif midi.is_note_off(data):
            if key in sounding:
                close(key, t)
        elif data[0] & 0xF0 == midi.CONTROL_CHANGE and data[1] in CC_ALL_OFF:
            for held in [k for k in sounding if k[0] == channel]:
                close(held, t)
    for key in list(sounding):
        close(key, max(end_ns, sounding[key][0]))
    return tuple(sorted(out, key=lambda n: (n.start_s, n.pitch)))


def piano_roll(header: dict[str, Any], records: list[dict[str, Any]], t0_ns: int) -> tuple[
        Part, ...]:
    config = header["config"]
    first_port = config["agent"]["outputs"][0]
    heard: dict[str, list[tuple[int, bytes]]] = {p["name"]: [] for p in config["players"]}
    played: list[tuple[int, bytes]] = []
    for r in records:
        if r["k"] == "in":
            heard.setdefault(r["player"], []).append((r["t"], bytes.fromhex(r["data"])))
        elif r["k"] == "emit" and r["port"] == first_port:
            played.append((r["t"], bytes.fromhex(r["data"])))
    end = records[-1]["t"] if records else t0_ns
    return (*(Part(name, False, note_spans(messages, t0_ns, end))
              for name, messages in heard.items()),
            Part("agent", True, note_spans(played, t0_ns, end)))


def timeline(header: dict[str, Any], records: list[dict[str, Any]], t0_ns: int) -> Timeline:
    config = header["config"]
    sections = config.get("sections") or []
    # At the start the agent is in the first section, with its mode if it names one
    # (agent.pipeline.Agent.__init__); later changes are in the log as state records.
    first_section = sections[0]["name"] if sections else None
    first_mode = (sections[0].get("mode") if sections else None) or config["agent"]["mode"]
    end = _s(records[-1]["t"], t0_ns) if records else 0.0
    state: dict[str, list[tuple[float, str | None]]] = {
        "key": [], "chord": [], "section": [], "mode": []}
    tempo, clock_tempo, decisions = [], [], []
    for r in records:
        t = _s(r["t"], t0_ns)
        if r["k"] == "state":
            what = r.get("what")
            if what == "tempo" and r.get("bpm") is not None:
                tempo.append(TempoPoint(t, float(r["bpm"]), str(r.get("source", "?"))))
            elif what == "key":
                state["key"].append((t, r.get("key")))
                state["chord"].append((t, r.get("chord")))
            elif what == "section":
                state["section"].append((t, r.get("name")))
            elif what == "mode":
                state["mode"].append((t, r.get("mode")))
        elif r["k"] == "tempo":
            clock_tempo.append(TempoPoint(t, float(r["bpm"]), "midi-clock"))
        elif r["k"] == "decision" and r.get("what") in DECISIONS:
            decisions.append(Moment(t, r["what"]))
    return Timeline(
        tempo=tuple(tempo), clock_tempo=tuple(clock_tempo),
        keys=segments(state["key"], None, end), chords=segments(state["chord"], None, end),
        sections=segments(state["section"], first_section, end),
        modes=segments(state["mode"], first_mode, end), decisions=tuple(decisions))


def segments(changes: Iterable[tuple[float, str | None]], initial: str | None,
             end_s: float) -> tuple[Segment, ...]:
    """Changes of a value (time, new value; None = unknown) -> the stretches it held a value.
    A repeated value continues its stretch; a stretch of no length is dropped."""
    out: list[Segment] = []
    label, start = initial, 0.0
    for t, new in changes:
        if new == label:
            continue
        if label is not None and t > start:
            out.append(Segment(start, t, label))
        label, start = new, t
    if label is not None and end_s > start:
        out.append(Segment(start, end_s, label))
    return tuple(out)


def latencies(records: list[dict[str, Any]]) -> Latencies:
    reaction, lateness = [], []
    model_wait: dict[str, list[float]] = {}
    for r in records:
        if r["k"] == "emit":
            lateness.append((r["t"] - r["deadline"]) / NS_PER_MS)
            if "cause" in r and midi.is_note_on(bytes.fromhex(r["data"])):
                reaction.append((r["t"] - r["cause"]) / NS_PER_MS)
        elif r["k"] == "model" and r.get("what") == "answer":
            model_wait.setdefault(str(r["why"]), []).append((r["t"] - r["asked"]) / NS_PER_MS)
    return Latencies(tuple(reaction), tuple(lateness),
                     {why: tuple(v) for why, v in sorted(model_wait.items())})


def p50_p99(values: Iterable[float]) -> tuple[float, float] | None:
    """The median and 99th percentile (numpy's linear interpolation, as the summary's)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if not arr.size:
        return None
    p50, p99 = np.percentile(arr, [50, 99])
    return float(p50), float(p99)


def recorded_at(folder_name: str) -> str | None:
    """The UTC start time a recording folder's name carries ("2026-11-22 02:07:31 UTC")."""
    m = FOLDER_STAMP.search(folder_name)
    if m is None:
        return None
    y, mo, d, h, mi, s = m.groups()[:6]
    return f"{y}-{mo}-{d} {h}:{mi}:{s} UTC"


def _s(t_ns: int, t0_ns: int) -> float:
    return (t_ns - t0_ns) / NS_PER_S
