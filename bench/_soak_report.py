"""The soak bench's report (bench/soak.py): what the run saw, its figures, and what broke."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from _common import Jack, Summary, first, heading, rss_growth, show, show_ratio, sounding_notes

from agent import midi
from agent.record.log import records_lost
from agent.record.telemetry import RECENT

if TYPE_CHECKING:
    from soak import Band, Director

S = 1_000_000_000  # ns per second
PLAYERS = ("melody", "cello")
PARTS = ("answer", "continue", "mirror", "solo", "comp")  # decisions that play
HOLD_S = 0.2  # the player stops playing this long before the port goes, holding one note
FLUSH_S = 0.1  # the agent's housekeeping wake (record.flush_ms): the peer wakes the same way


# -- figures -----------------------------------------------------------------------------------
def lag_windows(windows: list[dict[str, float]]) -> dict[str, float]:
    """Loop-lag figures (ms) over windows of RECENT wakes: median p50, median and worst p99,
    and the largest lag of all."""
    if not windows:
        return {"windows": 0, "p50": float("nan"), "p99": float("nan"),
                "p99_worst": float("nan"), "max": float("nan")}
    return {"windows": len(windows),
            "p50": float(np.median([w["p50"] for w in windows])),
            "p99": float(np.median([w["p99"] for w in windows])),
            "p99_worst": max(w["p99"] for w in windows), "max": max(w["max"] for w in windows)}


def agent_lag(telemetry: list[tuple[int, dict[str, Any]]]) -> tuple[dict[str, float], int]:
    """The agent's telemetry snapshots (each: the last RECENT wakes) chosen so their windows
    tile the run, the last one always in; and the largest count of wakes between two
    snapshots (more than RECENT: a stretch no figure covers)."""
    lags = [s["loop_lag_ms"] for _, s in telemetry if s["loop_lag_ms"]["n"]]
    chosen: list[dict[str, float]] = []
    next_n = min(RECENT, lags[-1]["n"]) if lags else 0
    for lag in lags:
        if lag["n"] >= next_n:
            chosen.append(lag)
            next_n = lag["n"] + RECENT
    if lags and chosen[-1] is not lags[-1]:
        chosen.append(lags[-1])
    figures = lag_windows(chosen)
    figures["max"] = max((lag["max"] for lag in lags), default=float("nan"))
    gap = max((b["n"] - a["n"] for a, b in itertools.pairwise(lags)), default=0)
    return figures, int(gap)


def peer_lag(lags: list[int]) -> dict[str, float]:
    windows = [Summary.of(lags[i:i + RECENT]) for i in range(0, len(lags), RECENT)
               if len(lags[i:i + RECENT]) >= RECENT // 10]
    return lag_windows([{"p50": w.p50 / 1e6, "p99": w.p99 / 1e6, "max": w.max / 1e6}
                        for w in windows])


@dataclass
class Run:
    """What the bench saw, for the report."""

    seconds: float
    t0: int = 0
    stop_signal: str = "SIGTERM"  # what ends the run (SIGHUP: its terminal closed)
    died: bool = False  # the agent exited before the stop signal
    exit_code: int | None = None
    synth: list[tuple[int, bytes]] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)  # (killed, restarted) ns
    rss: list[tuple[int, float]] = field(default_factory=list)
    rss_children: list[tuple[int, float]] = field(default_factory=list)
    preempted: list[tuple[int, int]] = field(default_factory=list)  # involuntary ctx switches
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end
    peer_lags: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""


def stale_note_ons(sounding: list[tuple[int, int]], synth: list[tuple[int, bytes]],
                   emits: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Of the notes (channel, pitch) left sounding at the synth, those whose last note-on there
    arrived after the agent, by its log, had sent its last message for the note, a note-off: in
    a cycle a JACK client misses, receivers get a stale buffer again (the soak's band ports,
    deleted while the flood runs, make the graph do so). The agent did not leave them on."""
    last_sent: dict[tuple[int, int], tuple[int, bytes]] = {}
    for r in emits:
        data = bytes.fromhex(r["data"])
        if len(data) == 3 and data[0] & 0xE0 == 0x80:
            last_sent[(data[0] & 0x0F, data[1])] = (r["t"], data)
    stale = []
    for note in sounding:
        arrived = max(t for t, d in synth if len(d) == 3 and midi.is_note_on(d)
                      and (d[0] & 0x0F, d[1]) == note)
        sent = last_sent.get(note)
        if sent is not None and midi.is_note_off(sent[1]) and sent[0] < arrived:
            stale.append(note)
    return stale


