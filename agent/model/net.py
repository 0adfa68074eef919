"""The network: a GRU over note events with factorised, constrainable output heads.

Reading (one step per event): the six tokens of the previous event are embedded and summed, plus
the style vector, and advance a single-layer GRU. Writing (the next event): the fields are
predicted one after another, each conditioned on the state and on the fields already chosen:

    role (given by the caller) -> pitch -> dt -> velocity -> duration

so any field can be constrained (masked) and the later fields follow from the constrained choice.
Position is not predicted: it follows from dt and the tempo.

Why a GRU and this size: on one CPU thread a step must cost well under 0.5 ms including sampling
(see bench/model_latency.py). A recurrent state makes a step O(1) in the history's length, where a
transformer without a KV cache recomputes its whole context per token.

Style: one learned vector per training corpus, added to every input. Any convex mixture of the
vectors is a valid style, which is how a performance blends corpora at run time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from agent.model import representation as rep

HEADS = ("pitch", "dt", "velocity", "duration")
HEAD_SIZES = {"pitch": rep.N_PITCHES, "dt": rep.N_DT, "velocity": rep.N_VELOCITY,
              "duration": rep.N_DURATION}
# Which already-chosen fields each head reads (besides the state and the role).
HEAD_INPUTS = {"pitch": (), "dt": ("pitch",), "velocity": ("pitch", "dt"),
               "duration": ("pitch", "dt", "velocity")}
FIELD_SIZES = {"role": rep.N_ROLES, "pitch": rep.N_PITCHES, "dt": rep.N_DT,
               "velocity": rep.N_VELOCITY, "duration": rep.N_DURATION,
               "position": rep.N_POSITIONS}


@dataclass(frozen=True)
class NetConfig:
    embed: int = 128
    hidden: int = 256
    head: int = 256
    n_styles: int = 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class EventNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inputs = nn.ModuleDict({f: nn.Embedding(n, cfg.embed) for f, n in FIELD_SIZES.items()})
        self.style = nn.Embedding(cfg.n_styles, cfg.embed)
        self.bos = nn.Parameter(torch.zeros(cfg.embed))
        self.gru = nn.GRU(cfg.embed, cfg.hidden, batch_first=True)
        # One projection of the state for all heads, done once per event: [hidden] -> [4, head].
        self.state_to_heads = nn.Linear(cfg.hidden, len(HEADS) * cfg.head)
        # query[head][field]: how an already-chosen field shifts that head's hidden layer.
        self.query = nn.ModuleDict({
            h: nn.ModuleDict({f: nn.Embedding(FIELD_SIZES[f], cfg.head)
                              for f in ("role", *HEAD_INPUTS[h])}) for h in HEADS})
        self.out = nn.ModuleDict({h: nn.Linear(cfg.head, HEAD_SIZES[h]) for h in HEADS})

    # -- shared pieces ----------------------------------------------------------------------
    def embed_events(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [..., 6] (rep.FIELDS order) -> [..., embed]."""
        return sum((self.inputs[f](tokens[..., i]) for i, f in enumerate(rep.FIELDS)),
                   torch.zeros((), dtype=self.bos.dtype))

    def style_vector(self, weights: torch.Tensor) -> torch.Tensor:
        """weights float [..., n_styles] (a mixture; rows sum to 1) -> [..., embed]."""
        return weights @ self.style.weight

    def head_logits(self, head: str, proj: torch.Tensor,
                    chosen: dict[str, torch.Tensor]) -> torch.Tensor:
        """proj [..., head] (this head's slice of state_to_heads); chosen: field -> int64 [...]."""
        hidden = proj
        for f, table in cast(nn.ModuleDict, self.query[head]).items():
            hidden = hidden + table(chosen[f])
        logits: torch.Tensor = self.out[head](F.relu(hidden))
        return logits

    def split_heads(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """state [..., hidden] -> head -> [..., head]."""
        proj = self.state_to_heads(state).unflatten(-1, (len(HEADS), self.cfg.head))
        return {h: proj[..., i, :] for i, h in enumerate(HEADS)}

    # -- training ---------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced logits for every event of a batch.

        tokens int64 [B, T, 6]; style float [B, n_styles]. Returns head -> logits [B, T, size]
        where position t predicts event t from events 0..t-1 (event t's role given).
        """
        x = self.embed_events(tokens)  # [B, T, E]
        x = torch.cat([self.bos.expand(x.shape[0], 1, -1), x[:, :-1]], dim=1)
        x = x + self.style_vector(style)[:, None, :]
        states, _ = self.gru(x)  # [B, T, H]
        heads = self.split_heads(states)
        chosen = {f: tokens[..., i] for i, f in enumerate(rep.FIELDS)}
        return {h: self.head_logits(h, heads[h], chosen) for h in HEADS}


def event_nll(net: EventNet, tokens: torch.Tensor, style: torch.Tensor, mask: torch.Tensor,
              velocity: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Summed negative log-likelihood (nats) per head over the events where mask is true.

    tokens [B, T, 6], style [B, n_styles], mask bool [B, T] (padding false). A player's duration
    is never scored (it is always UNKNOWN_DURATION). velocity bool [B]: whether each sequence's
    velocities are scored (None: all are); a fine-tune leaves out those of a corpus whose notes
    all have one velocity, so it does not teach the velocity head a flat line. Also returns the
    counts: "events", "notes" (every event is a note onset) and "durations" (scored durations).
    """
    logits = net(tokens, style)
    out: dict[str, torch.Tensor] = {}
    scored = {"duration": mask & (tokens[..., 0] == rep.AGENT),
              "velocity": mask if velocity is None else mask & velocity[:, None]}
    for i, h in enumerate(HEADS, start=1):
        nll = F.cross_entropy(logits[h].flatten(0, 1), tokens[..., i].flatten(),
                              reduction="none").view(mask.shape)
        out[h] = (nll * scored.get(h, mask)).sum()
    out["events"] = mask.sum()
    out["durations"] = scored["duration"].sum()
    return out
