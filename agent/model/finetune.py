"""`stage-agent train CORPUS... --init CHECKPOINT`: a new model grown from a trained one.

The checkpoint's styles keep their rows and their order; each corpus whose name is not already a
style adds a row, started at the mean of the old rows (the equal blend of the old styles, which
the model already plays well), so the new style starts as a sound the model knows and moves
from there. The corpora given fall in two kinds:

- *new*: a corpus the checkpoint was not trained on (by name and hash; a rebuilt or smaller
  corpus under an old style's name is new data for that style). Every epoch trains on each of
  their training works, and early stopping looks at their validation split alone.
- *rehearsed*: a corpus the checkpoint was trained on, exactly. A share of its training works
  (`rehearse` times the new works, split between the rehearsed corpora) is drawn afresh every
  epoch and trained with its own style, so the weights the styles share do not forget it; its
  validation split is scored before and after the run, and the checkpoint records both. Its
  velocities are scored even when flat: what is rehearsed is what the parent plays in that style
  (a flat corpus's style plays its one velocity), and unscored, the shared velocity head drifted
  to the new corpus's dynamics in the old styles too (`--freeze core` on the madrigals: the
  chorales' test bits per event +0.29, of it +0.26 the velocity head).

What learns (`freeze`):
- `core`: only what a small corpus can teach: the style rows of the added styles and the output
  heads (`state_to_heads`, the `query` tables, the `out` layers). The input embeddings, `bos`,
  the GRU and the old style rows stay bit-exact: the model reads music as before, and an old
  style's input is the same vector. (Notochord's `--freeze-rnn` freezes the same reading part.)
- `none`: every weight, old style rows included.

A new corpus whose notes all have one velocity has its velocities left out of the loss and of
the validation bits (net.event_nll): it has nothing to teach the velocity head but a flat line,
which would drown the dynamics of the corpora that have them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.errors import ModelError
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.corpus import Corpus
from agent.model.freeze import FREEZE, HEAD_MODULES
from agent.model.heldout import scored
from agent.model.net import EventNet
from agent.model.plan import Plan, TrainWork, flat_velocity, record


def finetune_plan(corpora: list[Corpus], init: Path, freeze: str, rehearse: float) -> Plan:
    """The plan of a fine-tune of checkpoint `init` on `corpora` (see the module's doc)."""
    if freeze not in FREEZE:
        raise ModelError(f"--freeze {freeze!r}: one of {', '.join(FREEZE)}")
    if rehearse < 0:
        raise ModelError(f"--rehearse {rehearse:g}: must be 0 or more")
    parent = checkpoint.load(init)
    known = {(c["name"], c["hash"]) for c in parent.corpora}
    new = [c for c in corpora if (c.name, c.hash) not in known]
    old = [c for c in corpora if (c.name, c.hash) in known]
    if not new:
        given = ", ".join(c.name for c in corpora)
        raise ModelError(f"{init} was trained on every corpus given ({given}): a fine-tune "
                         "needs at least one corpus it has not seen")
    added = [c.name for c in new if c.name not in parent.styles]
    styles = (*parent.styles, *added)
    net = grow_styles(parent.net, len(added))
    params = trainable(net, freeze, len(parent.styles))
    index = {s: i for i, s in enumerate(styles)}
    # Scored velocities: a new corpus's unless flat; a rehearsed corpus's always (module doc).
    scores = {c.name: flat_velocity(c) is None for c in new} | {c.name: True for c in old}

    def works(c: Corpus) -> tuple[TrainWork, ...]:
        return tuple(TrainWork(w, index[c.name], scores[c.name]) for w in c.split("train"))

    new_works = tuple(w for c in new for w in works(c))
    rehearsal = tuple(works(c) for c in old)
    run: dict[str, Any] = {
        "kind": "finetune", "parent": {"path": str(init), "sha256": parent.sha256},
        "corpora": [c.name for c in new], "added": added, "rehearsed": [c.name for c in old],
        "rehearse": rehearse, "freeze": freeze, "trained": FREEZE[freeze],
        "velocity_not_scored": [c.name for c in new if not scores[c.name]]}
    return Plan(
        net=net, styles=styles, params=tuple(params), works=new_works,
        valid=tuple(s for c in new for s in scored(c.split("valid"), index[c.name],
                                                   scores[c.name])),
        corpora=(*parent.corpora, *(record(c) for c in new)),
        # The copy guard covers every corpus the model was ever trained on: the parent's lines
        # (each line ends in a separator, so the two arrays join as one).
        lines=np.concatenate([parent.corpus_lines,
                              rep.copy_lines(w for c in new for w in c.works)]),
        run=run, runs=tuple(parent.history()), rehearsal=rehearsal,
        rehearsal_draw=round(rehearse * len(new_works) / len(old)) if old else 0,
        old_valid={c.name: tuple(scored(c.split("valid"), index[c.name], True)) for c in old})


def grow_styles(net: EventNet, added: int) -> EventNet:
    """A copy of `net` with `added` more style rows, each the mean of the old rows."""
    grown = EventNet(replace(net.cfg, n_styles=net.cfg.n_styles + added))
    state = net.state_dict()
    rows = state["style.weight"]  # [n_styles, embed]
    state["style.weight"] = torch.cat([rows, rows.mean(0, keepdim=True).expand(added, -1)])
    grown.load_state_dict(state)
    return grown.train()


def trainable(net: EventNet, freeze: str, old_styles: int) -> list[torch.Tensor]:
    """Mark what learns under `freeze` (requires_grad); returns those parameters."""
    if freeze == "none":
        return [p.requires_grad_(True) for p in net.parameters()]
    learn = [net.style.weight] + [p for m in HEAD_MODULES
                                  for p in net.get_submodule(m).parameters()]
    learning = {id(q) for q in learn}
    for p in net.parameters():
        p.requires_grad_(id(p) in learning)
    # One table holds every style row: the old rows' gradient is zeroed, so Adam (no weight
    # decay) never moves them: a zero gradient keeps its moments at zero and its step at zero.
    keep = torch.zeros(net.style.weight.shape[0], 1)
    keep[old_styles:] = 1.0
    net.style.weight.register_hook(lambda grad: grad * keep)  # type: ignore[no-untyped-call]
    return learn
