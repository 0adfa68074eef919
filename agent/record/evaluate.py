"""`stage-agent evaluate RECORDING`: how the agent's part fits the players', from the log alone.

Figures (each explained where it is computed):
- response delay: from the end of a call (the last note-off of the phrase answered) to the
  answer's first note, in ms and, with a tempo known, in beats;
- density correlation: onsets per 2 s window of the agent against the players (Pearson r);
- harmony: the share of the agent's notes in the key estimated from what the players played so
  far (agent.listen.harmony, duration-weighted, half-life 30 s), and in the chord the players
  sound around it (half-life 0.5 s);
- beat grid: with the beat tracked from the players' onsets up to each agent note
  (agent.listen.beat), how far the note is from the nearest half-beat of that grid;
- originality: the longest run of the agent's intervals found in the corpus of the model used
  (when there was one), and found in the call each answer responds to.

Pure: the same log gives the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent import midi
from agent.listen.beat import BeatTracker
from agent.listen.harmony import estimate_chord, estimate_key, profile_of
from agent.model.originality import join_lines, longest_shared_run
from agent.pipeline import KEY_HALF_LIFE_S
from agent.record.log import read_log
from agent.record.session import LOG_NAME

WINDOW_NS = 2_000_000_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
CHORD_HALF_LIFE_S = 0.5


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


def call_ends(records: list[dict[str, Any]]) -> list[int]:
    """The last note-off heard before each answer (the end of the call it answers)."""
    ends, last_off = [], None
    for r in records:
        if r["k"] == "in" and midi.is_note_off(bytes.fromhex(r["data"])):
            last_off = r["t"]
        elif r["k"] == "decision" and r.get("what") == "respond" and last_off is not None:
            ends.append(last_off)
    return ends


def player_spans(records: list[dict[str, Any]]) -> np.ndarray:
    """Every player note as [onset s, pitch, duration s]; float64 [n, 3] (unfinished: to the end).
    """
    held: dict[tuple[str, int, int], int] = {}
    spans: list[tuple[float, int, float]] = []
    end = records[-1]["t"] if records else 0
    for r in records:
        if r["k"] != "in":
            continue
        data = bytes.fromhex(r["data"])
        key = (r["player"], data[0] & 0x0F, data[1]) if len(data) == 3 else None
        if key is None:
            continue
        if key in held and (midi.is_note_off(data) or midi.is_note_on(data)):
            onset = held.pop(key)
            spans.append((onset / NS_PER_S, key[2], (r["t"] - onset) / NS_PER_S))
        if midi.is_note_on(data):
            held[key] = r["t"]
    spans += [(t / NS_PER_S, k[2], (end - t) / NS_PER_S) for k, t in held.items()]
    return np.array(sorted(spans), dtype=np.float64).reshape(-1, 3)


def harmony_shares(spans: np.ndarray, agent: list[Note]) -> dict[str, float | None]:
    in_key = in_chord = judged_key = judged_chord = 0
    for note in agent:
        t = note.t_ns / NS_PER_S
        before = spans[spans[:, 0] <= t]
        if len(before) == 0:
            continue
        pitch, onset, duration = before[:, 1].astype(int), before[:, 0], before[:, 2]
        key = estimate_key(profile_of(pitch, onset, duration, at=t, half_life=KEY_HALF_LIFE_S))
        chord = estimate_chord(profile_of(pitch, onset, duration, at=t,
                                          half_life=CHORD_HALF_LIFE_S))
        if key is not None:
            judged_key += 1
            in_key += note.pitch % 12 in key.scale
        if chord is not None:
            judged_chord += 1
            in_chord += note.pitch % 12 in chord.pitch_classes
    return {"in_key": round(in_key / judged_key, 4) if judged_key else None,
            "in_chord": round(in_chord / judged_chord, 4) if judged_chord else None}


def grid_deviations(players: list[Note], agent: list[Note]) -> list[float]:
    """ms from each agent onset to the nearest half-beat of the players' tracked beat then."""
    tracker = BeatTracker()
    out = []
    heard = 0
    for note in agent:
        while heard < len(players) and players[heard].t_ns <= note.t_ns:
            tracker.on_onset(players[heard].t_ns)
            heard += 1
        beat = tracker.estimate(note.t_ns)
        if beat is None:
            continue
        half = beat.period_ns / 2
        offset = (note.t_ns - beat.phase_ns) % half
        out.append(min(offset, half - offset) / NS_PER_MS)
    return out


