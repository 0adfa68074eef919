"""`stage-agent compare`'s tables from two constructed logs: the evaluate figures of each with
their difference, the settings that differ, and the page text."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from agent import config as config_mod
from agent.model.originality import join_lines
from agent.record.evaluate import evaluate_log
from agent.report.compare import figure_rows, render_compare_page, setting_rows
from agent.report.page import Picture

MS = 1_000_000
OUT = "virtual:stage-agent-out"
# Two calls of four quarter notes at 120 BPM (0.5 s apart, held 0.4 s): each ends 1.9 s after
# it starts.
CALLS = ((0, (60, 64, 67, 72)), (4000, (72, 67, 64, 60)))


def config(**changes: Any) -> dict[str, Any]:
    """A resolved config as a log's header holds it (JSON: lists, not tuples)."""
    table = {"players": [{"name": "p", "port": "virtual:p"}], **changes}
    resolved: dict[str, Any] = json.loads(json.dumps(
        config_mod.from_dict(table, check_files=False).to_dict()))
    return resolved


def log(delay_ms: int, answers: tuple[tuple[int, ...], ...]) -> tuple[dict[str, Any],
                                                                     list[dict[str, Any]]]:
    """The player's two calls, and the agent answering each `delay_ms` after its end, one note
    every 0.3 s (held 0.25 s)."""
    records: list[dict[str, Any]] = []
    for start, pitches in CALLS:
        for i, p in enumerate(pitches):
            on = (start + 500 * i) * MS
            records.append({"t": on, "k": "in", "player": "p", "data": f"90{p:02x}50"})
            records.append({"t": on + 400 * MS, "k": "in", "player": "p", "data": f"80{p:02x}00"})
    for (start, _), pitches in zip(CALLS, answers, strict=True):
        end = (start + 1900) * MS
        first = end + delay_ms * MS
        times = [first + 300 * MS * j for j in range(len(pitches))]
        plan = [[t, p, 80, 250 * MS] for t, p in zip(times, pitches, strict=True)]
        records.append({"t": end + 100 * MS, "k": "decision", "what": "answer", "plan": plan})
        for j, (t, p) in enumerate(zip(times, pitches, strict=True)):
            on = {"t": t, "k": "emit", "deadline": t, "port": OUT, "data": f"92{p:02x}50",
                  "why": "answer", "ok": True, **({"cause": end} if j == 0 else {})}
            records += [on, {"t": t + 250 * MS, "k": "emit", "deadline": t + 250 * MS,
                             "port": OUT, "data": f"82{p:02x}00", "why": "answer", "ok": True}]
    records.sort(key=lambda r: r["t"])
    return {"config": config(), "seed": 7}, records


# A copies the calls' shapes, in key, a beat after each call; B answers half a beat after, with
# fewer notes, out of key. The corpus holds one line with A's intervals.
CORPUS = join_lines([np.array([60, 64, 67, 67, 64, 60])])
A = evaluate_log(*log(500, ((60, 64, 67), (67, 64, 60))), CORPUS)
B = evaluate_log(*log(250, ((61, 66), (66, 63))), CORPUS)


