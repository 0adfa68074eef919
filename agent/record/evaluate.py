"""`stage-agent evaluate RECORDING`: how the agent's part fits the players', from the log alone.

First the judge's figures (agent.record.judge_log): the agent's comp and answers against what
the players played, on a beat grid estimated with hindsight from all their onsets
(agent.record.judge_grid), the players' own notes as the harmony, each figure beside baselines
made in the same call (a static tonic triad on every beat, random in-key notes on the 8th grid,
the call echoed a third up, random in-key notes in the rests on the beat kept from before them,
the players' line as a comp). Under "judge" in the report.

Then the older figures, kept beside them to show the difference: they judge the agent against
what the agent itself heard (its own key, chord and beat estimators), which is circular
(each explained where it is computed):
- response delay: from the end of a call (the last note-off of the phrase answered) to the
  answer's first note, in ms and, with a tempo heard, in beats; the share of
  responses that start within one beat;
- density correlation: onsets per 2 s window of the agent against the players (Pearson r);
- harmony: the share of the agent's notes in the key estimated from what the players played so
  far (agent.listen.harmony, duration-weighted, half-life 30 s), and in the chord the players
  sound around it (half-life 0.5 s); the same for the notes it played accompanying (comp);
- beat grid: with the beat tracked from the players' onsets up to each agent note
  (agent.listen.beat), how far the note is from the nearest half-beat of that grid;
- originality: the longest run of the agent's intervals found in the corpus of the model used
  (when there was one), and found in the call each answer responds to.

Pure: the same log gives the same figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent import midi
from agent.events import Heard
from agent.listen.beat import BeatEstimate, BeatTracker
from agent.listen.harmony import estimate_chord, estimate_key, key_evidence, profile_of
from agent.listen.hearing import CHORD_HALF_LIFE_S, KEY_HALF_LIFE_S
from agent.listen.players import notes_heard
from agent.model.memory_from import recorded_lines
from agent.model.originality import join_lines, longest_shared_run
from agent.policy.modes import RESPONSES
from agent.record.judge_grid import MAX_GRID_S
from agent.record.judge_log import judge_log, verdict_dict, verdict_table
from agent.record.log import read_log
from agent.record.session import log_path
from agent.record.summary import Note, notes_of

WINDOW_NS = 2_000_000_000
MAX_WINDOWS = 1_000_000  # of WINDOW_NS for the density correlation: 23 days (a log with a
# gap of years would need gigabytes; it gets no figure)
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def player_spans(header: dict[str, Any], records: list[dict[str, Any]]) -> np.ndarray:
    """Every player note as [onset s, pitch, duration s], as the agent's listener pairs them;
    notes still held at the end last until then. float64 [n, 3]."""
    notes = notes_heard([Heard(r["t"], r["player"], bytes.fromhex(r["data"]))
                         for r in records if r["k"] == "in"],
                        [p["name"] for p in header["config"]["players"]],
                        records[-1]["t"] if records else 0)
    spans = sorted((n.onset_ns / NS_PER_S, n.pitch, n.duration_ns / NS_PER_S) for n in notes)
    return np.array(spans, dtype=np.float64).reshape(-1, 3)


def harmony_shares(spans: np.ndarray, agent: list[Note],
                   prefix: str = "") -> dict[str, float | None]:
    in_key = in_chord = judged_key = judged_chord = 0
    for note in agent:
        t = note.t_ns / NS_PER_S
        before = spans[spans[:, 0] <= t]
        if len(before) == 0:
            continue
        pitch, onset, duration = before[:, 1].astype(int), before[:, 0], before[:, 2]
        key = estimate_key(key_evidence(pitch, onset, duration, at=t, half_life=KEY_HALF_LIFE_S))
        chord = estimate_chord(profile_of(pitch, onset, duration, at=t,
                                          half_life=CHORD_HALF_LIFE_S))
        if key is not None:
            judged_key += 1
            in_key += note.pitch % 12 in key.scale
        if chord is not None:
            judged_chord += 1
            in_chord += note.pitch % 12 in chord.pitch_classes
    return {prefix + "in_key": round(in_key / judged_key, 4) if judged_key else None,
            prefix + "in_chord": round(in_chord / judged_chord, 4) if judged_chord else None}


def comp_notes(records: list[dict[str, Any]], port: str) -> list[Note]:
    """The agent's notes that a comp decision planned (matched by planned start and pitch)."""
    planned = {(row[0], row[1]) for r in records if r["k"] == "decision"
               and r.get("what") == "comp" for row in r["plan"]}
    out = []
    for r in records:
        if r["k"] == "emit" and r["port"] == port:
            data = bytes.fromhex(r["data"])
            if midi.is_note_on(data) and (r["deadline"], data[1]) in planned:
                out.append(Note(r["t"], data[1], data[2]))
    return out


def beats_at(players: list[Note], times_ns: list[int]) -> list[BeatEstimate | None]:
    """The beat tracked from the players' onsets up to each time (times in order)."""
    tracker = BeatTracker()
    out = []
    heard = 0
    for t in times_ns:
        while heard < len(players) and players[heard].t_ns <= t:
            tracker.on_onset(players[heard].t_ns)
            heard += 1
        out.append(tracker.estimate(t))
    return out


def grid_deviations(players: list[Note], agent: list[Note]) -> list[float]:
    """ms from each agent onset to the nearest half-beat of the players' tracked beat then."""
    out = []
    for note, beat in zip(agent, beats_at(players, [n.t_ns for n in agent]), strict=True):
        if beat is None:
            continue
        half = beat.period_ns / 2
        offset = (note.t_ns - beat.phase_ns) % half
        out.append(min(offset, half - offset) / NS_PER_MS)
    return out


