"""`stage-agent compare RECORDING`: re-improvise a recording with other settings, side by side.

The recording's human parts (its `in` records, and the commands that changed the playing) go
through the agent again on the manual clock (a fast replay, agent.record.replay) with another
config, checkpoint or seed: run B. Run A is the recording as it was played. One page shows both:
what differs in their settings, `stage-agent evaluate`'s figures of each with the difference, and
both piano rolls (agent.report's data and drawing).

Folder written (default RECORDING/compare/<name>-<UTC time>/):
  index.html                the page
  piano_roll_a.png          run A's piano roll
  piano_roll_b.png          run B's
  replay/                   run B: a recording folder of its own (log.jsonl, performance.mid),
                            which `stage-agent report` and `evaluate` take like any other

Everything but `reimprovise` and `write_compare` (which run the agent, read and write files) is
pure: the same two logs give the same tables and page text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent.errors import ConfigError, OutputError, RecordingError
from agent.record.evaluate import corpus_of, evaluate_log
from agent.record.log import read_log
from agent.record.overrides import NO_OVERRIDES, Overrides
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME, new_recording_dir
from agent.report.build import PAGE_NAME, log_of, png_picture, roll_alt
from agent.report.data import report_data
from agent.report.figures import draw_piano_roll
from agent.report.page import STYLE, Picture, figure_html, html_page

COMPARE_DIR = "compare"  # under the recording folder, by default
REPLAY_DIR = "replay"
ROLL_A, ROLL_B = "piano_roll_a.png", "piano_roll_b.png"
# Config keys whose recorded text says nothing comparable (a path relative to another folder,
# where recordings go) or must not be shown; the model and layout files are compared by the
# header's resolved path and sha256 instead.
SKIPPED_KEYS = ("model.checkpoint", "spatial.layout", "record.dir")
HIDDEN_KEYS = ("mqtt.password",)


@dataclass(frozen=True)
class Figure:
    """One row of the figures table: where the value is in `evaluate`'s report, and its kind:
    count, ms (1 decimal), beats (2), share (a fraction, shown in %, its difference in
    percentage points), r (a correlation, 2 decimals)."""

    label: str
    path: tuple[str, ...]
    kind: str


FIGURES = (
    Figure("player notes", ("player_notes",), "count"),
    Figure("agent notes", ("agent_notes",), "count"),
    Figure("answers", ("answers",), "count"),
    Figure("comp notes", ("comp_notes",), "count"),
    Figure("response delay p50 (ms)", ("response_delay_ms", "p50"), "ms"),
    Figure("response delay p90 (ms)", ("response_delay_ms", "p90"), "ms"),
    Figure("response delay p50 (beats)", ("response_delay_beats", "p50"), "beats"),
    Figure("response delay p90 (beats)", ("response_delay_beats", "p90"), "beats"),
    Figure("responses within a beat", ("responses_within_a_beat",), "share"),
    Figure("density correlation (r)", ("density_correlation",), "r"),
    Figure("longest run copied from a call (notes)", ("copied_from_call_notes",), "count"),
    Figure("agent notes in the players' key", ("in_key",), "share"),
    Figure("agent notes in the players' chord", ("in_chord",), "share"),
    Figure("comp notes in key", ("comp_in_key",), "share"),
    Figure("comp notes in the chord", ("comp_in_chord",), "share"),
    Figure("onsets from the beat grid p50 (ms)", ("grid_deviation_ms", "p50"), "ms"),
    Figure("onsets from the beat grid p90 (ms)", ("grid_deviation_ms", "p90"), "ms"),
    Figure("longest run copied from the corpus (notes)", ("copied_from_corpus_notes",), "count"),
)
DIGITS = {"count": 0, "ms": 1, "beats": 2, "share": 1, "r": 2}


def figure_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, A, B, B - A) for two `evaluate` reports; "n/a" where a value is missing (no
    answers, no model to check the corpus against)."""
    rows = []
    for f in FIGURES:
        x, y = _value(a, f.path), _value(b, f.path)
        diff = "n/a" if x is None or y is None else _signed(y - x, f.kind)
        rows.append((f.label, _shown(x, f.kind), _shown(y, f.kind), diff))
    return rows


