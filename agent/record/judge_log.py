"""The judge's verdict on a run: the agent's notes and the players' from a log, every figure of
agent.record.judge and judge_answers for the agent and for the baselines made in the same call,
and the table that shows them side by side with the issue's targets.

The log is read as it was played, not as the agent heard it: a player's note lasts from its
note-on to the note-off of the same key on the same channel (a new note-on of a sounding key ends
it), and an agent note is "comp" or "answer" by the decision that planned it (matched by planned
start and pitch). The decisions' kinds are read as written; nothing of the agent's analysis is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent import midi
from agent.record.judge import (
    PART_ANSWER,
    PART_COMP,
    CompFigures,
    Grid,
    Key,
    Note,
    comp_figures,
    dissonant_share,
    estimate_key,
    played_span,
    players_triads,
    random_in_key,
    static_triad,
)
from agent.record.judge_answers import (
    AnswerFigures,
    answer_figures,
    call_echo,
    in_rests,
    kept_time_in_rests,
)
from agent.record.judge_grid import estimate_grid

NS_PER_S = 1e9
# The decision kinds of parts that answer a call (agent.policy.modes.RESPONSES; a test checks
# they agree, so the judge need not import the policy).
RESPONSE_KINDS = ("answer", "continue", "mirror")
BASELINES = ("static-triad", "random-in-key", "call-echo", "kept-time")


def player_notes(records: list[dict[str, Any]]) -> list[Note]:
    """The players' notes as played; a note still sounding at the end lasts until then."""
    return _paired(((r["t"], r["player"], bytes.fromhex(r["data"])) for r in records
                    if r["k"] == "in"), lambda who, pitch, t: who,
                   records[-1]["t"] if records else 0)


def agent_notes(records: list[dict[str, Any]], port: str) -> list[Note]:
    """The agent's notes on `port`, each with the part that planned it: "comp", "answer" (a
    response to a call), or the decision's own kind ("solo", ...; "other" when unplanned)."""
    planned: dict[tuple[int, int], str] = {}
    for r in records:
        if r["k"] == "decision" and "plan" in r:
            part = (PART_ANSWER if r.get("what") in RESPONSE_KINDS else str(r.get("what")))
            planned.update({(row[0], row[1]): part for row in r["plan"]})
    parts: dict[tuple[int, int], str] = {}

    def part_of(who: str, pitch: int, t: int) -> str:
        return parts.get((t, pitch), "other")

    emitted = []
    for r in records:
        if r["k"] == "emit" and r["port"] == port:
            data = bytes.fromhex(r["data"])
            if midi.is_note_on(data):
                parts[(r["t"], data[1])] = planned.get((r["deadline"], data[1]), "other")
            emitted.append((r["t"], "agent", data))
    return _paired(iter(emitted), part_of, records[-1]["t"] if records else 0)


def _paired(messages: Any, who_of: Any, end_ns: int) -> list[Note]:
    """Notes from (t ns, source, MIDI bytes): on/off pairs per source, channel and key."""
    sounding: dict[tuple[str, int, int], tuple[int, int, str]] = {}
    out = []
    for t, source, data in messages:
        on, off = midi.is_note_on(data), midi.is_note_off(data)
        if not (on or off):
            continue
        key = (source, data[0] & 0x0F, data[1])
        if key in sounding:
            start, velocity, who = sounding.pop(key)
            out.append(Note(start / NS_PER_S, t / NS_PER_S, data[1], who, velocity))
        if on:
            sounding[key] = (t, data[2], who_of(source, data[1], t))
    out += [Note(start / NS_PER_S, end_ns / NS_PER_S, key[2], who, velocity)
            for key, (start, velocity, who) in sounding.items()]
    return sorted(out, key=lambda n: (n.onset, n.pitch))


@dataclass(frozen=True)
class Figures:
    """One line of the verdict: an agent's or a baseline's figures."""

    name: str
    comp: CompFigures | None
    answers: AnswerFigures | None


@dataclass(frozen=True)
class Verdict:
    key: Key
    players: int  # how many
    players_dissonance: float | None  # the players' onsets against each other (reference level)
    agent: Figures
    baselines: tuple[Figures, ...]  # static triad, random in key, call echo, kept time, players


