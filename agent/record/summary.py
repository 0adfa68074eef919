"""The short printed summary of a run, computed from its log alone."""

from __future__ import annotations

from typing import Any

from agent import midi
from agent.stats import Samples

# What a mode's reaction latency is measured from (the emit record's `cause`) and to.
REACTS_TO = {"respond": "end of a call -> first answer note",
             "harmony": "heard note -> harmony note"}


def summarise(header: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    heard = played = undelivered = answers = 0
    reaction, lateness = Samples(), Samples()
    t_first = t_last = None
    for r in records:
        t = r["t"]
        t_first = t if t_first is None else t_first
        t_last = t
        if r["k"] == "in":
            heard += midi.is_note_on(bytes.fromhex(r["data"]))
        elif r["k"] == "emit":
            lateness.add(t - r["deadline"])
            undelivered += not r["ok"]
            if midi.is_note_on(bytes.fromhex(r["data"])):
                played += 1
                if "cause" in r:
                    reaction.add(t - r["cause"])
        elif r["k"] == "decision" and r.get("what") == "respond":
            answers += 1
    return {
        "performance": header["config"]["performance"]["name"],
        "mode": header["config"]["agent"]["mode"],
        "clock": header.get("clock", "?"),
        "seconds": round(((t_last or 0) - (t_first or 0)) / 1e9, 3),
        "notes_heard": heard,
        "notes_played": played,
        "answers": answers,
        "undelivered": undelivered,
        "reaction_ms": reaction.summary_ms(),
        "lateness_ms": lateness.summary_ms(),
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
        *([f"  MIDI input dropped: {s['input_overflow']} on a full queue, "
            f"{s['input_malformed']} malformed"]
          if s.get("input_overflow") or s.get("input_malformed") else []),
        f"  written to {s['recording']}",
    ])