def setting_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, A, B) for every setting that differs between two log headers: the config's
    keys (flattened: `performance.seed`, `model.temperature`, `sections[1].controls`), and the
    model and speaker layout files by resolved path (and sha256)."""
    flat_a, flat_b = _flatten(a["config"]), _flatten(b["config"])
    rows = []
    for key in sorted(flat_a.keys() | flat_b.keys()):
        if key in SKIPPED_KEYS or flat_a.get(key) == flat_b.get(key):
            continue
        shown = [("(hidden)" if key in HIDDEN_KEYS else _text(flat.get(key, "(absent)")))
                 for flat in (flat_a, flat_b)]
        rows.append((key, shown[0], shown[1]))
    for field, label in (("model", "model file"), ("layout", "speaker layout file")):
        x, y = _file_of(a.get(field)), _file_of(b.get(field))
        if x != y:
            rows.append((label, x, y))
    return rows


def render_compare_page(title: str, meta: Sequence[str], settings: Sequence[tuple[str, ...]],
                        figures: Sequence[tuple[str, ...]], pictures: Sequence[Picture]) -> str:
    """The whole page (same style as the report's; nothing fetched from anywhere)."""
    same = ('<p class="meta">Nothing differs: B is the recording replayed with its own settings '
            "(a check that it reproduces).</p>")
    return html_page(title, meta, [
        "<h2>What differs</h2>",
        _table(("setting", "A", "B"), settings, numeric=False) if settings else same,
        "<h2>How each agent's part fits the players' (stage-agent evaluate)</h2>",
        _table(("figure", "A", "B", "B \u2212 A"), figures),
        "<h2>Piano rolls</h2>",
        *(figure_html(p) for p in pictures),
    ], style=STYLE + "td.num, th.num { text-align: right; }")


def reimprovise(log: Path, out_dir: Path, config: Path | None = None,
                checkpoint: Path | None = None, seed: int | None = None,
                overrides: Overrides = NO_OVERRIDES) -> dict[str, Any]:
    """Run B: the log's human parts through the agent with `config` (default: the recorded
    one), `checkpoint`, `seed` and replay's --mode/--styles `overrides` if given, on the manual
    clock, into out_dir. Returns the
    replay's summary. With nothing changed, the recorded model answers are reused (the replay
    reproduces the recording); with any change the model runs here (a re-improvisation)."""
    recording = load_recording(log)
    cfg = fit_config(recording, config_mod.load(config) if config else None)
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise ConfigError("--checkpoint", "model.checkpoint", f"no such file: {checkpoint}")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, checkpoint=str(checkpoint.resolve())))
    if seed is not None:
        cfg = dataclasses.replace(cfg, performance=dataclasses.replace(
            cfg.performance, seed=seed))
    recording, cfg = overrides.apply(recording, cfg)  # after --checkpoint: its styles count
    if (out_dir / LOG_NAME).exists():
        raise RecordingError(f"{out_dir}: already holds a recording; choose another --out")
    return replay_fast(recording, cfg, out_dir, str(log))


def write_compare(recording: Path, out_dir: Path | None = None, config: Path | None = None,
                  checkpoint: Path | None = None, seed: int | None = None,
                  overrides: Overrides = NO_OVERRIDES) -> Path:
    """Re-improvise `recording` (a folder or its log; a MIDI file has no agent part to compare
    with) and write the comparison; returns the page's path."""
    log_a = log_of(recording)
    header_a, records_a = read_log(log_a)  # checked: its config is complete
    name = str(header_a["config"]["performance"]["name"])
    out = out_dir or new_recording_dir(log_a.parent / COMPARE_DIR, name)
    try:
        return _write(out, name, log_a, header_a, records_a, config, checkpoint, seed,
                      overrides)
    except OSError as e:  # a read-only recording folder (give --out), a full disk
        raise OutputError(f"{out}: cannot write the comparison: {e}") from None


