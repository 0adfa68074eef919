"""How the live agent talks to a model: feed what is played, ask for a phrase under a deadline.

Three implementations of one small interface (ModelClient):
- WorkerModel (worker.py): the model in its own process; the live service uses it.
- InlineModel: the model in this process, answering at once. Replay of a MIDI file uses it: on a
  manual clock no deadline can pass, and the result depends only on the seed.
- RecordedModel: answers with what the model answered in a recorded performance, so replaying a
  log reproduces the emitted MIDI byte for byte (PyTorch does not promise bit-identical results
  across releases or machines, so the log keeps outputs, not only seeds).

Every answer comes through `done(proposals or None, why)`: None means "play the fallback", and
why says which ("late", "restart", "starting", "nothing-allowed").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agent.config import Config, check_styles
from agent.model import representation as rep
from agent.model.proposals import Constraints, Proposal

if TYPE_CHECKING:
    from agent.model.proposer import Proposer
    from agent.record.log import EventLog
    from agent.schedule.scheduler import Scheduler

NS_PER_S = 1_000_000_000
# A checkpoint file is read whole (checkpoint.load) and hashed (the log header, model-reload):
# a larger file is refused, not read. The shipped model is 4 MB.
MAX_CHECKPOINT_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class ModelNote:
    """A proposed note in integer nanoseconds: what the plan is made from, live and in replay."""

    pitch: int
    dt_ns: int  # after the previous note of the phrase (the first: after the phrase starts)
    velocity: int
    duration_ns: int

    @staticmethod
    def of(p: Proposal) -> ModelNote:
        return ModelNote(p.pitch, round(p.dt_s * NS_PER_S), p.velocity,
                         round(p.duration_s * NS_PER_S))

    def to_log(self) -> list[int]:
        return [self.pitch, self.dt_ns, self.velocity, self.duration_ns]

    @staticmethod
    def from_log(row: list[int]) -> ModelNote:
        return ModelNote(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


Done = Callable[[list[ModelNote] | None, str], None]


@dataclass(frozen=True)
class PhraseRequest:
    notes: int
    constraints: Constraints
    beat_s: float | None = None  # tempo, when known
    start_beat: float | None = None  # the phrase's first beat in the bar, when known


class ModelClient(Protocol):
    styles: tuple[str, ...]  # the model's corpus styles (empty: not known, anything goes)

    def feed(self, t_ns: int, role: int, pitch: int, velocity: int, duration_s: float | None,
             beat_in_bar: float | None) -> None: ...

    def request(self, t_ns: int, req: PhraseRequest, deadline_ns: int, done: Done) -> None: ...

    def set_style(self, weights: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


ModelFactory = Callable[["Scheduler", "EventLog"], ModelClient]


def inline_factory(config: Config, guard_lines: np.ndarray | None = None) -> ModelFactory:
    """The configured model in this process (replay): loads the checkpoint now. `guard_lines`:
    more lines its copy guard covers (respond.memory_from's corpora)."""
    from agent.model import checkpoint  # torch only where a model runs here

    proposer = checkpoint.load(config.model_path()).proposer(
        config.performance.seed, config.model.originality_bound, guard_lines)
    check_styles(config, proposer.styles, config.model_path().name)
    proposer.set_style(config.style() or {proposer.styles[0]: 1.0})
    return lambda scheduler, log: InlineModel(proposer)


def recorded_factory(answers: list[dict[str, Any]]) -> ModelFactory:
    return lambda scheduler, log: RecordedModel(answers)


class EventTimes:
    """Turns absolute event times into the model's dt (seconds since the previous event)."""

    def __init__(self) -> None:
        self._last_ns: int | None = None

    def event(self, t_ns: int, role: int, pitch: int, velocity: int, duration_s: float | None,
              beat_in_bar: float | None) -> rep.ModelEvent:
        dt = 0.0 if self._last_ns is None else max(t_ns - self._last_ns, 0) / NS_PER_S
        self._last_ns = t_ns
        return rep.ModelEvent(role, pitch, dt, velocity, duration_s, beat_in_bar)


class InlineModel:
    def __init__(self, proposer: Proposer) -> None:
        self.proposer = proposer
        self.styles = tuple(proposer.styles)
        self._times = EventTimes()

    def feed(self, t_ns: int, role: int, pitch: int, velocity: int, duration_s: float | None,
             beat_in_bar: float | None) -> None:
        self.proposer.feed(self._times.event(t_ns, role, pitch, velocity, duration_s,
                                             beat_in_bar))

    def request(self, t_ns: int, req: PhraseRequest, deadline_ns: int, done: Done) -> None:
        notes = self.proposer.propose_phrase(req.notes, req.constraints, req.beat_s,
                                             req.start_beat)
        if notes:
            done([ModelNote.of(p) for p in notes], "model")
        else:
            done(None, "nothing-allowed")

    def set_style(self, weights: Mapping[str, float]) -> None:
        self.proposer.set_style(dict(weights))

    def close(self) -> None:
        pass


class RecordedModel:
    """Replays recorded answers in order (log records of kind "model", what "answer")."""

    styles: tuple[str, ...] = ()

    def __init__(self, answers: Iterable[dict[str, Any]]) -> None:
        self._answers = deque(answers)

    def feed(self, t_ns: int, role: int, pitch: int, velocity: int, duration_s: float | None,
             beat_in_bar: float | None) -> None:
        pass

    def request(self, t_ns: int, req: PhraseRequest, deadline_ns: int, done: Done) -> None:
        if not self._answers:
            done(None, "not-recorded")
            return
        answer = self._answers.popleft()
        notes = answer.get("notes")
        done(None if notes is None else [ModelNote.from_log(n) for n in notes], answer["why"])

    def set_style(self, weights: Mapping[str, float]) -> None:
        pass  # the recorded answers were made with the recorded styles

    def close(self) -> None:
        pass

