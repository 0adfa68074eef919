"""Gestures evaluated per tick, the music choosing them, and the engine fed log records."""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.spatial.choreography import azimuth_of, direction, elevation_for, new_gesture
from agent.spatial.engine import (
    MAX_SAMPLES,
    PathRecords,
    SpatialEngine,
    sample_step_ns,
    trajectories,
)
from agent.spatial.trajectory import Gesture, clamp, position

S = 1_000_000_000
FRONT = (0.0, 1.0, 0.0)
LEFT = (-1.0, 0.0, 0.0)


def close(a: tuple[float, ...], b: tuple[float, ...], tol: float = 1e-9) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_a_glide_leaves_from_the_origin_and_arrives_on_time() -> None:
    g = Gesture("glide", 1 * S, FRONT, target=LEFT, arrive_ns=3 * S)
    assert close(position(g, 1 * S), FRONT)
    mid = position(g, 2 * S)  # smoothstep(0.5) = 0.5: half way in a straight line
    assert close(mid, (-0.5, 0.5, 0.0))
    assert close(position(g, 3 * S), LEFT) and close(position(g, 9 * S), LEFT)


def test_an_orbit_turns_left_at_its_speed_and_keeps_its_height() -> None:
    start = direction(0.0, 30.0, 0.9)
    g = Gesture("orbit", 0, start, speed=0.25)  # a quarter turn per second
    p = position(g, 1 * S)
    assert math.isclose(azimuth_of(p), 90.0, abs_tol=1e-9)  # ADM: +90 is the left
    assert math.isclose(p[2], start[2]) and p[0] < 0


def test_a_spiral_reaches_its_target_height() -> None:
    g = Gesture("spiral", 0, direction(0, 0), target=direction(0, 60), speed=0.1,
                duration_ns=2 * S)
    assert math.isclose(position(g, 2 * S)[2], math.sin(math.radians(60)))
    assert math.isclose(math.dist(position(g, 2 * S), (0, 0, 0)), 1.0)


def test_a_path_visits_its_points_in_order() -> None:
    points = (LEFT, (0.0, -1.0, 0.0))
    g = Gesture("path", 0, FRONT, points=points, duration_ns=2 * S)
    assert close(position(g, 1 * S), LEFT)
    assert close(position(g, 2 * S), (0.0, -1.0, 0.0))


def test_follow_closes_in_on_the_player() -> None:
    g = Gesture("follow", 0, FRONT, player="keys")
    far = position(g, 5 * S, followed=LEFT)
    assert math.dist(far, LEFT) < 0.01


@given(st.sampled_from(["static", "glide", "orbit", "spiral", "path", "wander", "follow"]),
       st.integers(0, 60 * S), st.floats(-1.0, 0.5), st.integers(0, 1 << 30))
def test_every_gesture_stays_inside_the_rig(kind: str, t: int, floor: float, seed: int) -> None:
    rng = random.Random(seed)
    pt = (rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-2, 2))
    g = Gesture(kind, 0, pt, target=pt, arrive_ns=S, speed=rng.uniform(-2, 2), points=(pt,),
                seed=seed)
    p = position(g, t, floor, followed=pt)
    assert math.dist(p, (0, 0, 0)) <= 1.0 + 1e-12
    assert p[2] >= floor - 1e-12


def test_clamp_keeps_a_dome_voice_above_the_floor() -> None:
    assert clamp((0.0, 0.5, -0.7), 0.0) == (0.0, 0.5, 0.0)
    assert close(clamp((0.0, 1.0, 0.0), 0.6), (0.0, 0.8, 0.6))  # a dome lifted off the floor
    assert close(clamp((3.0, 4.0, 0.0), -1.0), (0.6, 0.8, 0.0))


def test_unknown_gesture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown gesture 'loop'"):
        Gesture("loop", 0, FRONT)


def test_register_sets_the_elevation() -> None:
    assert elevation_for(36, 0.0) == 0.0 and elevation_for(96, 0.0) == 60.0
    assert elevation_for(66, 0.0) == 30.0
    assert elevation_for(20, -30.0) == 0.0  # never below the ear on its own