def judge(players: Sequence[Note], agent: Sequence[Note], grid: Grid,
          reference: Sequence[Note] | None = None, seed: int = 0) -> Verdict:
    """Every figure for the agent's notes and for the baselines made from the same grid, key
    and players. `reference`: the notes whose triads are the harmony (the whole tune for
    call-and-response material); the players' own notes when None."""
    harmony = list(reference) if reference is not None else list(players)
    key = estimate_key(harmony)
    windows = players_triads(harmony, grid)
    span = played_span(players)

    def figures(name: str, comp: Sequence[Note] | None, answers: Sequence[Note] | None) -> Figures:
        return Figures(name, None if comp is None else comp_figures(comp, players, windows, grid),
                       None if answers is None else
                       answer_figures(answers, players, windows, grid, key))

    triad, rand = static_triad(grid, key, span), random_in_key(grid, key, span, seed)
    names = {n.who for n in players}
    return Verdict(
        key=key, players=len(names),
        players_dissonance=(dissonant_share(players, players, others_only=True)
                            if len(names) > 1 else None),
        agent=figures("agent", [n for n in agent if n.who == PART_COMP],
                      [n for n in agent if n.who == PART_ANSWER]),
        baselines=(figures(BASELINES[0], triad, in_rests(triad, players, grid)),
                   figures(BASELINES[1], rand, in_rests(rand, players, grid)),
                   figures(BASELINES[2], None, call_echo(players, grid, key)),
                   figures(BASELINES[3], None, kept_time_in_rests(players, grid, key, seed)),
                   figures("players", players, None)))


def judge_log(header: dict[str, Any], records: list[dict[str, Any]], grid: Grid | None = None,
              reference: Sequence[Note] | None = None, seed: int = 0) -> Verdict | None:
    """The verdict on a logged run; without a grid, one estimated from the players' notes with
    hindsight (judge_grid), in bars of the config's beats_per_bar. None without enough notes."""
    players = player_notes(records)
    if grid is None:
        beats_per_bar = int(header["config"].get("performance", {}).get("beats_per_bar", 4))
        grid = estimate_grid(players, beats_per_bar)
    if grid is None or not players:
        return None
    return judge(players, agent_notes(records, header["config"]["agent"]["outputs"][0]), grid,
                 reference, seed)


# (label, part, field, target): the rows of the verdict table.
ROWS = (
    ("comp notes", "comp", "notes", ""),
    ("comp triad tones (share of note-time)", "comp", "triad_share", ">= 0.65, > static"),
    ("comp dissonant onsets", "comp", "dissonant_onsets", "<= 0.12 (0.15 multi)"),
    ("comp on the 8th grid (+-25 ms)", "comp", "grid.on_grid", ">= 0.95"),
    ("  where the players keep that grid", "comp", "grid.where_players_keep", ""),
    ("  first 100 beats", "comp", "grid.early", ""),
    ("  beats 200-300 (last 100)", "comp", "grid.late", "= first"),
    ("  drift (ms per 100 beats)", "comp", "grid.drift_ms_per_100_beats", "~ 0"),
    ("answers", "answers", "answers", ""),
    ("answer notes", "answers", "notes", ""),
    ("answer onsets on a beat", "answers", "on_beat", ">= 0.45"),
    ("entry within a beat of the strong beat", "answers", "entry_within_beat", "1.0"),
    ("  entry offset p50 (beats)", "answers", "entry_offset_beats_p50", "~ 0"),
    ("3-gram share: its call", "answers", "call_share", ""),
    ("3-gram share: other phrases", "answers", "other_share", ""),
    ("3-gram lift", "answers", "lift", ">= 0.15"),
    ("answer triad tones", "answers", "triad_share", ">= 0.55"),
    ("longest copy of the call (notes)", "answers", "copy_from_call", "<= 12"),
    ("rests answered", "answers", "rests_answered", "1.0"),
    ("answer onsets over a player's note", "answers", "over_players", "~ 0"),
)


def value_of(figures: Figures, part: str, field: str) -> float | int | None:
    """A figure by its row's path; None where it does not apply or could not be measured."""
    value: Any = getattr(figures, part)
    for name in field.split("."):
        if value is None:
            return None
        value = getattr(value, name)
    return value  # type: ignore[no-any-return]


def shown(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def verdict_table(verdict: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows (figure, agent, each baseline, target) of a verdict_dict; rows no column measures
    are left out."""
    columns = [c for c in ("agent", *BASELINES, "players") if c in verdict]
    out = []
    for label, part, field, target in ROWS:
        values = [verdict[c][f"{part}.{field}"] for c in columns]
        if any(v is not None for v in values):
            out.append((label, *(shown(v) for v in values), target))
    return out


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    """The verdict as plain data (JSON): {column: {figure: value}} plus key and reference."""
    out: dict[str, Any] = {"key": verdict.key.name(), "players": verdict.players,
                           "players_dissonance": verdict.players_dissonance}
    for column in (verdict.agent, *verdict.baselines):
        out[column.name] = {f"{part}.{field}": value_of(column, part, field)
                            for _label, part, field, _target in ROWS}
    return out

