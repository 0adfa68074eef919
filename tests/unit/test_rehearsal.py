"""Rehearsals from corpus pieces: who plays what, timing and dynamics within their bounds, gaps,
byte-identical files under a seed, and files the replay reads with the right players."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import itertools
import math
import random
from pathlib import Path

import mido
import numpy as np
import pytest

from agent import midi
from agent.events import Heard
from agent.model.corpus import Corpus, Work, build_corpus
from agent.record.rehearsal import (
    LEAD_IN_BEATS,
    Style,
    accent,
    beat_length,
    humanise_note,
    make_rehearsals,
    perform,
    to_smf,
    wander_time,
)
from agent.record.replay import load_recording

REPO = Path(__file__).resolve().parents[2]
STEADY = Style(wander=0.0)  # jitter only
EXACT = Style(jitter_s=0.0, wander=0.0, hold=(1.0, 1.0), velocity_noise=0.0, arch=0.0)


def work(voices: list[list[tuple[int, float, float]]], bar_beats: float = 4.0,
         bpm: float = 120.0) -> Work:
    """A work from (pitch, onset, duration) per voice."""
    rows = [(o, p, v, d) for v, notes in enumerate(voices) for p, o, d in notes]
    rows.sort()
    onset, pitch, voice, duration = (np.array(x) for x in zip(*rows, strict=True))
    return Work(id="w", collection="test", split="test", bpm=bpm, bar_beats=bar_beats,
                key=None, onset=onset.astype(np.float64), duration=duration.astype(np.float64),
                pitch=pitch.astype(np.int16), velocity=np.full(len(rows), 80, np.int16),
                voice=voice.astype(np.int16))


def scale_run(n: int, low: int = 60, length: float = 1.0) -> list[tuple[int, float, float]]:
    return [(low + i % 12, i * length, length) for i in range(n)]


CHORALE = work([scale_run(16, 72), scale_run(16, 64), scale_run(12, 55, 4 / 3),
                scale_run(8, 40, 2.0)])


def test_a_chorale_is_its_soprano_as_melody_and_its_bass_as_bass() -> None:
    parts = perform(CHORALE, random.Random(1))
    assert list(parts) == ["melody", "bass"]
    assert [len(parts[p]) for p in parts] == [16, 8]
    assert [n.pitch for n in parts["melody"]] == [72 + i for i in range(12)] + [72, 73, 74, 75]
    assert [n.pitch for n in parts["bass"]] == [40 + i for i in range(8)]
    assert {n.channel for n in parts["melody"]} == {0} and {n.channel for n in parts["bass"]} == {1}


def test_a_tune_is_one_melody() -> None:
    parts = perform(work([scale_run(30)]), random.Random(1))
    assert list(parts) == ["melody"] and len(parts["melody"]) == 30


def test_without_humanising_the_notes_fall_on_the_written_grid() -> None:
    tune = work([[(60, 1.0, 1.0), (62, 2.0, 0.5), (64, 2.5, 1.5), (65, 6.0, 2.0)]], bpm=120.0)
    played = perform(tune, random.Random(3), style=EXACT)["melody"]
    # The first bar holds a note, so nothing is dropped; one beat of lead-in.
    assert [(n.onset_s, n.duration_s) for n in played] == [
        pytest.approx((0.5 * (LEAD_IN_BEATS + o), 0.5 * d)) for o, d in
        ((1.0, 1.0), (2.0, 0.5), (2.5, 1.5), (6.0, 2.0))]
    # Metre: beat 2 of the first bar 0.8, beat 3 (the middle) 0.85, its "and" 0.7; the downbeat
    # of bar 2 (written 6.0 is beat 3 of bar 2: 0.85).
    assert [n.velocity for n in played] == [round(92 * a) for a in (0.8, 0.85, 0.7, 0.85)]


def test_silent_bars_before_the_first_note_are_dropped() -> None:
    late = work([[(60, 9.0, 1.0), (62, 10.0, 1.0)]])  # the third bar's second beat
    played = perform(late, random.Random(0), style=EXACT)["melody"]
    assert [n.onset_s for n in played] == pytest.approx([0.5 * (LEAD_IN_BEATS + 1), 0.5 * 3])


def test_onsets_stay_within_the_jitter_bounds() -> None:
    tune = work([scale_run(400, length=0.5)], bpm=100.0)
    played = perform(tune, random.Random(5), style=STEADY)["melody"]
    grid = np.array([(LEAD_IN_BEATS + 0.5 * i) * 0.6 for i in range(400)])
    off = np.array([n.onset_s for n in played]) - grid
    assert np.abs(off).max() <= 0.030 + 1e-12
    assert 0.008 < off.std() < 0.012 and abs(off.mean()) < 0.002
    # Held 80-95% of the written half beat (0.3 s).
    held = np.array([n.duration_s for n in played]) / 0.3
    assert held.min() >= 0.80 and held.max() <= 0.95 and held.max() - held.min() > 0.1


def test_the_tempo_wanders_within_two_percent() -> None:
    tune = work([scale_run(256)], bpm=100.0)  # 64 bars of quarter notes
    played = perform(tune, random.Random(7), style=Style(jitter_s=0.0))["melody"]
    beats = np.diff([n.onset_s for n in played]) / 0.6
    assert beats.min() >= 0.98 - 1e-9 and beats.max() <= 1.02 + 1e-9
    assert beats.max() - beats.min() > 0.03  # it does wander
    # Closed form: no drift accumulates; eight bars later the clock is back in phase.
    assert wander_time(32.0, 0.6, 0.02, 32.0, 1.0) == pytest.approx(32 * 0.6)


def test_with_humanising_every_onset_is_within_wander_and_jitter_of_the_grid() -> None:
    tune = work([scale_run(128)], bpm=100.0)
    played = perform(tune, random.Random(9))["melody"]
    period = Style().wander_bars * 4
    bound = 0.02 * period / math.pi * 0.6 + 0.030  # the wander's largest lead or lag, + jitter
    grid = np.array([(LEAD_IN_BEATS + i) * 0.6 for i in range(128)])
    assert np.abs(np.array([n.onset_s for n in played]) - grid).max() <= bound
    assert all(20 <= n.velocity <= 120 for n in played)
    downbeats = [n.velocity for i, n in enumerate(played) if i % 4 == 0]
    others = [n.velocity for i, n in enumerate(played) if i % 4 != 0]
    assert np.mean(downbeats) > np.mean(others) + 10


def test_gaps_add_rests_and_cut_notes_that_cross_them() -> None:
    tune = work([[(60, 0.0, 1.0), (62, 3.0, 2.0), (64, 5.0, 1.0), (65, 8.0, 1.0)]], bpm=120.0)
    played = perform(tune, random.Random(0), style=EXACT, gaps_beats=2.0,
                     gap_every_bars=1)["melody"]
    # A 2-beat rest after each bar: bar 2 starts at written 4 + 2, bar 3 at 8 + 4. The note
    # written at 3 for 2 beats is cut at the bar line.
    assert [(n.onset_s, n.duration_s) for n in played] == [
        pytest.approx((0.5 * (LEAD_IN_BEATS + o), 0.5 * d)) for o, d in
        ((0.0, 1.0), (3.0, 1.0), (7.0, 1.0), (12.0, 1.0))]
    with pytest.raises(ValueError):
        perform(tune, random.Random(0), gaps_beats=-1.0)


def test_a_short_repeated_note_never_overlaps_the_next() -> None:
    tune = work([[(60, i * 0.125, 0.125) for i in range(64)]], bpm=180.0)
    played = perform(tune, random.Random(2))["melody"]
    for a, b in itertools.pairwise(played):
        assert a.onset_s + a.duration_s <= b.onset_s + 1e-12


def test_a_work_with_dynamics_can_be_played_at_its_own_velocities() -> None:
    """bench/own_style.py's players play an imported piece's own dynamics: the solo's velocity
    range follows the call's, so the metric model's would hide the corpus's."""
    written = [30 + 5 * i for i in range(16)]
    tune = dataclasses.replace(work([scale_run(16)]), velocity=np.array(written, np.int16))
    own = perform(tune, random.Random(4), style=Style(written_velocity=True))["melody"]
    metric = perform(tune, random.Random(4))["melody"]
    assert [n.velocity for n in own] == written
    assert [n.velocity for n in metric] != written
    assert [(n.onset_s, n.duration_s) for n in own] == [(n.onset_s, n.duration_s)
                                                         for n in metric]


