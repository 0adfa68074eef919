"""The short printed summary of a run, computed from its log alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent import midi
from agent.policy.modes import RESPONSES
from agent.stats import Samples


@dataclass(frozen=True)
class Note:
    t_ns: int
    pitch: int
    velocity: int


def notes_of(records: list[dict[str, Any]], first_port: str) -> tuple[list[Note], list[Note]]:
    """(players' note-ons, agent's note-ons on its first port) in time order."""
    players, agent = [], []
    for r in records:
        if r["k"] not in ("in", "emit"):
            continue
        data = bytes.fromhex(r["data"])
        if not midi.is_note_on(data):
            continue
        if r["k"] == "in":
            players.append(Note(r["t"], data[1], data[2]))
        elif r["port"] == first_port:
            agent.append(Note(r["t"], data[1], data[2]))
    return players, agent


# What a mode's reaction latency is measured from (the emit record's `cause`) and to.
REACTS_TO = {"call-response": "end of a call -> first answer note",
             "continue": "end of a call -> first note carrying it on",
             "mirror": "end of a call -> first note of the imitation",
             "harmony": "heard note -> harmony note"}


# The notes agent/record/takes.py writes when a take or capture has been saved (or not).
SLICE_NOTES = ("take-saved", "take-failed", "capture-saved", "capture-failed")


def summarise(header: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    tally = Tally()
    for r in records:
        tally.add(r)
    return tally.summary(header)


class Tally:
    """summarise's figures, gathered record by record: a Session keeps one as a tap on its log,
    so that the end of a run need not read the log back (record/session.py)."""

    def __init__(self) -> None:
        self.heard = self.played = self.undelivered = self.answers = self.restarts = 0
        self.reaction, self.lateness, self.model_wait = Samples(), Samples(), Samples()
        self.model_answers: dict[str, int] = {}
        self.t_first: int | None = None
        self.t_last: int | None = None
        self.markers: list[dict[str, Any]] = []
        self.slices: dict[str, list[dict[str, Any]]] = {"take": [], "capture": []}

    def add(self, r: dict[str, Any], data: bytes | None = None) -> None:
        """`data`: an `in` or `emit` record's message, when the caller decoded it already."""
        t = r["t"]
        if self.t_first is None:
            self.t_first = t
        self.t_last = t
        kind = r["k"]
        if kind == "in":  # (a shed one was played, not heard: io/midi_in.py)
            self.heard += not r.get("shed") and midi.is_note_on(
                bytes.fromhex(r["data"]) if data is None else data)
        elif kind == "emit":
            self.lateness.add(t - r["deadline"])
            self.undelivered += not r["ok"]
            if midi.is_note_on(bytes.fromhex(r["data"]) if data is None else data):
                self.played += 1
                if "cause" in r:
                    self.reaction.add(t - r["cause"])
        elif kind == "decision" and r.get("what") in RESPONSES:
            self.answers += 1
        elif kind == "model" and r.get("what") == "answer":
            self.model_answers[r["why"]] = self.model_answers.get(r["why"], 0) + 1
            if r["why"] == "model":
                self.model_wait.add(t - r["asked"])
        elif kind == "model" and r.get("what") == "restart":
            self.restarts += 1
        elif kind == "ctl" and r.get("what") == "record" and r.get("action") == "mark":
            self.markers.append({"label": r.get("label"),
                                 "ms": round((t - self.t_first) / 1e6, 3)})
        elif kind == "note" and r.get("what") in SLICE_NOTES:
            self.slices[r["what"].split("-")[0]].append(
                {k: r[k] for k in ("folder", "seconds", "records", "at_end", "error") if k in r})

    def summary(self, header: dict[str, Any]) -> dict[str, Any]:
        return {
            "performance": header["config"]["performance"]["name"],
            "mode": header["config"]["agent"]["mode"],
            "clock": header.get("clock", "?"),
            "seconds": round(((self.t_last or 0) - (self.t_first or 0)) / 1e9, 3),
            "notes_heard": self.heard,
            "notes_played": self.played,
            "answers": self.answers,
            "undelivered": self.undelivered,
            "reaction_ms": self.reaction.summary_ms(),
            "lateness_ms": self.lateness.summary_ms(),
            "model": header["config"].get("model", {}).get("checkpoint") or None,
            # why -> count: "model" in time, else the fallback's cause
            "model_answers": dict(self.model_answers),
            "model_wait_ms": self.model_wait.summary_ms(),  # request -> answer, when in time
            "model_restarts": self.restarts,
            # `record mark`: label (None if none given), ms from the first record
            "markers": list(self.markers),
            # folder, seconds, records, at_end (closed at the stop); or error
            "takes": list(self.slices["take"]),
            "captures": list(self.slices["capture"]),
        }