def analyse(run: Run, band: Band, director: Director,
            server: Jack) -> tuple[dict[str, Any], list[str]]:
    """Print the report; return the figures and what broke (empty: the run held up)."""
    records, broken = run.records, []
    f: dict[str, Any] = {"minutes": run.seconds / 60, "died": run.died,
                         "exit_code": run.exit_code, "jack_period_ms": server.period_ms,
                         "jack_xruns": server.xruns}
    print(f"  the agent {'DIED during the run' if run.died else 'ran to the end'}; exit code "
          f"after {run.stop_signal} {run.exit_code}")
    emits = [r for r in records if r["k"] == "emit"]
    heading("what was played")
    inputs = Counter(r["player"] for r in records if r["k"] == "in")
    f["input"] = {p: {"sent": band.sent[p], "logged": inputs[p]} for p in PLAYERS}
    print("  input sent / logged:  " + ", ".join(f"{p} {band.sent[p]} / {inputs[p]}"
                                                 for p in PLAYERS))
    parts = Counter(r["what"] for r in records if r["k"] == "decision")
    f["decisions"] = dict(parts)
    print("  the agent's parts:    " + ", ".join(f"{k} {parts[k]}" for k in (*PARTS, "yield")))
    logged = Counter(bytes.fromhex(r["data"]) for r in emits if r["ok"])
    heard = Counter(d for _, d in run.synth)
    missing, extra = sum((logged - heard).values()), sum((heard - logged).values())
    f["synth"] = {"logged_delivered": logged.total(), "heard": heard.total(),
                  "undelivered": sum(not r["ok"] for r in emits), "logged_not_heard": missing,
                  "heard_not_logged": extra}
    # Records the log itself says it could not write (a full disk: the disk phase) are heard
    # at the synth but not in the log; they are not lost music.
    not_written = records_lost(records)
    flag = "" if missing == extra == 0 else (
        f"\n    !! messages lost between the log and the synth ({server.xruns} JACK client xruns "
        "in the run: in a missed cycle receivers get a stale buffer"
        + (f"; the log says {not_written} of its records were not written" if not_written
           else "") + ")")
    print(f"  agent messages logged (delivered) {logged.total()}, heard at the synth "
          f"{heard.total()}: {missing} logged but not heard, {extra} heard but not logged "
          f"({f['synth']['undelivered']} logged as undelivered){flag}")
    unheard, left = [], Counter(heard)
    for r in emits:  # which ones (of identical messages, the last is listed)
        data = bytes.fromhex(r["data"])
        if not r["ok"]:
            continue
        if left[data] > 0:
            left[data] -= 1
        else:
            unheard.append(r)
    for r in unheard[:8]:
        print(f"    not heard: {r['data']} ({r['why']}) sent at {(r['t'] - run.t0) / S:.3f} s")
    sounding = sounding_notes(run.synth)
    stale = stale_note_ons(sounding, run.synth, emits)
    stuck = [note for note in sounding if note not in stale]
    f["stuck_notes"], f["stale_note_ons"] = len(stuck), len(stale)
    print(f"  stuck notes at the synth after {run.stop_signal}: {len(stuck)}"
          + (f"   !! {stuck[:10]}" if stuck else "   (target 0)"))
    if stale:
        print(f"    and {len(stale)} sounding there on a note-on the agent did not send then "
              f"(after its note-off, by its log: a stale JACK buffer delivered again): {stale}")
    if stuck:
        broken.append(f"{len(stuck)} stuck notes")
    if run.died:
        broken.append("the agent died during the run")
    elif run.exit_code != 0:
        broken.append(f"the agent's exit code after {run.stop_signal} was {run.exit_code}")
    if "Traceback" in run.stderr:
        print("  !! the agent's stderr holds a traceback:\n" + run.stderr[-3000:])

    heading("scheduler lateness (sent - deadline, every message in the agent's log)")
    late = [r["t"] - r["deadline"] for r in emits]
    f["lateness_ms"] = show("agent lateness", late, target="p99 <= 1 ms, max <= 5 ms").ms()
    windows = [(d - 2 * S, u + 10 * S) for d, u in run.outages]
    windows += [(g - round(HOLD_S * S), b + 5 * S) for _, g, b in band.drops]
    near = [r["t"] - r["deadline"] for r in emits if any(a <= r["t"] <= b for a, b in windows)]
    f["lateness_near_faults_ms"] = show("  within a fault's window", near).ms()
    if len(run.preempted) > 1:
        (t_a, a), (t_b, b) = run.preempted[0], run.preempted[-1]
        f["preempted_per_s"] = (b - a) / ((t_b - t_a) / S)
        print(f"  the machine: the agent was preempted {f['preempted_per_s']:.0f} times a second "
              f"(involuntary context switches); load average {run.load[0]:.2f} at the start, "
              f"{run.load[1]:.2f} at the end (2 cores)")
    for r in sorted(emits, key=lambda r: r["deadline"] - r["t"])[:3]:
        print(f"    late {(r['t'] - r['deadline']) / 1e6:7.3f} ms at {(r['t'] - run.t0) / S:7.1f} s"
              f" ({r['why']})")

    heading(f"loop lag (ms; windows of {RECENT} wakes, about {RECENT * FLUSH_S:.0f} s each)")
    ours, gap = agent_lag(director.telemetry)
    theirs = peer_lag(run.peer_lags)
    f["loop_lag_ms"] = {"agent": ours, "peer": theirs, "source": "telemetry/agent over MQTT",
                        "uncovered_wakes": max(gap - RECENT, 0)}
    for label, w in (("agent (its telemetry)", ours), ("plain asyncio loop (peer)", theirs)):
        print(f"  {label:<34} p50 {w['p50']:7.3f}  p99 median {w['p99']:7.3f}  worst "
              f"{w['p99_worst']:7.3f}  max {w['max']:7.3f} ms  windows={w['windows']:.0f}")
    show_ratio("p99 (median window) ratio", ours["p99"], theirs["p99"], "agent / plain loop")
    show_ratio("max ratio", ours["max"], theirs["max"], "agent / plain loop")
    show("peer, whole run", run.peer_lags)
    worst = first(t for t, s in director.telemetry if s["loop_lag_ms"]["max"] == ours["max"])
    if worst is not None:
        print(f"  the agent's largest lag entered its telemetry at {(worst - run.t0) / S:.1f} s")
    if gap > RECENT:
        print(f"  !! {gap - RECENT} wakes fell between two telemetry snapshots (not covered)")

    heading("memory (the agent process's RSS, after warm-up)")
    warm = run.t0 + round(min(60.0, 0.2 * run.seconds) * S)
    f["rss_mib"] = {"agent": rss_growth(run.rss, warm),
                    "children": rss_growth(run.rss_children, warm)}
    for label, g in (("agent", f["rss_mib"]["agent"]), ("its children", f["rss_mib"]["children"])):
        if g and (g["peak"] > 0):
            print(f"  {label:<13} start {g['start']:7.1f}  end {g['end']:7.1f}  peak "
                  f"{g['peak']:7.1f} MiB; growth {g['growth']:+6.1f} MiB, fit "
                  f"{g['per_hour']:+7.1f} MiB/hour (n={g['samples']:.0f})")

    heading("faults")
    online = [t for t, s in director.status if s == "online"]
    back_s = []
    for _down, up in run.outages:
        seen = first(t for t in online if t >= up)
        back_s.append(None if seen is None else (seen - up) / S)
    f["broker_outages"] = {"count": len(run.outages), "online_after_restart_s": back_s}
    print(f"  broker outages: {len(run.outages)}; agent 'online' again after each restart: "
          + ", ".join("NEVER" if b is None else f"{b:.2f} s" for b in back_s))
    f["port_drops"] = [drop_recovery(d, records) for d in band.drops]
    print(f"  port drops: {len(band.drops)}")
    for d in f["port_drops"]:
        print(f"    {d['player']:<7} lost seen after {_s(d['lost_after_s'])}, back seen after "
              f"{_s(d['back_after_s'])}, heard again after {_s(d['heard_after_s'])}, the agent "
              f"played ({d['part']}) after {_s(d['played_after_s'])} and answered "
              f"{d['player']} after {_s(d['answered_after_s'])}")
    acked = [director.acked[c] - t for c, t in director.sent.items() if c in director.acked]
    lost = [c for c in director.sent if c not in director.acked and c not in director.errors]
    in_outage = [c for c in lost
                 if any(d - 2 * S <= director.sent[c] <= u + 10 * S for d, u in run.outages)]
    f["commands"] = {"sent": len(director.sent), "acked": len(acked),
                     "errors": len(director.errors), "unanswered": len(lost),
                     "unanswered_in_outage": len(in_outage), "not_sent": director.not_sent,
                     "ack_ms": Summary.of(acked).ms()}
    print(f"  commands: {len(director.sent)} sent, {len(acked)} acked, {len(director.errors)} "
          f"refused, {len(lost)} unanswered ({len(in_outage)} around an outage); "
          f"{director.not_sent} not sent (the desk was offline)")
    if director.errors:
        print(f"    refused: {list(director.errors.items())[:3]}")
    show("  command -> ack", acked)
    return f, broken


