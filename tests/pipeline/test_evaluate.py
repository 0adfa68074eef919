"""`stage-agent evaluate` on a replayed demo: figures that follow from the log exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.record.evaluate import evaluate
from agent.record.log import read_log
from tests.pipeline.test_replay import demo


def test_evaluate_figures_of_the_demo(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    summary = demo(tmp_path / "r", model=False)  # the Markov memory answers: no model figures
    report = evaluate(tmp_path / "r")
    assert report == evaluate(tmp_path / "r" / "log.jsonl")  # deterministic, folder or file
    assert report["player_notes"] == summary["notes_heard"] == 128
    assert report["agent_notes"] == summary["notes_played"]
    assert report["answers"] == summary["answers"]
    # An answer starts phrase_gap_ms (600) + output_latency_ms (100) after its call ends, or
    # sooner when the call ends at a phrase's closing strong beat (policy/beat_lock.py).
    delay = report["response_delay_ms"]
    assert delay["n"] == summary["answers"] and delay["p50"] <= delay["p90"] <= 700.0
    _header, records = read_log(tmp_path / "r" / "log.jsonl")
    delays = [(r["t"] - r["cause"]) / 1e6 for r in records if r["k"] == "emit" and "cause" in r]
    assert len(delays) == delay["n"] and max(delays) == 700.0 and min(delays) < 700.0
    assert -1.0 <= report["density_correlation"] <= 1.0
    assert 1 <= report["copied_from_call_notes"] <= 16  # the memory answers from what it heard
    assert "copied_from_corpus_notes" not in report
    assert report["in_key"] == 1.0  # the memory plays back what it heard: C major throughout
    assert 0.0 < report["in_chord"] < 1.0
    # The judge's figures, on the grid it finds with hindsight, beside its baselines.
    judge = report["judge"]
    assert judge["key"] == "C major"
    assert set(judge) >= {"agent", "static-triad", "random-in-key", "call-echo", "players"}
    assert judge["agent"]["comp.notes"] == 0  # call-response: no comp
    assert judge["agent"]["answers.notes"] > 0
    assert judge["players"]["comp.grid.on_grid"] >= 0.95  # the players are on the grid found
    assert judge["static-triad"]["comp.grid.on_grid"] == 1.0
    assert judge["call-echo"]["answers.lift"] > 0.5
    assert main(["evaluate", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"response delay (end of call -> first answer note) p50 {delay['p50']} ms" in out
    assert out.index("The judge") < out.index("own hearing of key, chord and beat (circular)")