def test_the_figures_of_each_run_and_their_difference() -> None:
    assert figure_rows(A, B) == [
        ("player notes", "8", "8", "0"),
        ("agent notes", "6", "4", "-2"),
        ("answers", "2", "2", "0"),
        ("comp notes", "0", "0", "0"),
        # From the call's end (its last note-off) to the answer's first note.
        ("response delay p50 (ms)", "500.0", "250.0", "-250.0"),
        ("response delay p90 (ms)", "500.0", "250.0", "-250.0"),
        # The beat tracked from the calls' onsets: 0.5 s.
        ("response delay p50 (beats)", "1.00", "0.50", "-0.50"),
        ("response delay p90 (beats)", "1.00", "0.50", "-0.50"),
        ("responses within a beat", "100.0%", "100.0%", "0.0 pp"),
        # Each run plays only in the 2 s windows where the player rests.
        ("density correlation (r)", "-1.00", "-1.00", "0.00"),
        # Runs of intervals: A's (+4, +3) are the first call's; B's +5 is 67 -> 72 there.
        ("longest run copied from a call (notes)", "3", "2", "-1"),
        ("agent notes in the players' key", "100.0%", "0.0%", "-100.0 pp"),
        ("agent notes in the players' chord", "100.0%", "0.0%", "-100.0 pp"),
        ("comp notes in key", "n/a", "n/a", "n/a"),  # no comping in either
        ("comp notes in the chord", "n/a", "n/a", "n/a"),
        # Half-beat grid (250 ms): A's onsets are 100, 50 and 0 ms off it, B's 100 and 50.
        ("onsets from the beat grid p50 (ms)", "50.0", "75.0", "+25.0"),
        ("onsets from the beat grid p90 (ms)", "100.0", "100.0", "0.0"),
        # A's six notes are the corpus line's intervals throughout; B's (0, -3) in it: 3 notes.
        ("longest run copied from the corpus (notes)", "6", "3", "-3"),
    ]


def test_a_figure_one_run_lacks_is_not_applicable() -> None:
    without_corpus = {k: v for k, v in B.items() if k != "copied_from_corpus_notes"}
    no_answers = {**B, "response_delay_ms": {"n": 0, "p50": None, "p90": None}}
    rows = {r[0]: r[1:] for r in figure_rows(A, without_corpus)}
    assert rows["longest run copied from the corpus (notes)"] == ("6", "n/a", "n/a")
    rows = {r[0]: r[1:] for r in figure_rows(no_answers, A)}
    assert rows["response delay p50 (ms)"] == ("n/a", "500.0", "n/a")


def test_the_settings_that_differ() -> None:
    a = {"config": config(performance={"seed": 7}), "seed": 7,
         "model": {"path": "/m/demo.pt", "sha256": "c4da97745137628bc9bb"}}
    b_config = config(performance={"seed": 8}, model={"checkpoint": "other.pt",
                                                      "temperature": 0.5},
                      sections=[{"name": "intro", "bars": 4}], mqtt={"password": "s3cret"})
    b = {"config": b_config, "seed": 8, "model": {"path": "/m/run/best.pt", "sha256": None}}
    assert setting_rows(a, b) == [
        ("model.temperature", "0.9", "0.5"),
        ("mqtt.password", "(hidden)", "(hidden)"),
        ("performance.seed", "7", "8"),
        ("sections", "[]", "1 table"),  # a list of tables is compared table by table
        ("sections[0].bars", "(absent)", "4"),
        ("sections[0].chords", "(absent)", '""'),
        ("sections[0].mode", "(absent)", '""'),
        ("sections[0].name", "(absent)", "intro"),
        ("sections[0].spatial", "(absent)", '""'),
        # The checkpoint's text is relative to each config's folder: the files are compared.
        ("model file", "/m/demo.pt (sha256 c4da97745137)", "/m/run/best.pt"),
    ]
    assert setting_rows(a, a) == []


def test_the_page_holds_both_tables_and_both_rolls_escaped() -> None:
    rolls = [Picture("piano_roll_a.png", 1200, 500, "A <roll>", "Run A"),
             Picture("piano_roll_b.png", 1200, 500, "B", "Run B")]
    page = render_compare_page("demo: re-improvised side by side", ["A: x & y"],
                               [("performance.seed", "7", "8")], figure_rows(A, B), rolls)
    assert "<title>demo: re-improvised side by side</title>" in page
    assert '<p class="meta">A: x &amp; y</p>' in page
    assert "<tr><th>performance.seed</th><td>7</td><td>8</td></tr>" in page
    assert ('<tr><th>response delay p50 (ms)</th><td class="num">500.0</td>'
            '<td class="num">250.0</td><td class="num">-250.0</td></tr>') in page
    assert page.count("<img ") == 2 and 'alt="A &lt;roll&gt;"' in page
    assert "http" not in page  # nothing fetched from anywhere
    same = render_compare_page("t", [], [], figure_rows(A, A), rolls)
    assert "Nothing differs" in same