def test_an_answer_turns_toward_its_caller_and_arrives_on_its_first_note() -> None:
    caller = direction(-60.0, 0.0)  # the caller stands to the right
    g = new_gesture("orbit", "answer", 10 * S, 11 * S, FRONT, [60, 62, 64], S, caller, 0.0,
                    random.Random(1))
    assert g.kind == "glide" and g.arrive_ns == 11 * S
    assert math.isclose(azimuth_of(g.target), -60.0)
    assert math.isclose(math.degrees(math.asin(g.target[2])), elevation_for(62, 0.0))


def test_the_follow_style_stays_with_the_caller() -> None:
    e = SpatialEngine(floor_z=-1.0, players={"keys": LEFT}, style="follow", section_styles={},
                      seed=1, output="out")
    e.record({"t": 0, "k": "decision", "what": "answer", "plan": [[S, 60, 80, S]],
              "caller": "keys"})
    assert e.gestures["lead"].kind == "follow"
    e.players["keys"] = (0.0, -1.0, 0.0)  # the player walks to the back
    assert math.dist(e.where("lead", 10 * S), (0.0, -1.0, 0.0)) < 0.01


def test_a_denser_phrase_orbits_faster() -> None:
    slow = new_gesture("orbit", "solo", 0, 0, FRONT, [60] * 4, 4 * S, None, 0.0,
                       random.Random(3))
    fast = new_gesture("orbit", "solo", 0, 0, FRONT, [60] * 16, 4 * S, None, 0.0,
                       random.Random(3))
    assert abs(fast.speed) == pytest.approx(4 * abs(slow.speed))


def engine() -> SpatialEngine:
    return SpatialEngine(floor_z=0.0, players={"keys": direction(45.0, 0.0)}, style="orbit",
                         section_styles={"calm": "static"}, seed=7, output="out")


