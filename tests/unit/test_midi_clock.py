"""MIDI clock following: tempo from jittery clocks, transport messages, clock loss."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import midi
from agent.listen.midi_clock import ClockFollower

CLOCK = bytes([midi.CLOCK])


@settings(max_examples=60, deadline=None)
@given(st.floats(60, 200), st.integers(0, 2**32))
def test_tempo_within_half_a_bpm_after_two_bars_with_5ms_jitter(bpm: float, seed: int) -> None:
    rng = random.Random(seed)
    follower = ClockFollower()
    follower.on_message(0, bytes([midi.START]))
    tick_ns = 60e9 / bpm / 24
    for i in range(1, 2 * 4 * 24 + 1):  # two bars of 4/4
        follower.on_message(round(i * tick_ns + rng.uniform(-5e6, 5e6)), CLOCK)
    estimate = follower.bpm()
    assert estimate is not None
    assert abs(estimate - bpm) < 0.5


@settings(max_examples=40, deadline=None)
@given(st.floats(60, 200), st.floats(0.85, 1.15).filter(lambda r: abs(r - 1) > 0.03),
       st.integers(0, 2**32))
def test_a_tempo_change_is_followed_within_two_bars(bpm: float, ratio: float, seed: int) -> None:
    """Two bars at one tempo, then two bars at another (3-15% away): the estimate follows."""
    rng = random.Random(seed)
    follower = ClockFollower()
    follower.on_message(0, bytes([midi.START]))
    t = 0.0
    for i in range(4 * 4 * 24):
        t += 60e9 / (bpm if i < 192 else bpm * ratio) / 24
        follower.on_message(round(t + rng.uniform(-5e6, 5e6)), CLOCK)
    estimate = follower.bpm()
    assert estimate is not None
    assert abs(estimate - bpm * ratio) < 0.5


def test_transport_and_song_position() -> None:
    f = ClockFollower()
    assert f.on_message(0, bytes([midi.START])) == "start" and f.running
    for i in range(10):
        f.on_message(i * 20_000_000, CLOCK)
    assert f.ticks == 10
    assert f.on_message(300_000_000, bytes([midi.STOP])) == "stop" and not f.running
    f.on_message(310_000_000, bytes([midi.SONG_POSITION, 8, 1]))  # 16ths = 8 + 128
    assert f.ticks == 136 * 6
    assert f.on_message(320_000_000, bytes([midi.CONTINUE])) == "continue" and f.running


def test_clock_loss_is_reported_once_after_500_ms() -> None:
    f = ClockFollower()
    f.on_message(0, bytes([midi.START]))
    for i in range(1, 30):
        f.on_message(i * 20_000_000, CLOCK)
    last = 29 * 20_000_000
    assert not f.check_loss(last + 400_000_000)
    assert f.check_loss(last + 600_000_000)
    assert not f.check_loss(last + 900_000_000)  # once
    assert f.bpm() is not None  # free-run at the last tempo


def test_a_burst_of_clocks_is_no_tempo() -> None:
    """Clocks delivered together (a stalled USB queue) would make a beat of microseconds: the
    agent would divide by it (a zero period) or tick every few microseconds."""
    f = ClockFollower()
    f.on_message(0, bytes([midi.START]))
    for i in range(24):
        f.on_message(1_000 * i, CLOCK)  # 24 clocks in 24 us: 2.5 million BPM
    assert f.bpm() is None
    for i in range(24, 224):  # then a real clock, at 120 BPM, for eight beats
        f.on_message(1_000_000_000 + (i - 24) * 20_833_333, CLOCK)
    bpm = f.bpm()
    assert bpm is not None and abs(bpm - 120) < 1
