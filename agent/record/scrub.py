"""Loop and scrub: replay a window of a recording (seconds or bars), once or looped (the strict
replay, which checks a whole log, is in strict.py).

Times. A window is half-open, [from, to), in seconds from the recording's first record (a plain
MIDI file's: its first message). A replay's log starts at its first input, so a MIDI file and the
log of its replay share their seconds.

Bars come from the beat the agent heard, as its log recorded it:
- MIDI clock: with a player that `follow_clock`s and a Start in the log, bars are counted in clock
  ticks from the first Start (24 a beat; the first tick after Start begins bar 1).
- Onsets: else the tempo the agent published (`state` records `what: tempo`, and `tempo` records)
  carries the count from the players' first note (bar 1 beat 1; there are no downbeats to hear,
  so a pick-up counts as bar 1). Each bar line is `beats_per_bar` beats of that tempo after the
  previous one, moved onto the nearest player's note-on within a quarter of a beat of it (onto
  the first note of its chord), so a bar window begins with its downbeat and the count does not
  drift with the tempo heard.
Without either, `--bars` is refused (the error says why); `--from/--to` always works.

What the agent hears in a window: the players' input in it, and the recorded controls in it.
- A note sounding at `from` (begun before) is skipped, and so is its note-off; a note still held at
  `to` gets a note-off there. A clock running at `from` gets a Song Position and a Continue there.
- With the recording's own config, the agent starts where the piece was at `from`: the recorded
  section (a `cue`) and controls (a `controls`) are applied at `from`, as `ctl` records.
- Each pass of a loop begins with a `ctl` record `what: window` (`pass`, `passes`, `from_ns`,
  `to_ns`: the window on the recording's clock); pass k plays the window shifted by k-1 window
  lengths. The agent is not reset between passes: it keeps what it learned, as on stage.
- A window is a re-improvisation: the recorded model answers followed the whole performance, so
  the model runs in the replaying process (as for takes and captures: replay.replay_model).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from agent import midi
from agent.clock import NS_PER_S
from agent.config import Config
from agent.errors import EXIT_CONFIG, RecordingError, StageAgentError
from agent.events import Heard
from agent.listen.beat import MERGE_NS
from agent.record.log import read_log
from agent.record.replay import Control, Input, Recording
from agent.record.session import log_path

CLOCKS_PER_BEAT = 24
SNAP_BEATS = 0.25  # a bar line moves onto the nearest note-on this close to it (in beats)...
CHORD_NS = MERGE_NS  # ...or the first of its chord (notes this close together: beat.py)
WINDOW = "window"  # the ctl record that begins each pass
# Tempi taken from a log (bpm): no tracker gives others, and a bar of 1e-300 bpm (or 1e300)
# would overflow (or never end) the count.
TEMPO_RANGE = (1.0, 1000.0)
# Bar lines computed at most (beyond, BarMap carries on at the last bar's length): 27 hours at
# 240 bpm in 4/4, and a bound on the work for a log with a gap of years in it.
MAX_BARS = 100_000


# -- times and bars ---------------------------------------------------------------------------
def parse_seconds(text: str) -> int:
    """'12.5' -> 12_500_000_000 ns, exactly (no float rounding); >= 0."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r}: seconds must be a number >= 0")
    return int((value * NS_PER_S).to_integral_value())


def parse_bars(text: str) -> tuple[int, int]:
    """'5-8' -> (5, 8); '5' -> (5, 5). Bars count from 1; the last is included."""
    first, _, last = text.partition("-")
    try:
        a, b = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{text!r} is not a bar range like 5-8") from None
    if a < 1 or b < a:
        raise ValueError(f"{text!r}: bars count from 1 and the range must not run backwards")
    return a, b


def seconds(ns: int) -> str:
    """ns as seconds to the last digit that is not 0 ('12.5'): parse_seconds reads it back."""
    sign = "-" if ns < 0 else ""
    return f"{sign}{abs(ns) // NS_PER_S}.{abs(ns) % NS_PER_S:09d}".rstrip("0").rstrip(".")


