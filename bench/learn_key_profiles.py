"""Learn the default key model of agent/listen/harmony.py from the corpora's training splits.

Why learned: the published profiles come from other music (Temperley: textbook excerpts;
Aarden: Essen folksongs; Krumhansl-Kessler: listeners' ratings) and from pitch classes alone, so
they cannot tell a tune in G major from one in E minor when both keep to the same seven notes. The
corpora say how often each pitch class sounds in each mode, relative to the tonic their sources
give, and which note a piece opens on; both are learned here, from the training split only.

  profile   for each mode, the mean over works of each pitch class's share of the sounding time
            (duration-weighted, the work rotated so its tonic is C), averaged over the corpora
            with equal weight (the tunes outnumber the chorales 5 to 1); floored at PROFILE_FLOOR
            so that an unseen note is unlikely, never impossible.
  opening   for each mode, the distribution of the opening note (the lowest of the first onset)
            relative to the tonic, averaged the same way, floored at OPENING_FLOOR.
  prior     the share of minor keys, averaged the same way.

Modal tunes (O'Neill: "D mixolydian") count as the major or minor of their third, as the bench's
lenient scoring does. The two weights that combine the evidence (how many notes the profile counts
as; how much the opening note counts) are chosen with `--tune` on the validation splits, never on
the test splits, and printed with the constants.

    .venv/bin/python bench/learn_key_profiles.py            print the constants (about 10 s)
    .venv/bin/python bench/learn_key_profiles.py --tune     also the validation grid
    .venv/bin/python bench/learn_key_profiles.py --check    exit 1 unless harmony.py holds them
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from _common import REPO, heading
from key_accuracy import CORPORA, MODES, excerpt, parse_key

from agent.listen.harmony import PROFILES, KeyEvidence, KeyProfiles, estimate_key, key_evidence
from agent.model.corpus import Work, load_corpus

NAME = "corpus-trained"
PROFILE_FLOOR = 1e-3
OPENING_FLOOR = 0.05
DECIMALS = 5
EVIDENCE_WEIGHTS = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
OPENING_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHOSEN = (10.0, 0.25)  # (evidence_weight, opening_weight): what --tune found best

Example = tuple[int, str, KeyEvidence]  # tonic, "major" | "minor", evidence


def examples(works: list[Work], bars: int | None = None) -> list[Example]:
    """(tonic, mode by its third, evidence) of every work whose source names a mode."""
    out = []
    for w in works:
        if w.key is None:
            continue
        tonic, mode = parse_key(w.key)
        out.append((tonic, MODES[mode][0], key_evidence(*excerpt(w, bars))))
    return out


def _floored(p: np.ndarray, floor: float) -> tuple[float, ...]:
    p = (p + floor) / (1 + 12 * floor)
    return tuple(round(float(x), DECIMALS) for x in p)


def learn(corpora: list[list[Example]], evidence_weight: float = CHOSEN[0],
          opening_weight: float = CHOSEN[1]) -> KeyProfiles:
    """The key model of the examples: each corpus's means, then the mean over corpora."""
    shares: dict[str, list[np.ndarray]] = {"major": [], "minor": []}
    openings: dict[str, list[np.ndarray]] = {"major": [], "minor": []}
    minor = []
    for examples_ in corpora:
        for mode in shares:
            ex = [(t, e) for t, m, e in examples_ if m == mode]
            rotated = [np.roll(e.weights / e.weights.sum(), -t) for t, e in ex]
            shares[mode].append(np.mean(rotated, axis=0))
            opens = np.bincount([(e.opening - t) % 12 for t, e in ex if e.opening is not None],
                                minlength=12)
            openings[mode].append(opens / opens.sum())
        minor.append(np.mean([m == "minor" for _, m, _ in examples_]))
    profile = {m: _floored(np.mean(v, axis=0), PROFILE_FLOOR) for m, v in shares.items()}
    opening = {m: _floored(np.mean(v, axis=0), OPENING_FLOOR) for m, v in openings.items()}
    return KeyProfiles(NAME, profile["major"], profile["minor"],
                       opening=(opening["major"], opening["minor"]),
                       minor_share=round(float(np.mean(minor)), 3),
                       evidence_weight=evidence_weight, opening_weight=opening_weight)


