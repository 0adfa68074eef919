"""The pedals in the agent: a note a pedal holds sounds for phrase ends, the chord, the roles and
the harmony voice; every path that silences the agent still releases everything."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import midi
from agent.listen.activity import RESTING, roles
from tests.pipeline.test_agent import MS, Run, phrase

ON, OFF, CC = 0x90, 0x80, 0xB0
# Until agent/pipeline.py routes the notes listening says have ended (Listening.sound, issue 13):
# delete this mark and its uses then (strict: they fail the run once they pass).


def test_a_pedal_held_note_blocks_the_phrase_end_until_the_pedal_lifts(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="call-response")
    run.at(0, "a", CC, 64, 127)
    end = phrase(run, "a", [60, 62, 64, 65, 67], 10)
    run.until(end + 1_500)
    assert run.notes_on() == []  # the keys are up, but the pedal holds the last notes
    run.at(end + 1_500, "a", CC, 64, 0)
    run.until(end + 8_000)
    assert run.notes_on()[0][0] == end + 1_500 + 500 + 100  # the gap and latency after the lift
    call = run.decisions("answer")[0]
    assert call["call_notes"] == 5


def test_a_pedal_never_lifted_lets_the_phrase_end_after_two_bars_of_keys_up(
        tmp_path: Path) -> None:
    """A pianist lets a phrase's end ring in the pedal; a pedal wired the wrong way round is
    down all night. After two bars (3 s without a tempo) with every key up, the phrase is over
    and the call holds the notes still ringing."""
    run = Run(tmp_path, mode="call-response")
    run.at(0, "a", CC, 64, 127)
    for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62]):  # 120 BPM, then keys up
        run.at(1000 + 500 * i, "a", 0x90, p, 100 if i % 4 == 0 else 70)
        run.at(1400 + 500 * i, "a", 0x80, p, 0)
    end = 1400 + 500 * 7
    run.until(end + 3_900)
    assert run.notes_on() == []  # two bars (4 s at 120 BPM) not yet gone
    run.until(end + 8_000)
    (call,) = run.decisions("answer")
    assert call["call_notes"] == 8  # the ringing notes are the call
    first = run.notes_on()[0][0]
    assert end + 4_000 <= first <= end + 4_000 + 600
    # Played again after that, under the same pedal: a new phrase, not the old notes again.
    for i, p in enumerate([72, 74, 76]):
        run.at(end + 9_000 + 500 * i, "a", 0x90, p, 80)
        run.at(end + 9_400 + 500 * i, "a", 0x80, p, 0)
    run.until(end + 16_000)
    assert [d["call_notes"] for d in run.decisions("answer")] == [8, 3]


def test_pedal_held_notes_count_in_the_chord_and_the_roles(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="call-response")
    agent = run.session.agent
    run.at(0, "a", CC, 64, 127)
    for p in (60, 64, 67):
        run.at(0, "a", ON, p, 80)
    for p in (60, 64, 67):
        run.at(300, "a", OFF, p, 0)
    run.until(6_000)  # two bars and more of rest: a player with no note sounding rests
    assert sorted(agent.hearing.held) == [("a", 0, 60), ("a", 0, 64), ("a", 0, 67)]
    chord = agent.hearing.chord(6_000 * MS)
    assert chord is not None and chord.name == "C"
    band = {n: a.summary(6_000 * MS) for n, a in agent.activity.items()}
    assert band["a"].holding and roles(band, 6_000 * MS)["a"] != RESTING
    run.at(6_000, "a", CC, 64, 0)
    assert agent.hearing.held == {}
    assert not agent.activity["a"].summary(6_000 * MS).holding
    assert not agent.listening.anyone_holding()


def test_harmony_notes_ring_while_the_sustain_pedal_holds_the_players(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="harmony")
    run.at(0, "a", CC, 64, 127)
    run.at(10, "a", ON, 60, 99)
    run.at(100, "a", OFF, 60, 0)
    run.at(200, "a", ON, 60, 90)  # struck again under the pedal: the old harmony note ends
    run.at(300, "a", OFF, 60, 0)
    run.at(900, "a", CC, 64, 0)
    assert run.out == [(10 * MS, bytes([0x90, 55, 99])), (200 * MS, bytes([0x80, 55, 0])),
                       (200 * MS, bytes([0x90, 55, 90])), (900 * MS, bytes([0x80, 55, 0]))]


def test_harmony_notes_follow_the_sostenuto_pedal(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="harmony")
    run.at(0, "a", ON, 60, 80)
    run.at(50, "a", CC, 66, 127)  # holds 60, not what comes after
    run.at(100, "a", ON, 64, 80)
    run.at(200, "a", OFF, 60, 0)
    run.at(300, "a", OFF, 64, 0)
    run.at(800, "a", CC, 66, 0)
    assert run.out == [(0, bytes([0x90, 55, 80])), (100 * MS, bytes([0x90, 59, 80])),
                       (300 * MS, bytes([0x80, 59, 0])), (800 * MS, bytes([0x80, 55, 0]))]


def pedalled_harmony(tmp_path: Path) -> Run:
    run = Run(tmp_path, mode="harmony")
    run.at(0, "a", CC, 64, 127)
    run.at(10, "a", ON, 60, 80)
    run.at(20, "b", ON, 67, 80)
    run.at(100, "a", OFF, 60, 0)
    run.at(110, "b", OFF, 67, 0)  # b has no pedal down: its harmony note ends
    run.until(500)
    return run


def test_panic_releases_harmony_notes_the_pedal_holds(tmp_path: Path) -> None:
    run = pedalled_harmony(tmp_path)
    run.session.control("panic", 500 * MS)
    run.at(900, "a", CC, 64, 0)  # the player's pedal lifts later: nothing more to release
    offs = [(t / MS, d) for t, d in run.out if midi.is_note_off(d)]
    assert offs == [(110, bytes([0x80, 62, 0])), (500, bytes([0x80, 55, 0]))]
    assert run.out[-3:] == [(500 * MS, bytes([0xB0, 64, 0])), (500 * MS, bytes([0xB0, 123, 0])),
                            (500 * MS, bytes([0xB0, 120, 0]))]
    assert run.session.scheduler.ledger.sounding() == []


def test_stop_mute_and_a_lost_player_release_harmony_notes_the_pedal_holds(
        tmp_path: Path) -> None:
    stop = pedalled_harmony(tmp_path / "stop")
    stop.session.stop(500 * MS)
    assert stop.session.scheduler.ledger.sounding() == []
    mute = pedalled_harmony(tmp_path / "mute")
    mute.session.control("mute", 500 * MS)
    assert mute.out[-1] == (500 * MS, bytes([0x80, 55, 0]))
    assert mute.session.scheduler.ledger.sounding() == []
    lost = pedalled_harmony(tmp_path / "lost")
    lost.session.control("port-lost", 500 * MS, player="a")
    assert lost.out[-1] == (500 * MS, bytes([0x80, 55, 0]))
    assert lost.session.scheduler.ledger.sounding() == []
    assert not lost.session.agent.listening.anyone_holding()


player_message = st.tuples(
    st.integers(0, 400),  # ms since the last message
    st.sampled_from(["a", "b"]),
    st.sampled_from([(ON, 60), (ON, 62), (OFF, 60), (OFF, 62), (CC, 64), (CC, 66),
                     (ON | 1, 60), (OFF | 1, 60), (CC | 1, 64)]),
    st.sampled_from([0, 80, 127]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(player_message, max_size=30), st.sampled_from(["panic", "stop", "mute"]))
def test_harmony_with_any_pedalling_leaves_nothing_sounding(
        tmp_path: Path, steps: list[tuple[int, str, tuple[int, int], int]], end: str) -> None:
    run = Run(tmp_path / str(len(list(tmp_path.iterdir()))), mode="harmony")
    t = 0
    for dt, player, (status, data1), value in steps:
        t += dt
        run.at(t, player, status, data1, value)
    if end == "stop":
        run.session.stop(t * MS)
    else:
        run.session.control(end, t * MS)
    assert run.session.scheduler.ledger.sounding() == []
    sounding: set[int] = set()
    for _, data in run.out:  # what a synth would be left with
        if midi.is_note_on(data):
            sounding.add(data[1])
        elif midi.is_note_off(data):
            sounding.discard(data[1])
    assert not sounding
    assert all(not (d[0] & 0xF0 == CC and d[1] == midi.CC_SUSTAIN and d[2] >= 64)
               for _, d in run.out)  # the agent never puts a pedal down