def millis(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    return f"{sign}{abs(ns) // 1_000_000}.{abs(ns) % 1_000_000:06d}"


@dataclass(frozen=True)
class BarMap:
    """Where each bar starts (ns on the recording's clock): bar 1 at starts[0]; beyond the
    last known start the bars go on at the last bar's length."""

    starts: tuple[int, ...]  # at least two
    beats_per_bar: int
    source: str  # "MIDI clock" or "onsets"

    def start(self, bar: int) -> int:
        if bar <= len(self.starts):
            return self.starts[bar - 1]
        return self.starts[-1] + (bar - len(self.starts)) * (self.starts[-1] - self.starts[-2])

    def window(self, first: int, last: int) -> tuple[int, int]:
        """Bars first..last (inclusive) as [from, to) in ns."""
        return self.start(first), self.start(last + 1)

    def position(self, t_ns: int) -> tuple[int, float] | None:
        """(bar, beat) of a time, both from 1; None before bar 1."""
        if t_ns < self.starts[0]:
            return None
        bar = bisect.bisect_right(self.starts, t_ns)
        if bar == len(self.starts):  # past the known starts: at the last bar's length
            bar += (t_ns - self.starts[-1]) // (self.starts[-1] - self.starts[-2])
        begin, end = self.start(bar), self.start(bar + 1)
        return bar, 1 + (t_ns - begin) * self.beats_per_bar / (end - begin)

    def describe(self, t_ns: int) -> str:
        where = self.position(t_ns)
        return "" if where is None else f"bar {where[0]} beat {where[1]:.2f}"


def clock_bars(ticks: Sequence[int], beats_per_bar: int) -> tuple[int, ...]:
    """Bar starts from the times of the clock ticks since Start (tick 0 begins bar 1)."""
    return tuple(ticks[::beats_per_bar * CLOCKS_PER_BEAT])


def onset_bars(onsets: Sequence[int], tempi: Sequence[tuple[int, float]], beats_per_bar: int,
               until_ns: int) -> tuple[int, ...]:
    """Bar starts from the players' note-on times (sorted) and the tempo heard, (time, bpm) in
    time order (before the first, its bpm): from the first note to past `until_ns`, or to as
    far as BarMap can carry them on alone (see below)."""
    times = [t for t, _ in tempi]

    def period(t: float) -> float:
        return 60e9 / tempi[max(bisect.bisect_right(times, t) - 1, 0)][1]

    def after_beats(t: float, beats: float) -> float:
        while True:  # through each tempo in turn
            i = bisect.bisect_right(times, t)
            step = beats * period(t)
            if i == len(times) or t + step <= times[i]:
                return t + step
            beats -= (times[i] - t) / period(t)
            t = times[i]

    # Past the last onset and the last tempo change, bars no longer snap or change length:
    # BarMap carries them on at the last bar's length, exactly as they would be computed here,
    # so the count stops once a whole bar lies beyond both (not at until_ns, which a gap of
    # years puts a billion bars away), and at MAX_BARS in any case.
    last_event = max(onsets[-1], times[-1] if times else onsets[-1])
    starts = [onsets[0]]
    while len(starts) < 2 or (starts[-1] <= until_ns and starts[-2] <= last_event
                              and len(starts) <= MAX_BARS):
        line = after_beats(starts[-1], beats_per_bar)
        tolerance = SNAP_BEATS * period(line)
        lo = max(bisect.bisect_left(onsets, line - tolerance),
                 bisect.bisect_right(onsets, starts[-1]))
        near = onsets[lo:bisect.bisect_right(onsets, line + tolerance)]
        if not near:
            starts.append(round(line))
            continue
        nearest = min(near, key=lambda t: abs(t - line))
        starts.append(next(t for t in near if t >= nearest - CHORD_NS))  # its chord's first
    return tuple(starts)


# -- what a recording says about time -------------------------------------------------------
@dataclass(frozen=True)
class Timeline:
    origin_ns: int  # the first record: 0 s for --from/--to
    end_ns: int  # just after the last input, or the recorded stop if later (exclusive)
    bars: BarMap | None
    no_bars: str  # why there are none ("" when there are)
    sections: tuple[tuple[int, str], ...] = ()  # (time, name) of the recorded sections
    controls: tuple[tuple[int, dict[str, Any]], ...] = ()  # (time, controls) as recorded

    def start_state(self, t_ns: int) -> list[Control]:
        """Controls that put a fresh agent where the piece was at t_ns (recorded config only)."""
        out = []
        section = [name for t, name in self.sections if t <= t_ns]
        if section:
            out.append(Control(t_ns, "cue", {"section": section[-1]}))
        controls = [c for t, c in self.controls if t <= t_ns]
        if controls:
            out.append(Control(t_ns, "controls", controls[-1]))
        return out


def timeline(path: Path, recording: Recording) -> Timeline:
    """The recording's time: read from its log (a plain MIDI file has only its input)."""
    if recording.config is None:
        origin = min((i.time_ns for i in recording.inputs), default=0)
        return Timeline(origin, _end(recording), None,
                        f"{path} is a MIDI file, which holds no beat the agent heard: replay it, "
                        "then use --bars on the replay's log, or use --from/--to")
    _header, records = read_log(log_path(path))
    return timeline_of(records, recording, str(path))


def timeline_of(records: list[dict[str, Any]], recording: Recording, name: str) -> Timeline:
    assert recording.config is not None
    cfg: Config = recording.config
    per_bar = cfg.performance.beats_per_bar
    end = _end(recording)
    clock_players = {p.name for p in cfg.players if p.follow_clock}
    ticks: list[int] = []
    started = False
    onsets, tempi, sections, controls = [], [], [], []
    for r in records:
        if r["k"] == "in":
            data = bytes.fromhex(r["data"])
            if midi.is_note_on(data):
                onsets.append(r["t"])
            elif r["player"] in clock_players and data[:1] == bytes([midi.START]):
                started = True
            elif started and r["player"] in clock_players and data[:1] == bytes([midi.CLOCK]):
                ticks.append(r["t"])
        elif r["k"] == "tempo" or (r["k"] == "state" and r.get("what") == "tempo"):
            bpm = r.get("bpm")
            if bpm is not None and TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
                tempi.append((r["t"], float(bpm)))
        elif r["k"] == "state" and r.get("what") == "section":
            sections.append((r["t"], str(r["name"])))
        elif r["k"] == "state" and r.get("what") == "controls":
            # A run without a model blends no style ("styles": {}): no command can set that,
            # so it is left out of the controls put back at a window's start.
            controls.append((r["t"], {k: v for k, v in r.items() if k not in ("t", "k", "what")
                                      and not (k == "styles" and v == {})}))
    origin = records[0]["t"] if records else 0
    bars, why = None, ""
    if len(ticks) > per_bar * CLOCKS_PER_BEAT:
        bars = BarMap(clock_bars(ticks, per_bar), per_bar, "MIDI clock")
    elif onsets and tempi:
        bars = BarMap(onset_bars(sorted(onsets), sorted(tempi), per_bar, end), per_bar, "onsets")
    else:
        why = (f"{name}: the agent heard no beat in it: no tempo in its `state` or `tempo` "
               "records" + ("" if clock_players else " and no player follows MIDI clock")
               + " (use --from/--to)")
    return Timeline(origin, end, bars, why, tuple(sections), tuple(controls))


def _end(recording: Recording) -> int:
    last = max((i.time_ns + 1 for i in recording.inputs), default=0)
    return max(last, recording.end_ns or 0)


# -- windows ------------------------------------------------------------------------------------
def select_window(inputs: Sequence[Input], from_ns: int, to_ns: int) -> list[Input]:
    """What the agent hears of [from_ns, to_ns): see the module's docstring."""
    held: collections.Counter[tuple[str, int, int]] = collections.Counter()
    clocks: dict[str, list[int]] = {}  # player -> [running, ticks since Start]
    body: list[Input] = []
    for item in inputs:
        t = item.time_ns
        if t >= to_ns:
            continue
        if isinstance(item, Control):
            if t >= from_ns:
                body.append(item)
            continue
        data = item.data
        if t < from_ns:
            _follow_clock(clocks.setdefault(item.player, [0, 0]), data)
            continue
        key = (item.player, data[0] & 0x0F, data[1]) if len(data) == 3 else None
        if midi.is_note_on(data) and key is not None:
            held[key] += 1
        elif midi.is_note_off(data) and key is not None:
            if held[key] == 0:
                continue  # the note began before the window: skipped, and its note-off too
            held[key] -= 1
        body.append(item)
    resume: list[Input] = []
    for player, (running, ticks) in clocks.items():
        if running:
            position = min(ticks // 6, 0x3FFF)  # song position counts sixteenths
            resume += [Heard(from_ns, player, bytes((midi.SONG_POSITION, position & 0x7F,
                                                     position >> 7))),
                       Heard(from_ns, player, bytes((midi.CONTINUE,)))]
    ends = [Heard(to_ns, player, midi.note_off(channel, pitch))
            for (player, channel, pitch), n in held.items() for _ in range(n)]
    return resume + body + ends


def _follow_clock(state: list[int], data: bytes) -> None:
    status = data[0]
    if status == midi.START:
        state[:] = [1, 0]
    elif status == midi.CONTINUE:
        state[0] = 1
    elif status == midi.STOP:
        state[0] = 0
    elif status == midi.CLOCK:
        state[1] += 1
    elif status == midi.SONG_POSITION and len(data) == 3:
        state[1] = (data[1] | data[2] << 7) * 6


def looped(window: Sequence[Input], from_ns: int, to_ns: int, passes: int,
           start_state: Sequence[Control] = ()) -> list[Input]:
    """The window's input `passes` times back to back, each pass after a `window` marker; the
    start state (Timeline.start_state) only before the first."""
    out: list[Input] = []
    for k in range(passes):
        shift = k * (to_ns - from_ns)
        out.append(Control(from_ns + shift, WINDOW, {"pass": k + 1, "passes": passes,
                                                     "from_ns": from_ns, "to_ns": to_ns}))
        if k == 0:
            out += start_state
        out += [dataclasses.replace(i, time_ns=i.time_ns + shift) for i in window]
    return out


def window_recording(recording: Recording, line: Timeline, from_ns: int, to_ns: int,
                     passes: int = 1, own_config: bool = True) -> Recording:
    """The recording cut to [from_ns, to_ns) and looped: a recording of its own, replayed by
    replay_fast or replay_realtime. Without recorded model answers (a re-improvisation); played
    out to the end of the agent's last answer (no recorded stop)."""
    span = f"{seconds(from_ns - line.origin_ns)}-{seconds(to_ns - line.origin_ns)} s"
    if from_ns >= line.end_ns:
        raise RecordingError(f"the window {span} starts after the recording's end "
                             f"({seconds(line.end_ns - line.origin_ns)} s)")
    if not any(isinstance(i, Heard) and from_ns <= i.time_ns < to_ns for i in recording.inputs):
        raise RecordingError(f"the window {span} holds no input from the players (the recording "
                             f"runs 0-{seconds(line.end_ns - line.origin_ns)} s)")
    start = line.start_state(from_ns) if own_config else []
    inputs = looped(select_window(recording.inputs, from_ns, to_ns), from_ns, to_ns, passes,
                    start)
    return dataclasses.replace(recording, inputs=inputs, end_ns=None, model_answers=[])


# -- the command's options ----------------------------------------------------------------------
class OptionError(StageAgentError):
    """Replay options that do not go together (a usage error: exit 2, like argparse's)."""

    exit_code = EXIT_CONFIG


def scrub(path: Path, recording: Recording, own_config: bool, from_ns: int | None = None,
          to_ns: int | None = None, bars: tuple[int, int] | None = None,
          passes: int = 1) -> tuple[Recording, dict[str, Any]] | None:
    """`replay --from/--to/--bars/--loop`: the window to replay and the header field describing
    it (None: no window asked for, the whole recording once). --from/--to are ns from the
    recording's first record."""
    if from_ns is None and to_ns is None and bars is None and passes == 1:
        return None
    if bars is not None and (from_ns is not None or to_ns is not None):
        raise OptionError("--bars cannot be combined with --from/--to")
    if from_ns is not None and to_ns is not None and to_ns <= from_ns:
        raise OptionError(f"--to {seconds(to_ns)} must be after --from {seconds(from_ns)}")
    line = timeline(path, recording)
    if bars is not None:
        if line.bars is None:
            raise RecordingError(f"--bars: {line.no_bars}")
        start, end = line.bars.window(*bars)
    else:
        start = line.origin_ns + (from_ns or 0)
        end = line.origin_ns + to_ns if to_ns is not None else line.end_ns
    windowed = window_recording(recording, line, start, end, passes, own_config)
    return windowed, {"window": {
        "of": str(path), "from_s": seconds(start - line.origin_ns),
        "to_s": seconds(end - line.origin_ns), "bars": list(bars) if bars else None,
        "beat": line.bars.source if bars and line.bars else None, "passes": passes}}


def describe_window(window: dict[str, Any]) -> str:
    bars = f" (bars {window['bars'][0]}-{window['bars'][1]})" if window["bars"] else ""
    passes = f", {window['passes']} passes" if window["passes"] > 1 else ""
    return f"window {window['from_s']}-{window['to_s']} s of {window['of']}{bars}{passes}"
