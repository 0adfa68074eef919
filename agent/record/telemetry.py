"""Live figures for the control plane's telemetry: recent, bounded, cheap to keep.

Fed the log's records through a tap (reaction latency from each emitted note's cause, the model's
answer times and fallbacks) and the loop's own lag by the service; `snapshot` gives the figures
of the most recent samples (each a ring of RECENT values), published at most once a second.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.schedule.scheduler import SchedulerStats
from agent.stats import Samples

RECENT = 500  # samples per figure: the last few seconds to minutes of playing


class Telemetry:
    def __init__(self) -> None:
        self.reaction = Samples(capacity=RECENT)
        self.model_wait = Samples(capacity=RECENT)
        self.loop_lag = Samples(capacity=RECENT)
        self.model_answers: Counter[str] = Counter()  # why -> count ("model" = in time)

    def tap(self, r: dict[str, Any]) -> None:
        k = r["k"]  # every log record passes here: one lookup
        if k == "emit" and "cause" in r:
            self.reaction.add(r["t"] - r["cause"])
        elif k == "model" and r.get("what") == "answer":
            self.model_wait.add(r["t"] - r["asked"])
            self.model_answers[r["why"]] += 1

    def snapshot(self, scheduler: SchedulerStats, input_dropped: int,
                 input_shed: int) -> dict[str, Any]:
        in_time = self.model_answers.get("model", 0)
        return {
            "reaction_ms": _rounded(self.reaction.summary_ms()),
            "model_wait_ms": _rounded(self.model_wait.summary_ms()),
            "lateness_ms": _rounded(scheduler.lateness.summary_ms()),
            "loop_lag_ms": _rounded(self.loop_lag.summary_ms()),
            "emitted": scheduler.emitted,
            "dropped": {"input": input_dropped, "output": scheduler.undelivered,
                        "shed": input_shed},
            "fallbacks": sum(self.model_answers.values()) - in_time,
        }


def _rounded(summary: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an empty figure is null."""
    return {k: (None if v != v else round(v, 3)) for k, v in summary.items()}
