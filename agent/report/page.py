"""The report's HTML text (pure): a plain static page, everything it needs beside it.

No network resource of any kind (the stage machine is offline): no web fonts, no scripts, an
empty inline favicon (so the browser does not ask the server for one). Every text that comes
from the log or the config (a player's name, a marker's label, a folder) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from agent.record.summary import REACTS_TO

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { text-align: left; padding: 0.2em 1em 0.2em 0; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { font-weight: 600; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.95em; max-width: 60em; }
.missing { color: #a33; }
"""


@dataclass(frozen=True)
class Picture:
    file: str  # relative to the page
    width: int
    height: int
    alt: str
    caption: str


def render_page(title: str, meta: Sequence[str], summary: dict[str, Any],
                evaluation: dict[str, Any], pictures: Sequence[Picture],
                missing: Sequence[str] = ()) -> str:
    """The whole page. `meta`: lines under the title; `missing`: pictures that could not be
    drawn, and why."""
    return html_page(title, meta, [
        "<h2>Figures</h2>",
        _table(summary_rows(summary)),
        "<h2>How the agent's part fits the players'</h2>",
        _table(evaluation_rows(evaluation)),
        *_slices(summary),
        "<h2>Pictures</h2>",
        *(figure_html(p) for p in pictures),
        *(f'<p class="missing">{escape(text)}</p>' for text in missing),
    ])


def html_page(title: str, meta: Sequence[str], body: Sequence[str], style: str = STYLE) -> str:
    """A whole static page: its head (`style` inline, the empty favicon), the title as its
    heading with the `meta` lines under it, then the `body` lines (HTML, as given)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title>",
        f"<style>{style}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in meta),
        *body,
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The replay summary's figures (agent.record.summary.summarise) as table rows."""
    r, lt = s["reaction_ms"], s["lateness_ms"]
    replay_clock = s["clock"] == "manual"
    rows = [
        ("length", f"{s['seconds']:.1f} s"),
        ("starting mode", str(s["mode"])),
        ("clock", "manual (a replay: times are the recording's, as fast as the machine went)"
         if replay_clock else str(s["clock"])),
        ("notes heard", str(s["notes_heard"])),
        ("notes played", f"{s['notes_played']} in {s['answers']} answers"),
        ("messages undelivered", str(s["undelivered"])),
        (f"reaction latency ({REACTS_TO.get(s['mode'], 'cause -> note')})",
         _p50_p99_max(r, 1)),
        ("scheduler lateness", _p50_p99_max(lt, 3)),
    ]
    if s.get("model"):
        answers = s["model_answers"]
        fallbacks = ", ".join(f"{n} {why}" for why, n in sorted(answers.items())
                              if why != "model")
        rows.append(("model", f"{s['model']}: {answers.get('model', 0)} of "
                              f"{sum(answers.values())} answers in time"
                     + (f"; Markov fallback for {fallbacks}" if fallbacks else "")
                     + (f"; {s['model_restarts']} worker restarts"
                        if s["model_restarts"] else "")))
        rows.append(("model wait (request -> answer in time)", _p50_p99_max(s["model_wait_ms"], 2)
                     + (" (on the replay clock)" if replay_clock else "")))
    return rows


def evaluation_rows(e: dict[str, Any]) -> list[tuple[str, str]]:
    """`stage-agent evaluate`'s figures (agent.record.evaluate.evaluate_log) as table rows."""
    d, beats, grid = e["response_delay_ms"], e["response_delay_beats"], e["grid_deviation_ms"]
    rows = [
        ("player notes, agent notes, answers",
         f"{e['player_notes']}, {e['agent_notes']}, {e['answers']}"),
        ("response delay (end of call -> first answer note)",
         f"p50 {_num(d['p50'])} ms, p90 {_num(d['p90'])} ms (n={d['n']}); in beats p50 "
         f"{_num(beats['p50'])}, p90 {_num(beats['p90'])}"),
        ("responses within a beat", _share(e["responses_within_a_beat"])),
        ("density correlation (onsets per 2 s, agent vs players)",
         _num(e["density_correlation"], 2)),
        ("longest run copied from a call", f"{e['copied_from_call_notes']} notes"),
        ("agent notes in the players' key, in their chord",
         f"{_share(e['in_key'])}, {_share(e['in_chord'])}"),
        ("comp notes: in key, in the chord",
         f"{e['comp_notes']}: {_share(e['comp_in_key'])}, {_share(e['comp_in_chord'])}"),
        ("agent onsets from the players' beat grid (half beats)",
         f"p50 {_num(grid['p50'])} ms, p90 {_num(grid['p90'])} ms"),
    ]
    if "copied_from_corpus_notes" in e:
        rows.append(("longest run copied from the corpus",
                     f"{e['copied_from_corpus_notes']} notes"))
    return rows


def _slices(s: dict[str, Any]) -> list[str]:
    """Markers, takes and captures, when there are any."""
    out = []
    if s.get("markers"):
        out += ["<h2>Markers</h2>", _table(
            [(f"{m['ms'] / 1000:.3f} s", m["label"] or "(no label)") for m in s["markers"]],
            ("time", "label"))]
    for kind in ("takes", "captures"):
        rows = [(x["folder"], f"NOT saved: {x['error']}" if "error" in x else
                 f"{x['seconds']:.1f} s, {x['records']} records"
                 + (" (still running at the end: closed at the stop)" if x.get("at_end") else ""))
                for x in s.get(kind, [])]
        if rows:
            out += [f"<h2>{kind.capitalize()}</h2>", _table(rows, ("folder", ""))]
    return out


def figure_html(p: Picture) -> str:
    return (f'<figure><img src="{escape(p.file)}" width="{p.width}" height="{p.height}" '
            f'alt="{escape(p.alt)}"><figcaption>{escape(p.caption)}</figcaption></figure>')


def _table(rows: Sequence[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    lines = ["<table>"]
    if head is not None:
        lines.append(f"<tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr>")
    lines += [f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows]
    lines.append("</table>")
    return "\n".join(lines)


def _p50_p99_max(x: dict[str, float], digits: int) -> str:
    if not x["n"]:
        return "no samples"
    return (f"p50 {x['p50']:.{digits}f} ms, p99 {x['p99']:.{digits}f} ms, "
            f"max {x['max']:.{digits}f} ms (n={x['n']})")


def _num(x: float | None, digits: int | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}" if digits is not None else str(x)


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
