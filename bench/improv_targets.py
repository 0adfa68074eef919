"""The improvising targets, measured on the demo and on held-out corpus pieces as the players.

Sources: the demo rehearsal (100 BPM, two players trading phrases), and the first N test works of
each corpus made into humanised rehearsals (agent.record.rehearsal) at 120 BPM with a rest of
four beats after every four bars, so that calls end and answers have room: a chorale's soprano
and bass are two players, an O'Neill tune is one. For each source and each mode the agent (with
models/demo.pt, the corpus's own style; the demo with its own performance.toml) replays the
rehearsal on the manual clock and `stage-agent evaluate` measures its part. Deterministic: the
same seed gives the same figures.

Per mode, over all pieces: agent notes; share in the key heard (pooled over notes); share in the
chord heard, for all notes and for the comp's own notes (accompanying); onset deviation from the
half-beat grid (median of the pieces' medians, and the pooled p90); responses to calls and the
share starting within one beat of the call's end; the longest run copied from a call and from
the corpus (the maximum over pieces). Tempo and key targets have their own benches
(bench/beat_tracking.py, bench/key_accuracy.py).

    .venv/bin/python bench/improv_targets.py [--pieces 6] [--modes call-response accompany ...]
        [--corpora DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import MODEL, REPO, corpus_config, heading, piece_config

from agent.config import Config
from agent.model.checkpoint import load
from agent.record.evaluate import evaluate_log
from agent.record.log import read_log
from agent.record.rehearsal import make_rehearsals
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME

MODES = ("call-response", "continue", "mirror", "accompany", "auto")
CORPORA = {"bach-chorales": "bach-chorales", "oneill-1850": "oneill-1850"}  # corpus -> style
DEMO = REPO / "performances" / "demo"
BPM = 120.0


def demo_config(mode: str) -> Config:
    """The demo's config in one mode throughout (without its sections)."""
    return piece_config(DEMO / "performance.toml", mode)


def run(rehearsal: Path, cfg: Config, out: Path, corpus_lines: np.ndarray) -> dict[str, Any]:
    rec = load_recording(rehearsal)
    replay_fast(rec, fit_config(rec, cfg), out, "targets")
    header, records = read_log(out / LOG_NAME)
    report = evaluate_log(header, records, corpus_lines)
    emitted = [r for r in records if r["k"] == "emit"]
    report["_grid_raw"] = report["grid_deviation_ms"]
    report["_emitted"] = len(emitted)
    return report


def pooled(reports: list[dict[str, Any]], share: str, weight: str) -> str:
    num = sum(r[share] * r[weight] for r in reports if r[share] is not None)
    den = sum(r[weight] for r in reports if r[share] is not None)
    return f"{100 * num / den:5.1f}%" if den else "  n/a "


def summarise(mode: str, reports: list[dict[str, Any]]) -> None:
    grid = [r["grid_deviation_ms"]["p50"] for r in reports
            if r["grid_deviation_ms"]["p50"] is not None]
    grid90 = [r["grid_deviation_ms"]["p90"] for r in reports
              if r["grid_deviation_ms"]["p90"] is not None]
    responses = sum(r["response_delay_beats"]["n"] for r in reports)
    within = sum((r["responses_within_a_beat"] or 0) * r["response_delay_beats"]["n"]
                 for r in reports)
    delays = [r["response_delay_beats"]["p50"] for r in reports
              if r["response_delay_beats"]["p50"] is not None]
    print(f"  {mode:<14} notes {sum(r['agent_notes'] for r in reports):5d}  "
          f"in key {pooled(reports, 'in_key', 'agent_notes')}  "
          f"in chord {pooled(reports, 'in_chord', 'agent_notes')}  "
          f"comp in chord {pooled(reports, 'comp_in_chord', 'comp_notes')} "
          f"(n={sum(r['comp_notes'] for r in reports)})")
    print(f"  {'':<14} grid p50 {np.median(grid) if grid else float('nan'):5.1f} ms "
          f"(p90 median {np.median(grid90) if grid90 else float('nan'):5.1f})  "
          f"responses {responses:3d}, within a beat "
          + (f"{100 * within / responses:5.1f}%" if responses else "  n/a ")
          + f" (median delay {np.median(delays) if delays else float('nan'):.2f} beats)  "
          f"copied: call {max(r['copied_from_call_notes'] for r in reports)}, corpus "
          f"{max(r.get('copied_from_corpus_notes', 0) for r in reports)} notes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=6, help="test works per corpus")
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora", help="built corpora")
    args = ap.parse_args()
    lines = load(MODEL).corpus_lines
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sources: list[tuple[str, Path, str | None]] = [("demo", DEMO / "rehearsal.mid", None)]
        for corpus, style in CORPORA.items():
            files = make_rehearsals(args.corpora / corpus, "test", tmp / corpus, args.pieces,
                                    args.seed, BPM, gaps_beats=4.0, gap_every_bars=4)
            sources += [(corpus, f, style) for f in files]
        for group in ("demo", *CORPORA):
            heading(f"{group}: "
                    + ("the demo rehearsal, 100 BPM" if group == "demo" else
                       f"{args.pieces} test works at {BPM:g} BPM, 4 beats' rest every 4 bars"))
            for mode in args.modes:
                reports = []
                for i, (name, path, style) in enumerate(s for s in sources if s[0] == group):
                    if style is None:
                        cfg = demo_config(mode)
                    else:
                        players = load_recording(path).player_names
                        cfg = corpus_config(players, mode, style)
                    reports.append(run(path, cfg, tmp / f"{name}-{mode}-{i}", lines))
                summarise(mode, reports)
    print(f"\n  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
