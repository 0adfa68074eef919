"""Loop, scrub and strict replay, the pure parts: windows, bars, divergence."""

from __future__ import annotations

from typing import Any

import pytest

from agent import config as config_mod
from agent import midi
from agent.events import Heard
from agent.record.replay import Control, Recording
from agent.record.scrub import (
    MAX_BARS,
    WINDOW,
    BarMap,
    Timeline,
    clock_bars,
    looped,
    onset_bars,
    parse_bars,
    parse_seconds,
    seconds,
    select_window,
    timeline_of,
)
from agent.record.strict import EmitLine, first_divergence, format_divergence

S = 1_000_000_000
MS = 1_000_000
BEAT = 500 * MS  # 120 BPM
T0 = 7 * S  # where the constructed logs start


def test_seconds_are_read_exactly_and_written_back() -> None:
    assert parse_seconds("12.5") == 12_500_000_000
    assert parse_seconds("0.000000001") == 1
    assert parse_seconds("3") == 3 * S
    assert seconds(12_500_000_000) == "12.5" and seconds(3 * S) == "3" and seconds(1) == \
        "0.000000001"
    assert parse_seconds(seconds(9_613_750_001)) == 9_613_750_001
    for bad, why in (("x", "is not a number of seconds"), ("-1", "must be a number >= 0"),
                     ("nan", "must be a number >= 0")):
        with pytest.raises(ValueError, match=why):
            parse_seconds(bad)


def test_bar_ranges() -> None:
    assert parse_bars("5-8") == (5, 8)
    assert parse_bars("5") == (5, 5)
    for bad in ("0-2", "3-1", "a-b", "-2"):
        with pytest.raises(ValueError, match=bad):
            parse_bars(bad)


def test_onset_bars_follow_the_tempo_and_snap_to_the_downbeats() -> None:
    # Four bars of 4/4 at 120 BPM from T0: bar 2's downbeat played 40 ms late, bar 3 a rest,
    # bar 4's downbeat a chord whose second note is the nearest to the line.
    onsets = [T0 + i * BEAT for i in range(4)]
    onsets += [T0 + 4 * BEAT + 40 * MS, T0 + 5 * BEAT + 40 * MS]
    onsets += [T0 + 12 * BEAT - 25 * MS, T0 + 12 * BEAT - 5 * MS, T0 + 13 * BEAT]
    starts = onset_bars(onsets, [(T0 + S, 120.0)], 4, T0 + 13 * BEAT)
    assert starts == (T0, T0 + 4 * BEAT + 40 * MS, T0 + 8 * BEAT + 40 * MS,
                      T0 + 12 * BEAT - 25 * MS, T0 + 16 * BEAT - 25 * MS)


def test_onset_bars_change_with_the_tempo() -> None:
    # 120 BPM, then 60 BPM from one beat into bar 2: bar 2 lasts 1 + 3 * 2 beats of 120.
    starts = onset_bars([T0], [(T0, 120.0), (T0 + 5 * BEAT, 60.0)], 4, T0 + 6 * S)
    assert starts == (T0, T0 + 4 * BEAT, T0 + 11 * BEAT, T0 + 19 * BEAT)


def test_clock_bars_count_ticks_from_start() -> None:
    tick = BEAT // 24
    ticks = [T0 + i * tick for i in range(3 * 96 + 5)]
    assert clock_bars(ticks, 4) == (T0, T0 + 96 * tick, T0 + 192 * tick, T0 + 288 * tick)
    assert clock_bars(ticks, 3) == tuple(ticks[::72])