def delays_in_beats(players: list[Note], responses: list[tuple[int, int]]) -> list[float]:
    """Each response's delay (first note - end of the call) in beats of the tempo heard."""
    beats = beats_at(players, [cause for cause, _t in responses])
    return [(t - cause) / beat.period_ns for (cause, t), beat in zip(responses, beats, strict=True)
            if beat is not None]


def density_correlation(players: list[Note], agent: list[Note]) -> float | None:
    if not players or not agent:
        return None
    start = min(players[0].t_ns, agent[0].t_ns)
    end = max(players[-1].t_ns, agent[-1].t_ns)
    if (end - start) // WINDOW_NS >= MAX_WINDOWS:
        return None
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
    answers = [r for r in records if r["k"] == "decision" and r.get("what") in RESPONSES]
    # An answer's first note carries the end of the call it answers (`cause`).
    responses = sorted((r["cause"], r["t"]) for r in records if r["k"] == "emit"
                       and "cause" in r and r["port"] == config["agent"]["outputs"][0])
    delays = [(t - cause) / NS_PER_MS for cause, t in responses]
    in_beats = delays_in_beats(players, responses)
    spans = player_spans(header, records)
    comps = comp_notes(records, config["agent"]["outputs"][0])
    report: dict[str, Any] = {
        "player_notes": len(players), "agent_notes": len(agent), "answers": len(answers),
        "comp_notes": len(comps),
        "response_delay_ms": _percentiles(delays),
        "response_delay_beats": _percentiles(in_beats, 2),
        "responses_within_a_beat": (round(sum(d <= 1.0 for d in in_beats) / len(in_beats), 4)
                                    if in_beats else None),
        "density_correlation": density_correlation(players, agent),
        "copied_from_call_notes": _copied_from_calls(records, answers),
        **harmony_shares(spans, agent),
        **harmony_shares(spans, comps, "comp_"),
        "grid_deviation_ms": _percentiles(grid_deviations(players, agent)),
    }
    verdict = judge_log(header, records)
    report["judge"] = None if verdict is None else verdict_dict(verdict)
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
        elif r["k"] == "decision" and r.get("what") in RESPONSES:
            calls.append([])
    best = 0
    for call, answer in zip(calls, answers, strict=False):
        if len(call) > 1:
            plan = [row[1] for row in answer["plan"]]
            best = max(best, longest_shared_run(plan, join_lines([np.array(call)])))
    return best


def _percentiles(values: list[float], digits: int = 1) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"n": len(values), "p50": round(float(p50), digits),
            "p90": round(float(p90), digits)}


def evaluate(path: Path) -> dict[str, Any]:
    header, records = read_log(log_path(path))
    return evaluate_log(header, records, corpus_of(header))


def corpus_of(header: dict[str, Any]) -> np.ndarray | None:
    """The corpus lines of the model a log's run used, if it had one and the file is still
    there, and of the corpora that primed its memory (respond.memory_from) still as they were.
    None if there are none."""
    lines = []
    model = header.get("model")
    if model and Path(model["path"]).is_file():
        from agent.model.checkpoint import load  # torch only when a model was used

        lines.append(load(Path(model["path"])).corpus_lines)
    memory = recorded_lines(header.get("memory_from", []))
    if memory is not None:
        lines.append(memory)
    return np.concatenate(lines) if lines else None


def format_report(r: dict[str, Any]) -> str:
    d = r["response_delay_ms"]
    within = r["responses_within_a_beat"]
    corr = r["density_correlation"]
    lines = [*_judge_lines(r.get("judge")), "",
             "Older figures, judged against the agent's own hearing of key, chord and beat "
             "(circular):",
        f"player notes {r['player_notes']}, agent notes {r['agent_notes']}, "
        f"answers {r['answers']}",
        f"response delay (end of call -> first answer note) p50 {d['p50']} ms, "
        f"p90 {d['p90']} ms (n={d['n']}); in beats p50 {r['response_delay_beats']['p50']}, "
        f"p90 {r['response_delay_beats']['p90']}; within a beat {_share(within)}",
        "density correlation (onsets per 2 s, agent vs players) "
        + ("n/a" if corr is None else f"{corr:.2f}"),
        f"longest run copied from a call {r['copied_from_call_notes']} notes",
        f"agent notes in the players' key {_share(r['in_key'])}, in their chord "
        f"{_share(r['in_chord'])}",
        f"comp notes {r['comp_notes']}: in key {_share(r['comp_in_key'])}, in the chord "
        f"{_share(r['comp_in_chord'])}",
        f"agent onsets from the players' beat grid (half beats) p50 "
        f"{r['grid_deviation_ms']['p50']} ms, p90 {r['grid_deviation_ms']['p90']} ms",
    ]
    if "copied_from_corpus_notes" in r:
        lines.append(f"longest run copied from the corpus {r['copied_from_corpus_notes']} notes")
    return "\n".join(lines)


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _judge_lines(judge: dict[str, Any] | None) -> list[str]:
    if judge is None:
        return ["The judge: no beat grid (too few player notes, or notes spread over more than "
                f"{MAX_GRID_S // 3600} hours); no figures."]
    rows = [("figure", "agent", "static triad", "random in key", "call echo", "kept time",
             "players", "target"), *verdict_table(judge)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "The judge (a beat grid found with hindsight from the players' onsets, their notes as "
        "the harmony, key " + judge["key"] + "; baselines made in the same run):",
        *("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths, strict=True)))
          for row in rows),
        *([f"  the players' own dissonant onsets against each other "
           f"{judge['players_dissonance']:.2f}"] if judge["players_dissonance"] is not None
          else []),
    ]