def drop_recovery(drop: tuple[str, int, int], records: list[dict[str, Any]]) -> dict[str, Any]:
    """From the log: when the agent saw the port go and come back, heard the player again,
    and next played a part (seconds after the port went / came back)."""
    player, gone, back = drop
    ctl = [r for r in records if r["k"] == "ctl" and r.get("player") == player]
    lost = first(r["t"] for r in ctl if r["what"] == "port-lost" and r["t"] >= gone)
    seen = first(r["t"] for r in ctl if r["what"] == "port-back" and r["t"] >= back)
    since = seen if seen is not None else back
    heard = first(r["t"] for r in records
                  if r["k"] == "in" and r["player"] == player and r["t"] >= since)
    parts = [r for r in records
             if r["k"] == "decision" and r.get("what") in PARTS and r["t"] >= since]
    part = first(parts)
    answer = first(r["t"] for r in parts if r.get("caller") == player)
    return {"player": player,
            "lost_after_s": None if lost is None else (lost - gone) / S,
            "back_after_s": None if seen is None else (seen - back) / S,
            "heard_after_s": None if heard is None else (heard - back) / S,
            "played_after_s": None if part is None else (part["t"] - back) / S,
            "part": None if part is None else part["what"],
            "answered_after_s": None if answer is None else (answer - back) / S}


def _s(value: float | None) -> str:
    return "NEVER" if value is None else f"{value:.2f} s"