def test_metre() -> None:
    assert [beat_length(*ts) for ts in ((4, 4), (2, 2), (3, 4), (6, 8), (12, 8), (3, 8))] == \
        [1.0, 2.0, 1.0, 1.5, 1.5, 0.5]
    assert [accent(p, 3.0, 1.5) for p in (0.0, 1.5, 0.5, 3.0)] == [1.0, 0.8, 0.7, 1.0]  # 6/8
    assert [accent(p, 4.0, 2.0) for p in (0.0, 2.0, 1.0)] == [1.0, 0.8, 0.7]  # 2/2


def test_humanising_a_note_draws_three_numbers_in_order() -> None:
    """The demo's rehearsal file depends on this order."""
    a, b = random.Random(11), random.Random(11)
    onset, velocity, duration = humanise_note(a, 1.0, 0.5, 1.0)
    jitter, noise, hold = b.gauss(0, 0.010), b.gauss(0, 6), b.uniform(0.80, 0.95)
    assert (onset, velocity, duration) == (1.0 + jitter, round(92 + noise), 0.5 * hold)
    assert a.random() == b.random()


def test_the_demo_rehearsal_is_made_by_this_module() -> None:
    path = REPO / "performances" / "demo" / "make_rehearsal.py"
    spec = importlib.util.spec_from_file_location("make_rehearsal", path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    mid = to_smf(demo.perform(random.Random(demo.SEED)), demo.TEMPO_BPM,
                 ticks_per_beat=demo.TICKS_PER_BEAT)
    assert midi_bytes(mid) == (REPO / "performances" / "demo" / "rehearsal.mid").read_bytes()


def midi_bytes(mid: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Corpus]:
    root = tmp_path_factory.mktemp("corpora")
    return {name: build_corpus(name, root, limit=2) for name in ("bach-chorales", "oneill-1850")}


@pytest.mark.parametrize(("name", "players"), [("bach-chorales", ["melody", "bass"]),
                                               ("oneill-1850", ["melody"])])
def test_rehearsals_replay_with_the_right_players_and_every_note(
        corpora: dict[str, Corpus], tmp_path: Path, name: str, players: list[str]) -> None:
    corpus = corpora[name]
    split = corpus.works[0].split
    works = sorted(corpus.split(split), key=lambda w: w.id)
    files = make_rehearsals(corpus.path, split, tmp_path / "a", None, seed=4)
    assert [f.name for f in files] == [f"{w.id}.mid" for w in works]
    for f, w in zip(files, works, strict=True):
        rec = load_recording(f)
        assert rec.player_names == players
        ons = [h for h in rec.inputs if isinstance(h, Heard) and midi.is_note_on(h.data)]
        voices = [int(w.voice.min()), int(w.voice.max())][:len(players)]
        assert [sum(h.player == p for h in ons) for p in players] == \
            [int((w.voice == v).sum()) for v in voices]
        assert mido.MidiFile(f).type == 1


def test_the_same_seed_gives_the_same_bytes(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    corpus = corpora["oneill-1850"]
    split = corpus.works[0].split
    a = make_rehearsals(corpus.path, split, tmp_path / "a", None, seed=4)
    b = make_rehearsals(corpus.path, split, tmp_path / "b", None, seed=4)
    one = make_rehearsals(corpus.path, split, tmp_path / "one", 1, seed=4)
    other = make_rehearsals(corpus.path, split, tmp_path / "other", None, seed=5)
    faster = make_rehearsals(corpus.path, split, tmp_path / "faster", None, seed=4, bpm=200.0)
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]
    assert one[0].read_bytes() == a[0].read_bytes()  # a work's file does not depend on limit
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(a, other, strict=True))
    assert mido.MidiFile(faster[0]).length < mido.MidiFile(a[0]).length


def test_call_and_response_silences_every_second_phrase_on_the_same_time_line() -> None:
    from agent.record.rehearsal import perform_timed

    tune = work([scale_run(64)])  # 16 bars of quarter notes
    whole, timeline = perform_timed(tune, random.Random(4), gap_every_bars=4)
    calls, same = perform_timed(tune, random.Random(4), gap_every_bars=4, silent_phrases=True)
    assert same == timeline
    kept = calls["melody"]
    assert len(kept) == 32  # bars 1-4 and 9-12
    assert all(a.onset_s == b.onset_s and a.pitch == b.pitch
               for a, b in zip(kept, whole["melody"][:16] + whole["melody"][32:48], strict=True))
    # Each phrase starts on its bar line of the true time line (jitter within 30 ms).
    assert abs(kept[16].onset_s - timeline.seconds(timeline.bar_line(8))) <= 0.030


def test_every_voice_gives_each_voice_its_own_player() -> None:
    parts = perform(CHORALE, random.Random(1), every_voice=True)
    assert list(parts) == ["soprano", "alto", "tenor", "bass"]
    assert [p[0].channel for p in parts.values()] == [0, 1, 2, 3]
