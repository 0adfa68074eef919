"""Our event model side by side with Notochord: per-event cost, held-out pitch bits, training time.

- feed+propose per event on one CPU thread (torch.set_num_threads(1); our proposer also runs its
  numpy on one BLAS thread): feed the previous note, propose the next within pitches 40-90, as
  bench/notochord_peer.feed_query_latency does for Notochord's default and small configs;
- held-out pitch bits per note on the test split of the model's corpora, computed identically
  for both: for every note of every test work, -log2 P(pitch | every earlier event, this note's
  role), with the roles of representation.eval_roles (Notochord: player = instrument 1, agent =
  instrument 2); Notochord checkpoints trained by `bench/notochord_peer.py train` on the same
  corpora and split, with the same wall-clock budget;
- how long our checkpoint took to reach its best validation score (from the checkpoint).

    bash bench/setup_notochord.sh   # once: the optional peer
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/model_vs_notochord.py \
        --checkpoint models/demo.pt --notochord small=NC_SMALL.ckpt default=NC_DEFAULT.ckpt
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: one thread, as the worker

import numpy as np
import torch
from _common import REPO, heading, show, show_ratio

from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.corpus import load_corpus
from agent.model.heldout import heldout_bits, scored
from agent.model.proposals import Constraints

LATENCY_PITCHES = Constraints(low=40, high=90)
WARMUP = 50


def our_latency(path: Path, n_events: int, seed: int) -> list[float]:
    """ns per event: feed the previous note, then propose the next (as Notochord's loop)."""
    proposer = checkpoint.load(path).proposer(seed)
    rng = np.random.default_rng(seed)
    times = []
    for k in range(n_events + WARMUP):
        event = rep.ModelEvent(rep.PLAYER, int(rng.integers(40, 91)),
                               float(rng.uniform(0.0, 1.0)), int(rng.integers(30, 110)), None,
                               None)
        t0 = time.perf_counter_ns()
        proposer.feed(event)
        proposer.propose(LATENCY_PITCHES, role=rep.PLAYER)
        t1 = time.perf_counter_ns()
        if k >= WARMUP:
            times.append(float(t1 - t0))
    return times


def our_pitch_bits(path: Path, corpora: Path, split: str) -> dict[str, float]:
    ckpt = checkpoint.load(path)
    out = {}
    items = []
    for i, meta in enumerate(ckpt.corpora):
        works = load_corpus(corpora / meta["name"]).split(split)
        items += scored(works, i)
    own = heldout_bits(ckpt.net, items)
    out["own style"] = own.pitch_bits_per_note
    out["notes"] = own.events
    # The same works with every style equally blended: no help from knowing the corpus.
    n = ckpt.net.cfg.n_styles
    out["blended style"] = heldout_bits(ckpt.net, items,
                                        style=torch.full((n,), 1.0 / n)).pitch_bits_per_note
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "models" / "demo.pt")
    p.add_argument("--corpora", type=Path, default=REPO / "corpora")
    p.add_argument("--notochord", nargs="*", default=[],
                   help="NAME=CHECKPOINT of Notochord models trained on the same corpora")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    import notochord_peer as peer

    heading(f"feed+propose per event, one CPU thread, {args.events} events")
    ours = show("ours (numpy step)", our_latency(args.checkpoint, args.events, args.seed),
                target="p99 <= 0.5 ms")
    peers = {}
    if not peer.installed():
        print("  (notochord is not installed: the peer is left out; "
              "bash bench/setup_notochord.sh installs it)")
    for config in ("default", "small") if peer.installed() else ():
        model = peer.build_notochord(config)
        peers[config] = show(f"notochord {config} ({peer.param_count(model) / 1e6:.1f}M)",
                             peer.feed_query_latency(model, args.events, args.seed))
    size = sum(p.numel() for p in checkpoint.load(args.checkpoint).net.parameters())
    print(f"  ours: {size / 1e6:.2f}M parameters")
    for config, s in peers.items():
        show_ratio(f"p99 notochord {config} / ours", s.p99, ours.p99, "peer / ours")

    heading(f"held-out pitch bits per note ({args.split} split of the model's corpora)")
    bits = our_pitch_bits(args.checkpoint, args.corpora, args.split)
    for label in ("own style", "blended style"):
        print(f"  ours, {label:<28} {bits[label]:7.3f} bits/note  ({bits['notes']} notes)")
    corpora = [args.corpora / c["name"] for c in checkpoint.load(args.checkpoint).corpora]
    works = [w for c in corpora for w in load_corpus(c).split(args.split)]
    for spec in args.notochord:
        name, path = spec.split("=", 1)
        total, count = peer.notochord_pitch_bits(peer.load_notochord(Path(path)), works)
        print(f"  notochord {name:<24} {total / count:7.3f} bits/note  ({count} notes)")
        show_ratio(f"notochord {name} / ours (own style)", total / count, bits["own style"],
                   "peer / ours")

    ckpt = checkpoint.load(args.checkpoint)
    heading("training (from the checkpoint)")
    t = ckpt.train
    print(f"  best validation {t['best_valid_bits']:.3f} bits/event at epoch {t['best_epoch']}"
          f" of {t['epochs']}, reached after {t['seconds_to_best']:.0f} s "
          f"(target <= 600 s on 2 cores); run {t['seconds']:.0f} s")


if __name__ == "__main__":
    main()