def test_bar_map_windows_and_positions() -> None:
    bars = BarMap((T0, T0 + 2 * S, T0 + 4 * S), 4, "onsets")
    assert bars.window(1, 1) == (T0, T0 + 2 * S)
    assert bars.window(2, 4) == (T0 + 2 * S, T0 + 8 * S)  # past the map: the last bar's length
    assert bars.position(T0 - 1) is None
    assert bars.position(T0) == (1, 1.0)
    assert bars.position(T0 + 2 * S + 3 * BEAT // 2) == (2, 2.5)
    assert bars.position(T0 + 7 * S) == (4, 3.0)
    assert bars.describe(T0 + 2 * S + 3 * BEAT // 2) == "bar 2 beat 2.50"


def cfg(follow_clock: bool = False, sections: bool = False) -> config_mod.Config:
    table: dict[str, Any] = {"players": [
        {"name": "keys", "port": "virtual:keys", "follow_clock": follow_clock},
        {"name": "bass", "port": "virtual:bass"}]}
    if sections:
        table["sections"] = [{"name": "a"}, {"name": "b", "mode": "accompany"}]
    return config_mod.from_dict(table)


def heard(t: int, player: str, *data: int) -> Heard:
    return Heard(t, player, bytes(data))


def record(item: Heard) -> dict[str, Any]:
    return {"t": item.time_ns, "k": "in", "player": item.player, "data": item.data.hex()}


def test_a_log_with_a_heard_tempo_has_bars_from_its_first_note() -> None:
    notes = [heard(T0 + S + i * BEAT, "keys", 0x90, 60, 80) for i in range(16)]
    records = [{"t": T0, "k": "model", "what": "ready"}, *map(record, notes),
               {"t": T0 + 3 * S, "k": "state", "what": "tempo", "bpm": 120.0,
                "confidence": 0.6, "source": "onsets"}]
    line = timeline_of(records, Recording(cfg(), list(notes), ["keys", "bass"], None), "x")
    assert line.origin_ns == T0 and line.end_ns == notes[-1].time_ns + 1
    assert line.bars is not None and line.bars.source == "onsets"
    assert line.bars.window(2, 3) == (T0 + 3 * S, T0 + 7 * S)
    assert line.bars.position(T0 + 5 * S + BEAT) == (3, 2.0)


def test_a_log_with_midi_clock_counts_bars_in_ticks() -> None:
    tick = BEAT // 24
    clock = [heard(T0, "keys", midi.START)]
    clock += [heard(T0 + 10 * MS + i * tick, "keys", midi.CLOCK) for i in range(2 * 96 + 1)]
    notes = [heard(T0 + 3 * S, "bass", 0x91, 40, 90)]  # a note off the clock's bar lines
    records = [*map(record, clock + notes),
               {"t": T0 + S, "k": "tempo", "bpm": 120.0}]
    line = timeline_of(records, Recording(cfg(follow_clock=True), clock + notes,
                                          ["keys", "bass"], None), "x")
    assert line.bars is not None and line.bars.source == "MIDI clock"
    assert line.bars.starts == (T0 + 10 * MS, T0 + 10 * MS + 96 * tick,
                                T0 + 10 * MS + 192 * tick)


def test_no_beat_heard_is_said() -> None:
    notes = [heard(T0, "keys", 0x90, 60, 80)]
    line = timeline_of(list(map(record, notes)),
                       Recording(cfg(), notes, ["keys", "bass"], None), "rec")
    assert line.bars is None
    assert line.no_bars == ("rec: the agent heard no beat in it: no tempo in its `state` or "
                            "`tempo` records and no player follows MIDI clock (use --from/--to)")


def test_a_gap_of_years_is_not_counted_bar_by_bar() -> None:
    """Bars past the last onset and tempo change go on at the last bar's length (BarMap), so
    the count stops there; with a note years later it stops at MAX_BARS (it went on for ever
    and filled the memory)."""
    far = T0 + 10**17  # three years
    starts = onset_bars([T0, T0 + BEAT, far], [(T0, 120.0)], 4, far + S)
    assert len(starts) == MAX_BARS + 1 and starts[:3] == (T0, T0 + 4 * BEAT, T0 + 8 * BEAT)
    bars = BarMap(starts, 4, "onsets")
    assert bars.start(50_000_001) == T0 + 50_000_000 * 4 * BEAT
    assert bars.position(far) == (50_000_001, 1.0)
    # A short recording stops a whole bar past its last onset and tempo change: the same
    # bars as counting on to `until` one by one, as it did.
    assert onset_bars([T0], [(T0, 120.0)], 4, T0 + 10**15) == (T0, T0 + 4 * BEAT,
                                                                 T0 + 8 * BEAT)


def test_tempi_no_tracker_gives_are_not_counted() -> None:
    """A tempo of 1e300 bpm made the bar count endless, one of 1e-300 overflowed it."""
    notes = [heard(T0 + i * BEAT, "keys", 0x90, 60, 80) for i in range(8)]
    for bpm in (1e300, 1e-300, 0.5, 1001.0):
        records = [*map(record, notes), {"t": T0, "k": "state", "what": "tempo", "bpm": bpm},
                   {"t": T0, "k": "tempo", "bpm": bpm}]
        line = timeline_of(records, Recording(cfg(), notes, ["keys", "bass"], None), "x")
        assert line.bars is None and "no tempo" in line.no_bars, bpm
    records.append({"t": T0, "k": "tempo", "bpm": 120.0})
    line = timeline_of(records, Recording(cfg(), notes, ["keys", "bass"], None), "x")
    assert line.bars is not None and line.bars.starts[:2] == (T0, T0 + 4 * BEAT)


def test_a_window_skips_notes_held_at_its_start_and_ends_notes_held_at_its_end() -> None:
    a, b = T0 + S, T0 + 3 * S
    inputs = [
        heard(T0, "keys", 0x90, 60, 80),            # held across the start: skipped
        heard(T0 + 100, "bass", 0xB1, 64, 127),     # before the window: not heard
        Control(T0 + 200, "mode", {"mode": "solo"}),  # likewise
        heard(a, "bass", 0x91, 40, 70),             # at the start: heard
        heard(a + 5, "keys", 0x80, 60, 0),          # the skipped note's off: dropped
        heard(a + 10, "keys", 0x90, 62, 80),
        Control(a + 20, "controls", {"density": 2.0}),
        heard(a + 30, "keys", 0x90, 62, 0),         # a note-off as velocity 0: heard
        heard(a + 40, "keys", 0x90, 64, 80),        # held at the end: released there
        heard(a + 40, "keys", 0x90, 64, 81),        # re-triggered: released twice
        heard(a + 50, "keys", 0xE0, 0, 64),         # pitch bend: heard
        heard(b, "bass", 0x81, 40, 0),              # at the end (excluded): replaced
        heard(b + 10, "keys", 0x80, 64, 0),
    ]
    assert select_window(inputs, a, b) == [
        heard(a, "bass", 0x91, 40, 70),
        heard(a + 10, "keys", 0x90, 62, 80),
        Control(a + 20, "controls", {"density": 2.0}),
        heard(a + 30, "keys", 0x90, 62, 0),
        heard(a + 40, "keys", 0x90, 64, 80),
        heard(a + 40, "keys", 0x90, 64, 81),
        heard(a + 50, "keys", 0xE0, 0, 64),
        heard(b, "bass", 0x81, 40, 0),
        heard(b, "keys", 0x80, 64, 0),
        heard(b, "keys", 0x80, 64, 0),
    ]


def test_a_running_clock_continues_at_the_window_start() -> None:
    a = T0 + S
    inputs = [heard(T0, "keys", midi.START)]
    inputs += [heard(T0 + 1 + i, "keys", midi.CLOCK) for i in range(50)]  # 50 ticks: 8 16ths
    inputs += [heard(a + 1, "keys", midi.CLOCK)]
    assert select_window(inputs, a, a + S) == [
        heard(a, "keys", midi.SONG_POSITION, 8, 0), heard(a, "keys", midi.CONTINUE),
        heard(a + 1, "keys", midi.CLOCK)]
    stopped = [*inputs[:-1], heard(a - 1, "keys", midi.STOP), inputs[-1]]
    assert select_window(stopped, a, a + S) == [heard(a + 1, "keys", midi.CLOCK)]


def test_a_loop_plays_the_window_again_after_a_marker() -> None:
    a, b = T0, T0 + 2 * S
    window = [heard(a + 1, "keys", 0x90, 60, 80), heard(b, "keys", 0x80, 60, 0)]
    start = [Control(a, "cue", {"section": "b"})]
    marker = {"passes": 2, "from_ns": a, "to_ns": b}
    assert looped(window, a, b, 2, start) == [
        Control(a, WINDOW, {"pass": 1, **marker}), start[0], *window,
        Control(b, WINDOW, {"pass": 2, **marker}),
        heard(b + 1, "keys", 0x90, 60, 80), heard(b + 2 * S, "keys", 0x80, 60, 0)]


def test_the_start_state_is_the_recorded_section_and_controls() -> None:
    line = Timeline(T0, T0 + 9 * S, None, "", sections=((T0 + S, "b"), (T0 + 4 * S, "c")),
                    controls=((T0 + S, {"mode": "accompany"}), (T0 + 2 * S, {"mode": "solo"})))
    assert line.start_state(T0) == []
    assert line.start_state(T0 + 3 * S) == [
        Control(T0 + 3 * S, "cue", {"section": "b"}),
        Control(T0 + 3 * S, "controls", {"mode": "solo"})]


def emits(n: int) -> list[EmitLine]:
    return [EmitLine(T0 + i * 100 * MS, "out", midi.note_on(2, 60 + i, 90).hex(), "planned")
            for i in range(n)]


def test_the_first_divergence_is_found_at_its_index() -> None:
    expected = emits(8)
    assert first_divergence(expected, expected) is None
    actual = [*expected[:5], EmitLine(T0 + 500 * MS, "out", "92415b", "planned"),
              *expected[6:]]
    d = first_divergence(expected, actual)
    assert d is not None and d.index == 5
    assert d.expected == expected[5] and d.actual == actual[5]
    assert [i for i, _ in d.matching] == [2, 3, 4]
    bars = BarMap((T0 - S, T0 + S), 4, "onsets")
    assert format_divergence(d, T0 - 2 * S, bars) == "\n".join([
        "diverged at emit 5 (2500.000000 ms from the start, bar 1 beat 4.00)",
        "  expected 2500.000000 ms out 92415a planned",
        "  replayed 2500.000000 ms out 92415b planned",
        "the last matching emits:",
        "  2 2200.000000 ms out 923e5a planned",
        "  3 2300.000000 ms out 923f5a planned",
        "  4 2400.000000 ms out 92405a planned",
    ])


def test_a_late_or_early_deadline_and_a_missing_or_extra_emit_diverge() -> None:
    expected = emits(3)
    late = [expected[0], EmitLine(expected[1].deadline_ns + 1, "out", expected[1].data,
                                  "planned"), expected[2]]
    d = first_divergence(expected, late)
    assert d is not None and d.index == 1
    d = first_divergence(expected, expected[:2])
    assert d is not None and (d.index, d.expected, d.actual) == (2, expected[2], None)
    assert format_divergence(d, T0, None).splitlines()[:3] == [
        "diverged at emit 2 (200.000000 ms from the start)",
        "  expected 200.000000 ms out 923e5a planned",
        "  replayed nothing (the replay ended)"]
    extra = EmitLine(T0 + S, "out", "823e00", "planned")
    d = first_divergence(expected, [*expected, extra])
    assert d is not None and (d.index, d.expected, d.actual) == (3, None, extra)
    assert format_divergence(d, T0, None).splitlines()[1] == \
        "  expected nothing (the recording sent no more)"
    d = first_divergence([], [extra])
    assert d is not None and format_divergence(d, T0, None).splitlines()[-1] == \
        "no emit matched before it"


def test_an_emit_made_at_once_is_compared_without_its_deadline() -> None:
    """Live, a panic's or the stop's deadline is the clock a moment after the event; replayed,
    the event's own time."""
    live = [EmitLine(T0 + 12_345, "out", "b27b00", "stop"),
            EmitLine(T0 + 12_345, "out", "b27b00", "panic")]
    replayed = [EmitLine(T0, "out", "b27b00", "stop"), EmitLine(T0, "out", "b27b00", "panic")]
    assert first_divergence(live, replayed) is None
    wrong = [EmitLine(T0, "out", "b27b00", "stop"), EmitLine(T0, "out2", "b27b00", "panic")]
    d = first_divergence(live, wrong)
    assert d is not None and d.index == 1