def _write(out: Path, name: str, log_a: Path, header_a: dict[str, Any],
           records_a: list[dict[str, Any]], config: Path | None, checkpoint: Path | None,
           seed: int | None, overrides: Overrides) -> Path:
    reimprovise(log_a, out / REPLAY_DIR, config, checkpoint, seed, overrides)
    log_b = out / REPLAY_DIR / LOG_NAME
    header_b, records_b = read_log(log_b)
    runs = []
    for label, header, records, file in (("A", header_a, records_a, ROLL_A),
                                         ("B", header_b, records_b, ROLL_B)):
        data = report_data(header, records)
        title = f"{label}: {header['config']['performance']['name']}, seed {header.get('seed')}"
        picture = png_picture(
            draw_piano_roll(data, out / file, title), f"{label}: {roll_alt(data, name)}",
            f"Run {label}: every note over time, pitch upward, each player in a colour of its "
            "own, the agent's notes outlined in black.")
        runs.append((evaluate_log(header, records, corpus_of(header)), picture))
    meta = [f"A: {log_a} as recorded ({_settings_line(header_a)})",
            f"B: its players through the agent again ({_settings_line(header_b)}), "
            f"recorded in {out / REPLAY_DIR}"]
    # A's config as this version reads it (keys added since it was recorded get their
    # defaults, as they did when B was made from it), so only real differences show.
    resolved_a = load_recording(log_a).config
    assert resolved_a is not None  # a log always has one
    config_a = json.loads(json.dumps(resolved_a.to_dict()))  # as a log holds it: lists
    page = out / PAGE_NAME
    page.write_text(render_compare_page(
        f"{name}: re-improvised side by side", meta,
        setting_rows({**header_a, "config": config_a}, header_b),
        figure_rows(runs[0][0], runs[1][0]), [picture for _, picture in runs]), encoding="utf-8")
    return page


def _settings_line(header: dict[str, Any]) -> str:
    model = header.get("model")
    return (f"config {header['config']['performance']['name']}, seed {header.get('seed')}, "
            + (f"model {Path(model['path']).name}" if model else "no model: the Markov memory"))


def _value(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return None if value is None else float(value)


def _shown(x: float | None, kind: str) -> str:
    if x is None:
        return "n/a"
    if kind == "share":
        return f"{100 * x:.1f}%"
    return f"{x:.{DIGITS[kind]}f}"


def _signed(d: float, kind: str) -> str:
    scaled = 100 * d if kind == "share" else d
    text = f"{scaled:+.{DIGITS[kind]}f}"
    if float(text) == 0:
        text = text.lstrip("+-")
    return text + (" pp" if kind == "share" else "")


def _flatten(table: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists of dicts -> {"a.b": value, "c": "2 tables", "c[0].d": value};
    other lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(table, dict):
        for key, value in table.items():
            out |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(table, list) and table and all(isinstance(x, dict) for x in table):
        out[prefix] = f"{len(table)} table" + ("s" if len(table) > 1 else "")
        for i, value in enumerate(table):
            out |= _flatten(value, f"{prefix}[{i}]")
    else:
        out[prefix] = table
    return out


def _text(value: Any) -> str:
    """A setting as the config file would have it (a string bare)."""
    if isinstance(value, str) and value:
        return value
    return json.dumps(value)


def _file_of(identity: Any) -> str:
    """A header's model or layout entry: {"path", "sha256"} or a path string."""
    if identity is None:
        return "none"
    if isinstance(identity, dict):
        digest = identity.get("sha256")
        return f"{identity.get('path')} (sha256 {str(digest)[:12]})" if digest else \
            str(identity.get("path"))
    return str(identity)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True) -> str:
    """A table whose first column names the row; numeric values are right-aligned."""
    cls = ' class="num"' if numeric else ""
    name, *values = head
    lines = ["<table>", f"<tr><th>{escape(name)}</th>"
             + "".join(f"<th{cls}>{escape(h)}</th>" for h in values) + "</tr>"]
    lines += ["<tr><th>" + escape(row[0]) + "</th>"
              + "".join(f"<td{cls}>{escape(v)}</td>" for v in row[1:]) + "</tr>"
              for row in rows]
    lines.append("</table>")
    return "\n".join(lines)