def test_the_engine_moves_the_lead_on_an_answer_and_marks_its_onsets() -> None:
    e = engine()
    plan = [[2 * S, 72, 90, S // 2], [3 * S, 74, 90, S // 2]]
    e.record({"t": S, "k": "decision", "what": "answer", "plan": plan, "caller": "keys"})
    e.record({"t": 2 * S, "k": "emit", "port": "out", "deadline": 2 * S, "data": "914890"})
    lead = e.where("lead", 2 * S)
    assert math.isclose(azimuth_of(lead), 45.0)  # arrived at the caller's side on the note
    (onset,) = e.drain()[0]
    assert (onset.voice, onset.pitch, onset.velocity) == (1, 0x48, 0x90)
    e.record({"t": 4 * S, "k": "decision", "what": "section", "name": "calm"})
    assert e.style == "static" and e.drain()[1] == ["calm"]
    e.record({"t": 5 * S, "k": "ctl", "what": "panic"})
    assert all(v.mute for v in e.frame(5 * S).voices)


def test_trajectories_sample_a_recording_at_the_tick_rate() -> None:
    records = [{"t": 0, "k": "in"}, {"t": S, "k": "decision", "what": "solo",
                                     "plan": [[S, 60, 80, S]]}, {"t": 2 * S, "k": "in"}]
    paths = trajectories(engine(), records, 50.0)
    assert [len(p) for p in paths.values()] == [101, 101]  # 0..2 s at 20 ms, both voices


H = 3600 * S


def test_a_long_run_is_sampled_at_most_max_samples_times_evenly() -> None:
    """Issue 14: drawing the paths at stop took ~2.4 s per hour of show, one frame per 20 ms
    tick (720,000 a voice for 4 hours). A 4-hour run now takes at most MAX_SAMPLES a voice."""
    records = [{"t": 0, "k": "in"}, {"t": S, "k": "decision", "what": "solo",
                                     "plan": [[S, 60, 80, S]]}, {"t": 4 * H, "k": "in"}]
    step = sample_step_ns(4 * H, 50.0)
    assert step == -(-4 * H // (MAX_SAMPLES - 1))  # 1.44 s
    paths = trajectories(engine(), records, 50.0)
    for path in paths.values():
        assert [t for t, _ in path] == list(range(0, 4 * H + 1, step))
        assert len(path) <= MAX_SAMPLES
    assert paths["lead"][0][1] != paths["lead"][-1][1]  # the solo moved it


@pytest.mark.timeout(60)
def test_a_huge_time_gap_takes_no_more_samples() -> None:
    """A log with one gap of 30 years (a bad clock, or a hostile file) sampled every 20 ms
    never ended, memory growing."""
    paths = trajectories(engine(), [{"t": 0, "k": "in"}, {"t": 10**18, "k": "in"}], 50.0)
    assert [len(p) for p in paths.values()] == [MAX_SAMPLES - 1] * 2



def every_record(e: SpatialEngine, records: list[dict[str, Any]], tick_hz: float
                 ) -> dict[str, list[tuple[int, tuple[float, float, float]]]]:
    """trajectories as it was: every record of the run, in order (the reference)."""
    out: dict[str, list[tuple[int, tuple[float, float, float]]]] = {v: [] for v in e.voices}
    t = records[0]["t"]
    step = sample_step_ns(max(r["t"] for r in records) - t, tick_hz, 50)
    for r in records:
        while t <= r["t"]:
            for name, voice in zip(e.voices, e.frame(t).voices, strict=True):
                out[name].append((t, (voice.x, voice.y, voice.z)))
            t += step
        e.record(r)
    return out


TIMES = st.integers(0, 20 * S)
RECORDS = st.one_of(
    st.builds(lambda t, what, pitch: {"t": t, "k": "decision", "what": what, "caller": "keys",
                                      "name": "calm", "plan": [[t + S, pitch, 90, S // 2]]},
              TIMES, st.sampled_from(["answer", "solo", "comp", "section", "yield"]),
              st.integers(40, 90)),
    st.builds(lambda t, port, data: {"t": t, "k": "emit", "port": port, "deadline": t,
                                     "data": data}, TIMES, st.sampled_from(["out", "other"]),
              st.sampled_from(["904890", "804800", "b04000"])),
    st.builds(lambda t, what: {"t": t, "k": "ctl", "what": what}, TIMES,
              st.sampled_from(["panic", "unmute", "mode"])),
    st.builds(lambda t: {"t": t, "k": "in", "player": "keys", "data": "903c40"}, TIMES),
    st.builds(lambda t: {"t": t, "k": "state", "what": "tempo", "bpm": 90}, TIMES),
)


@given(st.lists(RECORDS, min_size=1, max_size=40))
@example([{"t": 0, "k": "in"}, {"t": S, "k": "decision", "what": "section", "name": "calm"},
          {"t": 2 * S, "k": "decision", "what": "solo", "plan": [[3 * S, 60, 90, S]]},
          {"t": 10 * S, "k": "emit", "port": "out", "deadline": 0, "data": "903c40"}])
def test_the_paths_from_the_records_that_move_the_voices_are_the_paths_from_every_record(
        records: list[dict[str, Any]]) -> None:
    """A Session keeps only the records that move the voices (PathRecords), for the picture at
    the end of a run: the same samples as going through every record, times out of order too."""
    assert trajectories(engine(), records, 50.0, max_samples=50) == every_record(
        engine(), records, 50.0)


def test_the_kept_decisions_are_nothing_the_garbage_collector_walks() -> None:
    """A show's thousands of kept decisions (dicts of lists) made each full collection slower
    on stage; kept as text they add no object the collector tracks."""
    kept = PathRecords()
    for i in range(100):
        kept.add({"t": i * S, "k": "decision", "what": "comp", "plan": [[i * S, 60, 90, S]]})
    assert len(kept.records) == 100
    assert not any(gc.is_tracked(r) for r in kept.records)
    assert kept.sample(engine(), 50.0, max_samples=50) == every_record(
        engine(), [{"t": i * S, "k": "decision", "what": "comp", "plan": [[i * S, 60, 90, S]]}
                   for i in range(100)], 50.0)
