"""The model's contract with the policy: feed(event), propose(constraints), reset().

The proposer holds the recurrent state. `feed` advances it by one heard or played note;
`propose` samples the next agent note under constraints without changing the state, so a policy
can ask again, or ask for several alternatives. A phrase is proposed by `propose_phrase`, which
rolls out on a copy of the state; the policy then feeds the notes it actually plays.

Per-event cost is what the live agent pays, so a step is a handful of numpy calls on one thread:
the six input embeddings are one fused table (one gather and a sum), the GRU cell is two
matrix-vector products, and the state's projection for every head is computed once per feed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from agent.model import representation as rep
from agent.model.net import FIELD_SIZES, HEADS, EventNet
from agent.model.originality import ALL_PITCHES, CopyGuard
from agent.model.proposals import ANYTHING, Constraints, Proposal


@dataclass
class _State:
    hidden: np.ndarray  # float32 [hidden]
    heads: np.ndarray  # float32 [4, head]: the state's share of every head's hidden layer
    agent_line: deque[int]  # the agent's recent pitches (originality guard)


class _NumpyWeights:
    """The trained network's weights as numpy arrays, and the same arithmetic as EventNet.

    Why numpy at inference: one event is a few matrix-vector products, where this torch build
    spends ~40 us per call against numpy's ~14 us (bench/model_latency.py). Training uses torch;
    tests/unit/test_model.py checks that both give the same logits.
    """

    def __init__(self, net: EventNet) -> None:
        def arr(t: Any) -> np.ndarray:
            result: np.ndarray = t.detach().numpy().astype(np.float32).copy()
            return result

        sizes = [FIELD_SIZES[f] for f in rep.FIELDS]
        self.offsets = np.cumsum([0, *sizes[:-1]])
        # Fused input table: row offsets[f] + token is field f's embedding of that token.
        self.table = np.concatenate([arr(net.inputs[f].weight) for f in rep.FIELDS])
        self.style = arr(net.style.weight)  # [n_styles, embed]
        self.bos = arr(net.bos)
        g = net.gru
        self.hidden = net.cfg.hidden
        self.w_ih, self.w_hh = arr(g.weight_ih_l0), arr(g.weight_hh_l0)  # [3H, E], [3H, H]
        self.b_ih, self.b_hh = arr(g.bias_ih_l0), arr(g.bias_hh_l0)
        self.w_heads = arr(net.state_to_heads.weight)  # [4 * head, H]
        self.b_heads = arr(net.state_to_heads.bias)
        self.head = net.cfg.head
        self.query = {h: {f: arr(e.weight) for f, e in cast(Any, net.query[h]).items()}
                      for h in HEADS}
        self.out = {h: (arr(net.out[h].weight), arr(net.out[h].bias)) for h in HEADS}

    def gru_step(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """torch.nn.GRU's cell: gates r, z and candidate n, in PyTorch's [r, z, n] row order."""
        H = self.hidden
        gi = self.w_ih @ x + self.b_ih
        gh = self.w_hh @ h + self.b_hh
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        result: np.ndarray = (1.0 - z) * n + z * h
        return result

    def heads(self, h: np.ndarray) -> np.ndarray:
        result: np.ndarray = (self.w_heads @ h + self.b_heads).reshape(len(HEADS), self.head)
        return result

    def logits(self, head: str, proj: np.ndarray, chosen: Mapping[str, int]) -> np.ndarray:
        hidden = proj.copy()
        for f, table in self.query[head].items():
            hidden += table[chosen[f]]
        w, b = self.out[head]
        result: np.ndarray = w @ np.maximum(hidden, 0.0) + b
        return result


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return result


class Proposer:
    def __init__(self, net: EventNet, styles: tuple[str, ...], guard: CopyGuard | None = None,
                 seed: int = 0) -> None:
        self.styles = styles
        self.guard = guard
        self._rng = np.random.default_rng(seed)
        # Where in its velocity bin a note falls: a stream of its own, so the notes (pitch,
        # time, length) a seed gives stay the same whatever the touch.
        self._touch = np.random.default_rng([seed, 1])
        self._w = _NumpyWeights(net)
        self._fed = 0
        self.set_style({styles[0]: 1.0})

    # -- state ------------------------------------------------------------------------------
    def set_style(self, weights: Mapping[str, float]) -> None:
        """Blend the corpora's styles, e.g. {"bach-chorales": 0.7, "oneill-1850": 0.3}
        (`blend` then holds the weights normalised, without the styles weighing 0)."""
        unknown = set(weights) - set(self.styles)
        if unknown:
            raise ValueError(f"unknown style {sorted(unknown)}; this model knows {self.styles}")
        mix = np.array([max(float(weights.get(s, 0.0)), 0.0) for s in self.styles])
        if mix.sum() <= 0:
            raise ValueError("style weights must not all be zero")
        self.blend = {s: round(float(w), 6) for s, w in zip(self.styles, mix / mix.sum(),
                                                           strict=True) if w > 0}
        self._style: np.ndarray = ((mix / mix.sum()) @ self._w.style).astype(np.float32)
        if not self._fed:  # nothing heard yet: start afresh in the new style
            self.reset()

    def reset(self) -> None:
        hidden = self._w.gru_step(self._w.bos + self._style, np.zeros(self._w.hidden, np.float32))
        self._state = _State(hidden, self._w.heads(hidden), deque(maxlen=64))
        self._fed = 0

    def feed(self, event: rep.ModelEvent) -> None:
        tokens = rep.encode(event)
        index = self._w.offsets + np.array((tokens.role, tokens.pitch, tokens.dt,
                                            tokens.velocity, tokens.duration, tokens.position))
        x = self._w.table[index].sum(0) + self._style
        hidden = self._w.gru_step(x, self._state.hidden)
        self._state = replace(self._state, hidden=hidden, heads=self._w.heads(hidden))
        self._fed += 1
        if event.role == rep.AGENT:
            self._state.agent_line.append(tokens.pitch)

    @property
    def style_vector(self) -> np.ndarray:
        """The current style (a mixture of the corpora's vectors), float32 [embed]."""
        return self._style.copy()

    @property
    def hidden(self) -> np.ndarray:
        """A copy of the recurrent state, float32 [hidden]."""
        return self._state.hidden.copy()

    def logits(self, head: str, chosen: Mapping[str, int]) -> np.ndarray:
        """The next event's logits for one head, given the fields chosen before it.

        chosen: "role" and the fields this head reads (net.HEAD_INPUTS), e.g. {"role": 0} for
        the pitch head. float32 [size of the head].
        """
        return self._w.logits(head, self._state.heads[HEADS.index(head)], chosen)

    def pitch_log_probs(self, role: int) -> np.ndarray:
        """log P(pitch | everything fed so far, role), natural log, float64 [128]."""
        z = self.logits("pitch", {"role": role}).astype(np.float64)
        z -= z.max()
        result: np.ndarray = z - np.log(np.exp(z).sum())
        return result

    # -- sampling ---------------------------------------------------------------------------
    def propose(self, c: Constraints = ANYTHING, role: int = rep.AGENT) -> Proposal | None:
        """A next note within the constraints, or None if they allow nothing."""
        chosen = {"role": role}
        allowed = self._pitch_mask(c)
        if role == rep.AGENT and self.guard is not None:
            copies = self.guard.forbidden(self._state.agent_line, ALL_PITCHES)
            if copies is not None:
                allowed &= ~copies
        if not allowed.any():
            return None
        masks = (allowed, self._dt_mask(c), self._velocity_mask(c), _DURATION_KNOWN)
        picks = {}
        for i, (head, mask) in enumerate(zip(HEADS, masks, strict=True)):
            if head == "duration" and role != rep.AGENT:
                break
            picks[head] = self._sample(self._w.logits(head, self._state.heads[i], chosen), mask, c)
            chosen[head] = picks[head]
        dt = min(max(float(rep.DT_VALUES[picks["dt"]]), c.dt_min_s), c.dt_max_s)
        # Anywhere in the chosen bin (16 velocities wide), not its centre: the bins' centres
        # alone gave a solo three loudness steps where the corpus had seventy velocities.
        velocity = min(max(rep.velocity_in_bin(picks["velocity"], self._touch.random()),
                           c.velocity_min), c.velocity_max)
        duration = float(rep.DUR_VALUES[picks["duration"]]) if "duration" in picks else 0.0
        return Proposal(int(picks["pitch"]), dt, velocity, duration)

    def propose_phrase(self, notes: int, c: Constraints = ANYTHING,
                       beat_s: float | None = None, start_beat: float | None = None
                       ) -> list[Proposal]:
        """Up to `notes` agent notes in a row, rolled out on a copy of the state.

        beat_s/start_beat (tempo known): positions advance with the proposed times.
        """
        saved = self._state
        self._state = replace(saved, agent_line=deque(saved.agent_line, maxlen=64))
        out: list[Proposal] = []
        beat = start_beat
        try:
            for _ in range(notes):
                p = self.propose(c)
                if p is None:
                    break
                out.append(p)
                if beat is not None and beat_s:
                    beat += p.dt_s / beat_s
                self.feed(rep.ModelEvent(rep.AGENT, p.pitch, p.dt_s, p.velocity, p.duration_s,
                                         beat))
        finally:
            self._state = saved
        return out

    def _sample(self, logits: np.ndarray, mask: np.ndarray, c: Constraints) -> int:
        z = np.where(mask, logits * (1.0 / max(c.temperature, 1e-3)), -np.inf)
        p = np.exp(z - z.max())
        if c.top_p < 1.0:
            order = np.argsort(-p)
            mass = np.cumsum(p[order])
            # Keep the most likely choices until they hold top_p of the mass (at least one).
            p[order[mass - p[order] >= c.top_p * mass[-1]]] = 0.0
        # Inverse CDF with one uniform draw (Generator.choice costs ~20 us per call).
        cdf = np.cumsum(p)
        return int(np.searchsorted(cdf, self._rng.random() * cdf[-1], side="right"))

    @staticmethod
    def _pitch_mask(c: Constraints) -> np.ndarray:
        mask = (c.low <= ALL_PITCHES) & (c.high >= ALL_PITCHES)
        if c.pitch_classes is not None:
            classes = np.zeros(12, dtype=bool)
            classes[list(c.pitch_classes)] = True
            mask &= classes[ALL_PITCHES % 12]
        return mask

    @staticmethod
    def _dt_mask(c: Constraints) -> np.ndarray:
        mask = (c.dt_min_s <= rep.DT_VALUES) & (c.dt_max_s >= rep.DT_VALUES)
        if not mask.any():  # a narrow window between two bins: take the bin nearest to it
            mask[np.argmin(np.abs(rep.DT_VALUES - (c.dt_min_s + c.dt_max_s) / 2))] = True
        return mask

    @staticmethod
    def _velocity_mask(c: Constraints) -> np.ndarray:
        low_edge = np.arange(rep.N_VELOCITY) * 16
        mask = (low_edge + 15 >= c.velocity_min) & (low_edge <= c.velocity_max)
        return mask if mask.any() else np.ones(rep.N_VELOCITY, dtype=bool)


_DURATION_KNOWN = np.arange(rep.N_DURATION) != rep.UNKNOWN_DURATION