def format_summary(s: dict[str, Any]) -> str:
    r, lt = s["reaction_ms"], s["lateness_ms"]
    clock_note = " (on the replay clock)" if s["clock"] == "manual" else ""
    return "\n".join([
        f"{s['performance']}: {s['seconds']:.1f} s, mode {s['mode']}",
        f"  notes heard  {s['notes_heard']}",
        f"  notes played {s['notes_played']} in {s['answers']} answers"
        + (f", {s['undelivered']} messages undelivered" if s["undelivered"] else ""),
        f"  reaction latency ({REACTS_TO.get(s['mode'], 'cause -> note')}) "
        f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms (n={r['n']}){clock_note}",
        f"  scheduler lateness p50 {lt['p50']:.3f} ms, p99 {lt['p99']:.3f} ms, "
        f"max {lt['max']:.3f} ms",
        *(_model_lines(s) if s.get("model") else []),
        *([f"  MIDI input handling p50 {h['p50']:.1f} p99 {h['p99']:.1f} max {h['max']:.1f} us "
           f"a message (n={h['n']})"] if (h := s.get("input_handling_us")) and h["n"] else []),
        *([f"  MIDI input dropped: {s['input_overflow']} on a full queue, "
            f"{s['input_malformed']} malformed, {s.get('input_unhandled', 0)} still queued "
            f"at the stop, {s.get('input_shed', 0)} shed (note-ons older than "
            f"{s.get('shed_after_ms', 0):g} ms when their turn came, and their note-offs)"]
          if s.get("input_overflow") or s.get("input_malformed") or s.get("input_unhandled")
          or s.get("input_shed") else []),
        *([f"  MIDI output drain NOT confirmed at the stop (JACK ran no cycle within 1 s): "
           f"{', '.join(s['outputs_unconfirmed'])}; a synth may hold notes until the next "
           f"start's reset"] if s.get("outputs_unconfirmed") else []),
        *([f"  spatial tick p50 {s['spatial_tick_ms']['p50']:.3f} ms, p99 "
           f"{s['spatial_tick_ms']['p99']:.3f} ms (n={s['spatial_tick_ms']['n']})"]
          if s.get("spatial_tick_ms") else []),
        *([f"  the voices' trajectories: {s['trajectories']}"] if s.get("trajectories") else []),
        *_slice_lines(s),
        *_recording_lines(s),
    ])


def _recording_lines(s: dict[str, Any]) -> list[str]:
    """Where the recording is, and what of it the disk did not take (session.finish)."""
    if s.get("recorded") is False:
        return [f"  NOT RECORDED: {s['recording_error']} (the figures above are empty)"]
    lines = []
    if s.get("recording_lost"):
        lines.append(f"  RECORDING INCOMPLETE: {s['recording_lost']} records lost "
                     f"({s['recording_error']}); the figures above are from what was written")
    if s.get("midi_error"):
        lines.append(f"  performance.mid NOT written: {s['midi_error']}")
    return [*lines, f"  written to {s['recording']}"]


def _model_lines(s: dict[str, Any]) -> list[str]:
    answers = s["model_answers"]
    in_time = answers.get("model", 0)
    fallbacks = ", ".join(f"{n} {why}" for why, n in sorted(answers.items()) if why != "model")
    w = s["model_wait_ms"]
    lines = [f"  model {s['model']}: {in_time} of {sum(answers.values())} answers in time"
             + (f"; Markov fallback for {fallbacks}" if fallbacks else "")
             + (f"; {s['model_restarts']} worker restarts" if s["model_restarts"] else "")]
    if w["n"] and s["clock"] != "manual":
        lines.append(f"  model wait (request -> proposal) p50 {w['p50']:.2f} ms, "
                     f"p99 {w['p99']:.2f} ms")
    if s.get("originality_notes") is not None:
        lines.append(f"  longest run copied from the corpus {s['originality_notes']} notes")
    elif "originality_error" in s:
        lines.append(f"  copies from the corpus not measured: {s['originality_error']}")
    return lines


def _slice_lines(s: dict[str, Any]) -> list[str]:
    """Markers, takes and captures (summaries made before these existed have none)."""
    lines = []
    if s.get("markers"):
        lines.append("  markers: " + ", ".join(
            f"{m['ms'] / 1000:.3f} s {m['label'] or '(no label)'}" for m in s["markers"]))
    for kind in ("takes", "captures"):
        for x in s.get(kind, []):
            if "error" in x:
                lines.append(f"  {kind[:-1]} {x['folder']} NOT saved: {x['error']}")
            else:
                lines.append(f"  {kind[:-1]} {x['folder']}: {x['seconds']:.1f} s, "
                             f"{x['records']} records"
                             + (" (still running at the end: closed at the stop)"
                                if x.get("at_end") else ""))
    return lines
