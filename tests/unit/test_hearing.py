"""Hearing across players: key, chord from held and recent notes, published changes, soloist."""

from __future__ import annotations

from agent.events import PhraseNote
from agent.listen.activity import COMPING, RESTING, SOLOING, PlayerActivity, soloist_low
from agent.listen.beat import BeatEstimate
from agent.listen.hearing import DEFAULT_VELOCITY, Hearing

S = 1_000_000_000
MS = 1_000_000
C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def play_ended(h: Hearing, pitches: list[int], start_s: float, step_s: float = 0.5,
               length_s: float = 0.5) -> None:
    for i, p in enumerate(pitches):
        h.note_ended(PhraseNote(round((start_s + i * step_s) * S), p, 80, round(length_s * S)))


def beat(bpm: float, confidence: float = 0.8) -> BeatEstimate:
    period = round(60 * S / bpm)
    return BeatEstimate(bpm=bpm, period_ns=period, phase_ns=0, confidence=confidence,
                        beats_seen=8)


# -- key --------------------------------------------------------------------------------------

def test_nothing_heard_no_key_no_chord() -> None:
    h = Hearing()
    assert h.key() is None
    assert h.key_scale() is None
    assert h.chord(0) is None


def test_key_after_a_c_major_scale() -> None:
    h = Hearing()
    play_ended(h, C_MAJOR_SCALE, 0.0)
    key = h.key()
    assert key is not None
    assert (key.name, key.tonic, key.mode) == ("C major", 0, "major")
    assert h.key_scale() == frozenset({0, 2, 4, 5, 7, 9, 11})


def test_key_after_a_g_major_scale() -> None:
    h = Hearing()
    play_ended(h, [55, 57, 59, 60, 62, 64, 66, 67], 0.0)
    assert h.key_scale() == frozenset({7, 9, 11, 0, 2, 4, 6})


def test_held_notes_do_not_make_the_key() -> None:
    h = Hearing()
    for p in C_MAJOR_SCALE:
        h.note_on("a", 0, p, 80, 0)
    assert h.key() is None  # only whole notes (note_ended) count for the key


# -- chord ------------------------------------------------------------------------------------

def test_chord_from_held_notes() -> None:
    h = Hearing()
    for p in (60, 64, 67):
        h.note_on("keys", 0, p, 80, 1 * S)
    chord = h.chord(1 * S)
    assert chord is not None
    assert (chord.name, chord.root, chord.quality) == ("C", 0, "maj")
    assert chord.pitch_classes == frozenset({0, 4, 7})
    assert chord.confidence > 0.999


def test_chord_across_players_and_channels() -> None:
    h = Hearing()
    h.note_on("bass", 0, 43, 80, 0)  # G
    h.note_on("keys", 1, 59, 80, 0)  # B
    h.note_on("keys", 1, 62, 80, 0)  # D
    h.note_on("keys", 1, 65, 80, 0)  # F
    chord = h.chord(0)
    assert chord is not None and chord.name == "G7"


def test_the_bass_breaks_a_tie() -> None:
    # An augmented triad is symmetric: C-E-G#, E-G#-C and G#-C-E sound the same.
    h = Hearing()
    for p in (52, 56, 60):  # E in the bass
        h.note_on("keys", 0, p, 80, 0)
    chord = h.chord(0)
    assert chord is not None and chord.name == "Eaug"
    h = Hearing()
    for p in (56, 60, 64):  # G# in the bass
        h.note_on("keys", 0, p, 80, 0)
    chord = h.chord(0)
    assert chord is not None and chord.name == "Abaug"


def test_note_off_and_release_player_take_held_notes_away() -> None:
    h = Hearing()
    for p in (60, 64, 67):
        h.note_on("keys", 0, p, 80, 0)
    h.note_on("bass", 0, 45, 80, 0)  # A: A minor 7 with the triad
    chord = h.chord(0)
    assert chord is not None and chord.name == "Am7"
    h.release_player("bass")
    chord = h.chord(0)
    assert chord is not None and chord.name == "C"
    h.note_off("keys", 0, 64)
    h.note_off("keys", 0, 67)
    h.note_off("keys", 0, 60)
    h.note_off("keys", 0, 61)  # never held: no harm
    assert h.chord(0) is None


def test_chord_from_recently_ended_notes_decays() -> None:
    h = Hearing()
    for p in (60, 64, 67):  # C major, 0..1 s
        h.note_ended(PhraseNote(0, p, 80, 1 * S))
    chord = h.chord(1 * S)
    assert chord is not None and chord.name == "C"
    chord = h.chord(30 * S)  # long after, it is still the last thing heard
    assert chord is not None and chord.name == "C"
    for p in (54, 58, 61):  # F# major, 2..3 s: C major has decayed by four half-lives more
        h.note_ended(PhraseNote(2 * S, p, 80, 1 * S))
    chord = h.chord(3 * S)
    assert chord is not None and chord.name == "F#"
    assert chord.confidence > 0.99


def test_held_notes_outweigh_notes_that_ended_long_ago() -> None:
    h = Hearing()
    for p in (60, 64, 67):
        h.note_ended(PhraseNote(0, p, 80, 1 * S))
    for p in (54, 58, 61):
        h.note_on("keys", 0, p, 80, 5 * S)
    chord = h.chord(5 * S)  # C major is 8 half-lives old
    assert chord is not None and chord.name == "F#"


# -- dynamics ---------------------------------------------------------------------------------

