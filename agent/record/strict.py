"""The strict replay: a log replayed with its own config and seed, each emitted message compared
with the recorded one as it is sent; the replay stops at the first that differs and says where.

Compared: the deadline (ns on the recording's clock: a replay runs on the recorded times), the
port, the bytes and why it was sent. Not compared: when it left (`t`), `ok` (a live port may have
refused it), and the deadline of an emit made at once (AT_ONCE), which live is the clock's reading
a moment after the event that caused it and in a replay that event's own time.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__, code_digest
from agent.errors import RecordingError
from agent.record.log import read_log
from agent.record.replay import Recording, replay_fast
from agent.record.scrub import BarMap, millis, timeline_of
from agent.record.session import log_path

# Emits made at once (a panic, the stop, a mute, a lost or returning port, a clock Stop).
AT_ONCE = frozenset({"stop", "panic", "mute", "clock-stop", "output-lost", "output-back"})
CONTEXT = 3  # matching emits shown before a divergence


@dataclass(frozen=True)
class EmitLine:
    """One emitted message as compared: deadline (ns on the recording's clock), port, data, why."""

    deadline_ns: int
    port: str
    data: str  # hex
    why: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> EmitLine:
        return cls(record["deadline"], record["port"], record["data"], record["why"])

    def key(self) -> tuple[int | None, str, str, str]:
        return (None if self.why in AT_ONCE else self.deadline_ns, self.port, self.data,
                self.why)

    def text(self, origin_ns: int) -> str:
        return f"{millis(self.deadline_ns - origin_ns)} ms {self.port} {self.data} {self.why}"


@dataclass(frozen=True)
class Divergence:
    index: int  # of the emit, from 0, in the recording's emits
    expected: EmitLine | None  # None: the recording had sent nothing more
    actual: EmitLine | None  # None: the replay ended without it
    matching: tuple[tuple[int, EmitLine], ...]  # the last few that matched (index, line)


class StrictWatch:
    """Compares a replay's emits, as they are logged, with the recorded ones (replay_fast's
    `watch`: True once they differ, which stops the replay).

    `cut`: the recording ends without its stop (the process was killed: the log holds what
    was written up to then, the last line maybe torn, the last unflushed records lost). Its
    emits are then a prefix of what the run sent, and the replay goes on past its end (it
    plays out what it planned, then stops with a panic): once every recorded emit has matched,
    the replay's next one is past the end of the recording, not a difference, and the watch
    stops the replay there."""

    def __init__(self, expected: Sequence[EmitLine], cut: bool = False) -> None:
        self.expected = expected
        self.cut = cut
        self.matched = 0
        self.divergence: Divergence | None = None
        self.past_end = False  # a cut recording's emits all matched, and the replay went on
        self._recent: collections.deque[tuple[int, EmitLine]] = collections.deque(
            maxlen=CONTEXT)

    def __call__(self, record: dict[str, Any]) -> bool:
        if self.divergence is not None or self.past_end:
            return True
        if record["k"] != "emit":
            return False
        actual, i = EmitLine.of(record), self.matched
        expected = self.expected[i] if i < len(self.expected) else None
        if expected is None and self.cut:
            self.past_end = True
            return True
        if expected is None or expected.key() != actual.key():
            self.divergence = Divergence(i, expected, actual, tuple(self._recent))
            return True
        self._recent.append((i, actual))
        self.matched += 1
        return False

    def finish(self) -> Divergence | None:
        """The divergence, if any, once the replay has ended (fewer emits is one too)."""
        if self.divergence is None and self.matched < len(self.expected):
            self.divergence = Divergence(self.matched, self.expected[self.matched], None,
                                         tuple(self._recent))
        return self.divergence


def first_divergence(expected: Sequence[EmitLine],
                     actual: Sequence[EmitLine]) -> Divergence | None:
    watch = StrictWatch(expected)
    for line in actual:
        if watch({"k": "emit", "deadline": line.deadline_ns, "port": line.port,
                  "data": line.data, "why": line.why}):
            break
    return watch.finish()


def format_divergence(d: Divergence, origin_ns: int, bars: BarMap | None) -> str:
    line = d.expected or d.actual
    assert line is not None
    where = f"{millis(line.deadline_ns - origin_ns)} ms from the start"
    if bars is not None and (beat := bars.describe(line.deadline_ns)):
        where += f", {beat}"
    lines = [f"diverged at emit {d.index} ({where})",
             "  expected " + (d.expected.text(origin_ns) if d.expected else
                              "nothing (the recording sent no more)"),
             "  replayed " + (d.actual.text(origin_ns) if d.actual else
                              "nothing (the replay ended)")]
    if d.matching:
        lines.append("the last matching emits:")
        lines += [f"  {i} {e.text(origin_ns)}" for i, e in d.matching]
    else:
        lines.append("no emit matched before it")
    return "\n".join(lines)


@dataclass(frozen=True)
class StrictResult:
    matched: int
    divergence: Divergence | None
    report: str  # what to print
    summary: dict[str, Any]  # the replay's


def strict_replay(path: Path, recording: Recording, out_dir: Path) -> StrictResult:
    """The whole log replayed with its own config and seed; its emits compared as they come."""
    if recording.config is None:
        raise RecordingError(f"{path}: --strict needs a stage-agent log: a MIDI file has no "
                             "recorded output to compare with")
    if recording.slice is not None:
        kind = "take" if recording.slice.get("reason") == "take" else "capture"
        raise RecordingError(f"{path}: --strict cannot check a {kind} (a slice of a "
                             "performance: the agent's state at its start was not recorded, "
                             "so its output cannot be reproduced)")
    header, records = read_log(log_path(path))
    line = timeline_of(records, recording, str(path))
    # A log without its stop record is one whose run was killed (a log's stop is its last
    # control; what follows it is the panic and the drain).
    watch = StrictWatch([EmitLine.of(r) for r in records if r["k"] == "emit"],
                        cut=recording.end_ns is None)
    summary = replay_fast(recording, recording.config, out_dir, str(path),
                          header={"strict": True}, watch=watch)
    divergence = watch.finish()
    if divergence is None:
        report = f"identical: {watch.matched} emitted messages matched"
        if watch.cut:
            report += (" (the log ends without its stop: its run was killed; what the replay "
                       "sent past the log's end was not compared)")
    else:
        report = format_divergence(divergence, line.origin_ns, line.bars)
    # What a byte-identical replay depends on: the code (logs before these fields: unknown).
    recorded = (header.get("agent_version", "unknown"), header.get("agent_code", "unknown"))
    if recorded != (__version__, code_digest()):
        report += (f"\nnote: recorded by stage-agent {recorded[0]} (code {recorded[1]}), "
                   f"replayed by {__version__} (code {code_digest()}): a difference may come "
                   "from the code's change")
    return StrictResult(watch.matched, divergence, f"{path}: {report}\nthe replay: {out_dir}",
                        summary)
