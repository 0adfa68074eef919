"""The agent's notes in a style, and how close they are to a corpus (issue 15, "the style is
heard"), for bench/own_style.py.

The procedure: each held-out work (a corpus's test split) becomes a humanised rehearsal
(agent.record.rehearsal: its top voice and bass as two players at the work's own tempo, every
second 4-bar phrase silent, so the agent has room to play alone; at the work's own velocities
where they vary, since a solo's velocity range follows the players', else at the rehearsal's
metric dynamics); the agent replays it on the
manual clock (fast, deterministic) in solo mode, with a checkpoint and a style blend: it plays a
phrase of its own at each phrase end and through each rest, until a player comes in. Its notes
are read from the log (agent.record.judge_log), turned into beats of the work's tempo, in the
key of the players' notes, and measured against the reference corpus's train split with
agent.record.style_match: pooled over pieces (every note counts once), and piece by piece for a
paired comparison of two settings with a bootstrap interval over pieces.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import corpus_config

from agent import config as config_mod
from agent.model.corpus import Work
from agent.record.judge_log import agent_notes, player_notes
from agent.record.log import read_log
from agent.record.rehearsal import Style, perform_timed, to_smf, work_rng
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME
from agent.record.style_match import (
    Histograms,
    StyleDistance,
    played_line,
    style_distance,
    work_lines,
)

GAP_EVERY_BARS = 4  # the silent phrases' length
BOOTSTRAP = 1000  # resamples of the pieces for the paired interval


@dataclass(frozen=True)
class Setting:
    """A model and a style blend to replay with; `beat_lock` other than the default's (1: every
    onset on its own eighth, so a chord the model proposes is played as an arpeggio; 0: as
    proposed)."""

    label: str
    checkpoint: Path
    styles: dict[str, float]
    beat_lock: float | None = None

    def unlocked(self) -> Setting:
        return Setting(f"{self.label}, beat_lock 0", self.checkpoint, self.styles, 0.0)


@dataclass(frozen=True)
class Rehearsal:
    work: str
    path: Path  # the MIDI file
    beat_s: float  # the tempo it is played at (quarter notes)
    metre: tuple[int, int]


@dataclass(frozen=True)
class PieceRun:
    """The agent's part over one rehearsal."""

    work: str
    histograms: Histograms
    velocities: tuple[int, ...]
    phrases: int  # solo phrases decided
    from_model: int  # of them, played from the model (the others from the live memory)


def make_rehearsals(works: Sequence[Work], metres: dict[str, tuple[int, int]], seed: int,
                    out: Path) -> list[Rehearsal]:
    out.mkdir(parents=True, exist_ok=True)
    made: list[Rehearsal] = []
    for work in sorted(works, key=lambda w: w.id):
        metre = metres.get(work.id, (4, 4))
        dynamics = Style(written_velocity=np.unique(work.velocity).size > 1)
        parts, _ = perform_timed(work, work_rng(seed, work.id), time_signature=metre,
                                 silent_phrases=True, gap_every_bars=GAP_EVERY_BARS,
                                 style=dynamics)
        path = out / f"{len(made):03d}.mid"  # imported ids may hold any character
        to_smf(parts, work.bpm, time_signature=metre).save(path)
        made.append(Rehearsal(work.id, path, 60.0 / work.bpm, metre))
    return made


def solo_run(rehearsal: Rehearsal, setting: Setting, out: Path) -> PieceRun:
    rec = load_recording(rehearsal.path)
    cfg = corpus_config(rec.player_names, "solo", setting.styles, rehearsal.metre,
                        setting.checkpoint)
    if setting.beat_lock is not None:
        table = cfg.to_dict()
        table["respond"]["beat_lock"] = setting.beat_lock
        cfg = config_mod.from_dict(table, cfg.source)
    replay_fast(rec, fit_config(rec, cfg), out, "own-style")
    header, records = read_log(out / LOG_NAME)
    notes = agent_notes(records, header["config"]["agent"]["outputs"][0])
    solos = [r for r in records if r["k"] == "decision" and r.get("what") == "solo"]
    line = played_line(notes, rehearsal.beat_s, player_notes(records))
    return PieceRun(rehearsal.work, Histograms.of([line]), tuple(n.velocity for n in notes),
                    len(solos), sum(r.get("source") == "model" for r in solos))


def solo_runs(rehearsals: Sequence[Rehearsal], setting: Setting, out: Path) -> list[PieceRun]:
    return [solo_run(r, setting, out / f"{i:03d}") for i, r in enumerate(rehearsals)]


def corpus_histograms(works: Sequence[Work]) -> list[Histograms]:
    """One per work: its voices, in its own key."""
    return [Histograms.of(work_lines(w)) for w in works]


def pooled(histograms: Sequence[Histograms]) -> Histograms:
    total = histograms[0]
    for h in histograms[1:]:
        total = total + h
    return total


@dataclass(frozen=True)
class Paired:
    """Setting A against setting B on the same pieces: pooled mean distance A - B with a 95%
    bootstrap interval over pieces, and how many pieces are closer with A (piece by piece)."""

    difference: float
    low: float
    high: float
    closer: int
    pieces: int


def paired(a: Sequence[PieceRun], b: Sequence[PieceRun], reference: Histograms,
           seed: int = 0) -> Paired:
    kept = [(x.histograms, y.histograms) for x, y in zip(a, b, strict=True)
            if x.histograms.length.sum() and y.histograms.length.sum()]
    if not kept:
        raise ValueError("no piece where both settings played")

    def gap(idx: Sequence[int]) -> float:
        return (style_distance(pooled([kept[i][0] for i in idx]), reference).mean
                - style_distance(pooled([kept[i][1] for i in idx]), reference).mean)

    rng = random.Random(seed)
    n = len(kept)
    draws = [gap([rng.randrange(n) for _ in range(n)]) for _ in range(BOOTSTRAP)]
    closer = sum(style_distance(x, reference).mean < style_distance(y, reference).mean
                 for x, y in kept)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Paired(gap(range(n)), float(low), float(high), closer, n)


def velocity_figures(velocities: Sequence[int]) -> str:
    if not velocities:
        return "no notes"
    v = np.asarray(velocities, dtype=np.float64)
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return (f"{int(v.min())}-{int(v.max())}, p5/p50/p95 {p5:.0f}/{p50:.0f}/{p95:.0f}, "
            f"sd {v.std():.1f}, {len(np.unique(v))} distinct")


def distance_row(label: str, h: Histograms, reference: Histograms, extra: str = "") -> str:
    if not h.length.sum():
        return f"  {label:<46} no notes"
    d: StyleDistance = style_distance(h, reference)
    return (f"  {label:<46} {d.pitch_class:6.3f} {d.interval:6.3f} {d.length:6.3f} "
            f"{d.mean:6.3f}  {int(h.length.sum()):6d}  {extra}")