def accuracy(model: KeyProfiles, examples_: list[Example]) -> float:
    """Share of examples whose estimated key has the source's tonic and third (lenient)."""
    right = 0
    for tonic, mode, ev in examples_:
        est = estimate_key(ev, model)
        right += est is not None and (est.tonic, est.mode) == (tonic, mode)
    return 100 * right / max(len(examples_), 1)


def source(model: KeyProfiles) -> str:
    """The model as the Python statement harmony.py holds."""
    def rows(values: tuple[float, ...], indent: int) -> str:
        cells = [f"{v:.{DECIMALS}f}" for v in values]
        lines = [", ".join(cells[i:i + 8]) for i in range(0, len(cells), 8)]
        return "(" + (",\n" + " " * (indent + 1)).join(lines) + ")"
    assert model.opening is not None
    return (f'PROFILES["{NAME}"] = KeyProfiles(\n'
            f'    "{NAME}",\n'
            f"    {rows(model.major, 4)},\n"
            f"    {rows(model.minor, 4)},\n"
            f"    opening=({rows(model.opening[0], 13)},\n"
            f"             {rows(model.opening[1], 13)}),\n"
            f"    minor_share={model.minor_share}, evidence_weight={model.evidence_weight}, "
            f"opening_weight={model.opening_weight})")


def tune(model: KeyProfiles, valid: dict[str, list[list[Example]]]) -> tuple[float, float]:
    """Accuracy on the validation splits (whole piece and first 4 bars) over the weight grid;
    the weights with the best mean of the four figures (the first of equals)."""
    heading("validation splits, lenient accuracy: whole piece / first 4 bars")
    print(f"  {'weights':<16}" + "".join(f"{n:>22}" for n in CORPORA) + "    mean")
    best, best_mean = CHOSEN, -1.0
    for ew in EVIDENCE_WEIGHTS:
        for ow in OPENING_WEIGHTS:
            m = dataclasses.replace(model, evidence_weight=ew, opening_weight=ow)
            figures = [accuracy(m, ex) for name in CORPORA for ex in valid[name]]
            cells = "".join(f"{figures[2 * i]:13.1f} / {figures[2 * i + 1]:4.1f}"
                            for i in range(len(CORPORA)))
            mean = float(np.mean(figures))
            print(f"  {ew:5.1f}, {ow:4.2f}    {cells}   {mean:5.2f}")
            if mean > best_mean + 1e-9:
                best, best_mean = (ew, ow), mean
    print(f"  best: evidence_weight {best[0]}, opening_weight {best[1]} (mean {best_mean:.2f})"
          + ("" if best == CHOSEN else f"; CHOSEN in this script says {CHOSEN}: update it"))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", type=Path, default=REPO / "corpora")
    ap.add_argument("--tune", action="store_true", help="print the validation grid")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless agent/listen/harmony.py holds the learned constants")
    args = ap.parse_args()
    train, valid = [], {}
    for name in CORPORA:
        corpus = load_corpus(args.corpora / name)
        ex = examples(corpus.split("train"))
        train.append(ex)
        counts = {m: sum(mode == m for _, mode, _ in ex) for m in ("major", "minor")}
        print(f"{name}: {len(ex)} training works ({counts['major']} major, "
              f"{counts['minor']} minor)")
        if args.tune:
            valid[name] = [examples(corpus.split("valid")),
                           examples(corpus.split("valid"), bars=4)]
    model = learn(train)
    if args.tune:
        ew, ow = tune(model, valid)
        model = dataclasses.replace(model, evidence_weight=ew, opening_weight=ow)
    opening = model.opening
    assert opening is not None
    heading("opening note relative to the tonic (before the floor), % of training works")
    for mode, dist in zip(("major", "minor"), opening, strict=True):
        raw = (np.array(dist) * (1 + 12 * OPENING_FLOOR) - OPENING_FLOOR) * 100
        top = np.argsort(-raw)[:4]
        print(f"  {mode}: " + ", ".join(f"+{int(i)} {raw[i]:.1f}%" for i in top))
    heading("the constants for agent/listen/harmony.py")
    print(source(model))
    if args.check:
        held = PROFILES.get(NAME)
        if held != model:
            print(f"\nagent/listen/harmony.py holds other constants for {NAME!r}: paste the "
                  "ones above", file=sys.stderr)
            sys.exit(1)
        print(f"\nagent/listen/harmony.py holds these constants for {NAME!r}.")


if __name__ == "__main__":
    main()