def density_correlation(players: list[Note], agent: list[Note]) -> float | None:
    if not players or not agent:
        return None
    start = min(players[0].t_ns, agent[0].t_ns)
    end = max(players[-1].t_ns, agent[-1].t_ns)
    bins = np.arange(start, end + WINDOW_NS, WINDOW_NS)
    a, _ = np.histogram([n.t_ns for n in players], bins)
    b, _ = np.histogram([n.t_ns for n in agent], bins)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_log(header: dict[str, Any], records: list[dict[str, Any]],
                 corpus_lines: np.ndarray | None = None) -> dict[str, Any]:
    config = header["config"]
    players, agent = notes_of(records, config["agent"]["outputs"][0])
    answers = [r for r in records if r["k"] == "decision" and r.get("what") == "respond"]
    firsts = [r["t"] for r in records if r["k"] == "emit" and "cause" in r
              and r["port"] == config["agent"]["outputs"][0]]
    delays = [(f - e) / NS_PER_MS for f, e in zip(firsts, call_ends(records), strict=False)]
    report: dict[str, Any] = {
        "player_notes": len(players), "agent_notes": len(agent), "answers": len(answers),
        "response_delay_ms": _percentiles(delays),
        "density_correlation": density_correlation(players, agent),
        "copied_from_call_notes": _copied_from_calls(records, answers),
        **harmony_shares(player_spans(records), agent),
        "grid_deviation_ms": _percentiles(grid_deviations(players, agent)),
    }
    if corpus_lines is not None:
        report["copied_from_corpus_notes"] = longest_shared_run([n.pitch for n in agent],
                                                                corpus_lines)
    return report


def _copied_from_calls(records: list[dict[str, Any]], answers: list[dict[str, Any]]) -> int:
    """Longest run of an answer's planned pitches found in the call it answers."""
    calls: list[list[int]] = [[]]
    for r in records:
        if r["k"] == "in" and midi.is_note_on(bytes.fromhex(r["data"])):
            calls[-1].append(bytes.fromhex(r["data"])[1])
        elif r["k"] == "decision" and r.get("what") == "respond":
            calls.append([])
    best = 0
    for call, answer in zip(calls, answers, strict=False):
        if len(call) > 1:
            plan = [row[1] for row in answer["plan"]]
            best = max(best, longest_shared_run(plan, join_lines([np.array(call)])))
    return best


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"n": len(values), "p50": round(float(p50), 1), "p90": round(float(p90), 1)}


def evaluate(path: Path) -> dict[str, Any]:
    header, records = read_log(path / LOG_NAME if path.is_dir() else path)
    lines = None
    model = header.get("model")
    if model and Path(model["path"]).is_file():
        from agent.model.checkpoint import load  # torch only when a model was used

        lines = load(Path(model["path"])).corpus_lines
    return evaluate_log(header, records, lines)


def format_report(r: dict[str, Any]) -> str:
    d = r["response_delay_ms"]
    corr = r["density_correlation"]
    lines = [
        f"player notes {r['player_notes']}, agent notes {r['agent_notes']}, "
        f"answers {r['answers']}",
        f"response delay (end of call -> first answer note) p50 {d['p50']} ms, "
        f"p90 {d['p90']} ms (n={d['n']})",
        "density correlation (onsets per 2 s, agent vs players) "
        + ("n/a" if corr is None else f"{corr:.2f}"),
        f"longest run copied from a call {r['copied_from_call_notes']} notes",
        f"agent notes in the players' key {_share(r['in_key'])}, in their chord "
        f"{_share(r['in_chord'])}",
        f"agent onsets from the players' beat grid (half beats) p50 "
        f"{r['grid_deviation_ms']['p50']} ms, p90 {r['grid_deviation_ms']['p90']} ms",
    ]
    if "copied_from_corpus_notes" in r:
        lines.append(f"longest run copied from the corpus {r['copied_from_corpus_notes']} notes")
    return "\n".join(lines)


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