def test_recent_velocity_is_the_mean_of_the_last_sixteen_onsets() -> None:
    h = Hearing()
    assert h.recent_velocity() == DEFAULT_VELOCITY
    for v in (10, 20, 30):
        h.note_on("a", 0, 60, v, 0)
    assert h.recent_velocity() == 20.0
    for _ in range(16):
        h.note_on("a", 0, 60, 100, 0)
    assert h.recent_velocity() == 100.0
    assert h.last_onset_ns == 0


# -- soloist_low ------------------------------------------------------------------------------

def low_of(role_of: dict[str, str], activity: dict[str, PlayerActivity], t: int) -> int | None:
    """The soloist's lowest note, from the players' activity as the agent reads it at t."""
    return soloist_low(role_of, {n: a.summary(t) for n, a in activity.items()})


def test_soloist_low_is_the_lowest_recent_note_of_any_soloist() -> None:
    activity = {name: PlayerActivity(window_s=4.0) for name in ("sax", "gtr", "bass")}
    for i, p in enumerate((70, 65, 72)):
        activity["sax"].note_on(i * 100 * MS, 0, p, 80)
    for i, p in enumerate((67, 74)):
        activity["gtr"].note_on(i * 100 * MS, 0, p, 80)
    activity["bass"].note_on(0, 0, 40, 80)
    t = 1 * S
    assert low_of({"sax": SOLOING, "gtr": COMPING, "bass": COMPING},
                               activity, t) == 65
    assert low_of({"sax": SOLOING, "gtr": SOLOING, "bass": RESTING},
                               activity, t) == 65
    assert low_of({"sax": COMPING, "gtr": SOLOING, "bass": COMPING},
                               activity, t) == 67
    assert low_of({"sax": COMPING, "gtr": COMPING, "bass": COMPING},
                               activity, t) is None
    assert low_of({}, activity, t) is None
    # Recent: after the window, the soloist's old notes are forgotten.
    assert low_of({"sax": SOLOING}, activity, 10 * S) is None


# -- changes ----------------------------------------------------------------------------------

ROLES = {"a": SOLOING, "b": RESTING}


def test_first_changes_publish_everything() -> None:
    h = Hearing()
    assert h.changes(0, ROLES, None, None) == {
        "roles": {"a": SOLOING, "b": RESTING},
        "key": {"key": None, "chord": None},
    }


def test_changes_report_only_what_changed() -> None:
    h = Hearing()
    h.changes(0, ROLES, None, beat(120.0))
    assert h.changes(1 * S, ROLES, None, beat(120.0)) == {}
    assert h.changes(1 * S, {"a": SOLOING, "b": COMPING}, None, beat(120.0)) == {
        "roles": {"a": SOLOING, "b": COMPING}}
    for p in (60, 64, 67):
        h.note_on("a", 0, p, 80, 2 * S)
    assert h.changes(2 * S, {"a": SOLOING, "b": COMPING}, None, beat(120.0)) == {
        "key": {"key": None, "chord": "C"}}
    play_ended(h, C_MAJOR_SCALE, 2.0)
    assert h.changes(7 * S, {"a": SOLOING, "b": COMPING}, None, beat(120.0)) == {
        "key": {"key": "C major", "chord": "C"}}
    assert h.changes(8 * S, {"a": SOLOING, "b": COMPING}, None, beat(120.0)) == {}


def test_tempo_is_published_with_its_source() -> None:
    h = Hearing()
    out = h.changes(0, ROLES, None, beat(120.123, confidence=0.876))
    assert out["tempo"] == {"bpm": 120.12, "confidence": 0.88, "source": "onsets"}
    h = Hearing()
    out = h.changes(0, ROLES, 99.996, beat(120.0))  # a MIDI clock wins over onsets
    assert out["tempo"] == {"bpm": 100.0, "confidence": 1.0, "source": "clock"}


def test_tempo_is_republished_only_on_a_change_over_one_percent() -> None:
    h = Hearing()
    h.changes(0, ROLES, None, beat(100.0))
    assert "tempo" not in h.changes(0, ROLES, None, beat(100.9))
    assert "tempo" not in h.changes(0, ROLES, None, beat(99.1))
    assert "tempo" not in h.changes(0, ROLES, None, beat(100.0, confidence=0.1))
    assert h.changes(0, ROLES, None, beat(101.5))["tempo"]["bpm"] == 101.5
    # Compared with what was last published: 101.5, not 100.
    assert "tempo" not in h.changes(0, ROLES, None, beat(102.0))
    assert h.changes(0, ROLES, None, beat(100.0))["tempo"]["bpm"] == 100.0  # -1.5%


def test_drift_in_small_steps_is_published_once_it_adds_up() -> None:
    h = Hearing()
    h.changes(0, ROLES, None, beat(100.0))
    published = [bpm for bpm in (100.4, 100.8, 101.2, 101.6, 102.0)
                 if "tempo" in h.changes(0, ROLES, None, beat(bpm))]
    assert published == [101.2]


def test_tempo_is_republished_when_its_source_changes() -> None:
    h = Hearing()
    h.changes(0, ROLES, None, beat(120.0))
    out = h.changes(0, ROLES, 120.0, None)
    assert out == {"tempo": {"bpm": 120.0, "confidence": 1.0, "source": "clock"}}
    out = h.changes(0, ROLES, None, beat(120.0, confidence=0.5))
    assert out == {"tempo": {"bpm": 120.0, "confidence": 0.5, "source": "onsets"}}


def test_no_tempo_heard_publishes_no_tempo() -> None:
    h = Hearing()
    h.changes(0, ROLES, None, beat(120.0))
    assert "tempo" not in h.changes(0, ROLES, None, None)
