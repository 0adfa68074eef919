"""`stage-agent train`, `eval` and `model card`: the model's commands (README "The model").

torch is imported only when one of these runs, so the other commands start quickly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.errors import EXIT_OK, ModelError, OutputError
from agent.model.freeze import DEFAULT_REHEARSE, FREEZE

CORPORA_DIR = Path("corpora")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = sub.add_parser("train", help="train the event model on one or more corpora, from "
                                         "scratch or from a checkpoint (--init)")
    train.add_argument("corpora", nargs="+", type=Path,
                       help="corpus folders (built with `stage-agent corpus build`); each "
                            "becomes a style (with --init: each not yet a style of the "
                            "checkpoint; one it was trained on is rehearsed)")
    train.add_argument("--out", type=Path, required=True,
                       help="folder for best.pt (the model to play with) and last.pt (resume)")
    train.add_argument("--minutes", type=float, default=10.0,
                       help="wall-clock budget: no epoch starts that would end past it "
                            "(default 10)")
    train.add_argument("--max-epochs", type=int, default=500)
    train.add_argument("--patience", type=int, default=4,
                       help="stop after this many epochs without a better validation score")
    train.add_argument("--batch", type=int, default=32)
    train.add_argument("--window", type=int, default=256, help="events per training sequence")
    train.add_argument("--lr", type=float, help="learning rate (default 2e-3; 1e-3 with --init "
                                                "--freeze none, which moves every weight)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--hidden", type=int, help="GRU state size (default 256; with --init: "
                                                  "the checkpoint's)")
    train.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda:N")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--init", type=Path, metavar="CHECKPOINT",
                       help="fine-tune: start from this checkpoint's weights and styles")
    train.add_argument("--freeze", choices=sorted(FREEZE), help="with --init, what learns: core "
                       f"= {FREEZE['core']}; none = {FREEZE['none']} (default core)")
    train.add_argument("--rehearse", type=float, metavar="SHARE",
                       help="with --init: each epoch also trains on SHARE times as many works of "
                            "the given corpora the checkpoint was trained on as of the new "
                            "ones, so the old styles are not forgotten (default 2)")
    train.set_defaults(run=_train)

    ev = sub.add_parser("eval", help="held-out likelihood, a MIDI sample, originality")
    ev.add_argument("checkpoint", type=Path)
    ev.add_argument("--corpora", type=Path, nargs="+", default=[CORPORA_DIR], metavar="DIR",
                    help="corpus folders to score (any corpus), or folders holding the model's "
                         "own corpora by name (default: corpora)")
    ev.add_argument("--style", metavar="NAME|blend",
                    help="score and sample in this style of the model, or `blend` (equal "
                         "weights over its styles); default: each corpus's own style, the "
                         "blend for a corpus that is not a style")
    ev.add_argument("--split", default="test", choices=("train", "valid", "test"))
    ev.add_argument("--sample", type=Path, help="write the sample here (default: next to the "
                                                "checkpoint, <name>.sample.mid)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--bound", type=int, default=12,
                    help="originality bound in notes for the sampler (default 12)")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(run=_eval)

    model = sub.add_parser("model", help="what a model checkpoint holds")
    model_sub = model.add_subparsers(required=True, metavar="ACTION")
    card = model_sub.add_parser("card", help="what went into a model: corpora, licences, "
                                             "parents, training, held-out figures")
    card.add_argument("checkpoint", type=Path)
    card.add_argument("--md", type=Path, metavar="FILE", help="also write the card as Markdown")
    card.set_defaults(run=_card)


def _train(args: argparse.Namespace) -> int:
    from agent.model.net import NetConfig
    from agent.model.train import TrainSettings, train

    if args.init is None:
        given = [o for o, v in (("--freeze", args.freeze), ("--rehearse", args.rehearse))
                 if v is not None]
        if given:
            raise ModelError(f"{', '.join(given)}: for a fine-tune only (with --init)")
    elif args.hidden is not None:
        raise ModelError("--hidden does not go with --init: the network's sizes are the "
                         "checkpoint's")
    freeze = args.freeze or "core"
    lr = args.lr if args.lr is not None else (
        1e-3 if args.init is not None and freeze == "none" else 2e-3)
    settings = TrainSettings(out=args.out, minutes=args.minutes, max_epochs=args.max_epochs,
                             patience=args.patience, batch=args.batch, window=args.window,
                             lr=lr, seed=args.seed, device=args.device, resume=args.resume,
                             net=NetConfig(hidden=args.hidden or 256), init=args.init,
                             freeze=freeze,
                             rehearse=DEFAULT_REHEARSE if args.rehearse is None else args.rehearse)
    train(args.corpora, settings)
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    from agent.model import checkpoint
    from agent.model.eval_checkpoint import evaluate, format_report

    ckpt = checkpoint.load(args.checkpoint)
    sample = args.sample or args.checkpoint.with_suffix(".sample.mid")
    report = evaluate(ckpt, args.corpora, args.split, args.seed, args.bound, sample, args.style)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return EXIT_OK


def _card(args: argparse.Namespace) -> int:
    from agent.model import checkpoint
    from agent.model.card import card, card_markdown, card_text

    data = card(checkpoint.load(args.checkpoint))
    print(card_text(data))
    if args.md is not None:
        try:
            args.md.write_text(card_markdown(data), encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{args.md}: cannot write the card: {e.strerror or e}") from None
        print(f"card: {args.md}")
    return EXIT_OK
