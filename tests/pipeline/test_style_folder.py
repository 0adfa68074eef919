"""bench/style_folder.py, issue 15's bench material: a folder of four madrigals (eight pieces)
written twice, read back with mido: the same bytes each time, every kind of file the docstring
promises, and each junk file what it is said to be."""

from __future__ import annotations

import hashlib
import random
import sys
from collections import Counter
from pathlib import Path

import mido
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
try:
    import style_folder
    from _madrigals import Sounding, TempoMap, Written, halves, one_key_at_a_time, velocities
finally:
    sys.path.remove(str(BENCH))


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, style_folder.Folder]:
    out = tmp_path_factory.mktemp("own") / "folder"
    return out, style_folder.make_folder(out, seed=3, madrigals=4)


def test_the_same_seed_writes_the_same_bytes(folder: tuple[Path, style_folder.Folder],
                                             tmp_path: Path) -> None:
    out, made = folder
    again = style_folder.make_folder(tmp_path / "again", seed=3, madrigals=4)
    assert again == made
    assert tree(tmp_path / "again") == tree(out)
    style_folder.make_folder(tmp_path / "other", seed=4, madrigals=1)
    first = made.pieces[0].path
    assert (tmp_path / "other" / first).read_bytes() != (out / first).read_bytes()


def test_a_folder_that_holds_files_is_refused(folder: tuple[Path, style_folder.Folder]) -> None:
    with pytest.raises(FileExistsError, match="not an empty folder"):
        style_folder.make_folder(folder[0], seed=3, madrigals=1)
    assert style_folder.main([str(folder[0]), "--madrigals", "1"]) == 2


def test_the_pieces_are_every_kind_a_folder_holds(folder: tuple[Path, style_folder.Folder]
                                                  ) -> None:
    out, made = folder
    pieces = made.pieces
    assert [p.madrigal for p in pieces] == ["3.1", "3.1", "4.1", "4.1", "5.1", "5.1", "3.2",
                                            "3.2"]
    assert pieces[5].path.startswith("Libro V/seconde parti/")  # nested two deep
    assert pieces[7].path.endswith(".MIDI")
    seen: Counter[str] = Counter()
    for p in pieces:
        mid = mido.MidiFile(out / p.path)
        assert (mid.type, mid.ticks_per_beat) == (p.smf_type, p.ticks_per_beat)
        messages = [m for t in mid.tracks for m in t]
        ons = [m for m in messages if m.type == "note_on" and m.velocity > 0]
        tempi = [m for m in messages if m.type == "set_tempo"]
        pedal = [m for m in messages if m.type == "control_change" and m.control == 64]
        assert len([m for m in ons if m.channel != 9]) == p.notes
        assert len(tempi) == p.tempo_changes + 1
        assert bool(pedal) == p.pedal
        if p.pedal:  # a keyboard take: one channel, the pedal going down and up
            assert {m.channel for m in ons} == {0} and {m.value for m in pedal} == {0, 127}
        velocities = [m.velocity for m in ons if m.channel != 9]
        assert (min(velocities), max(velocities)) == p.velocity
        low, high = p.velocity
        assert low >= 30 and high <= 110 and high - low > 30  # dynamics, within 30-110
        seen["zero-velocity offs"] += any(m.type == "note_on" and m.velocity == 0
                                          for m in messages)
        seen["note_off"] += any(m.type == "note_off" for m in messages)
        seen["click"] += any(m.channel == 9 for m in ons)
    assert {p.ticks_per_beat for p in pieces} == {96, 384, 480, 960}
    assert [p.smf_type for p in pieces].count(0) == 1
    assert [i for i, p in enumerate(pieces) if p.tempo_changes] == [2, 7]
    assert [i for i, p in enumerate(pieces) if p.pedal] == [4]
    # Half write note-offs as note-ons of velocity 0; the click track (in one of those) has
    # note_offs of its own.
    assert seen == {"zero-velocity offs": 4, "note_off": 5, "click": 1}


def test_each_junk_file_is_what_it_is_said_to_be(folder: tuple[Path, style_folder.Folder]
                                                 ) -> None:
    out, made = folder
    junk = dict(made.junk)
    assert sorted(junk.values()) == sorted([
        "empty", "no notes", "drums only", "not a MIDI file (an HTML page)",
        f"duplicate of {made.pieces[1].path}", "type 2", "truncated"])
    why_of = {why.split(" (")[0].split(" of ")[0]: name for name, why in junk.items()}
    assert (out / why_of["empty"]).read_bytes() == b""
    with pytest.raises(OSError, match="MThd not found"):
        mido.MidiFile(out / why_of["not a MIDI file"])
    with pytest.raises(EOFError):
        mido.MidiFile(out / why_of["truncated"])
    assert mido.MidiFile(out / why_of["type 2"]).type == 2
    assert (out / why_of["duplicate"]).read_bytes() == (out / made.pieces[1].path).read_bytes()
    drums = [m for t in mido.MidiFile(out / why_of["drums only"]).tracks for m in t
             if m.type == "note_on"]
    assert drums and {m.channel for m in drums} == {9}
    assert not [m for t in mido.MidiFile(out / why_of["no notes"]).tracks for m in t
                if m.type == "note_on"]
    for name in made.not_midi:
        assert (out / name).is_file() and not name.lower().endswith((".mid", ".midi", ".smf"))


def test_a_madrigal_is_cut_where_fewest_notes_sound_across() -> None:
    # Six bars of 4/4; a note holds across bar lines 2 and 4 (beats 8 and 16), none across 3.
    notes = ((0.0, 10.0, 60, 0), (10.0, 12.0, 62, 0), (12.0, 18.0, 64, 0), (18.0, 24.0, 65, 0),
             (0.0, 24.0, 48, 1))
    first, second = halves(Written("x", ("a", "b"), notes, 4.0))
    # Bar lines 2-4 (beats 8, 12, 16) are the middle third; the bass holds across all three,
    # the soprano across 2 and 4: the cut is at 3, and the bass ends there.
    assert first.notes == ((0.0, 10.0, 60, 0), (10.0, 12.0, 62, 0), (0.0, 12.0, 48, 1))
    assert second.notes == ((0.0, 6.0, 64, 0), (6.0, 12.0, 65, 0))


def test_a_tempo_map_turns_beats_into_seconds_and_back() -> None:
    tempo = TempoMap((0.0, 4.0, 6.0), (0.5, 1.0, 0.25))
    assert [tempo.seconds(b) for b in (0.0, 2.0, 4.0, 5.0, 6.0, 10.0)] == [0, 1, 2, 3, 4, 5]
    assert [tempo.beats(s) for s in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)] == [0, 2, 4, 5, 6, 10]


def test_a_key_sounds_once_at_a_time() -> None:
    notes = [Sounding(0.0, 1.0, 60, 0, 70), Sounding(0.01, 2.0, 60, 0, 90),  # a unison: one
             Sounding(1.5, 3.0, 60, 0, 50),  # cuts the one before at its start
             Sounding(1.5, 3.0, 60, 1, 50)]  # another channel: its own key
    assert one_key_at_a_time(notes) == [Sounding(0.0, 1.5, 60, 0, 90),
                                        Sounding(1.5, 3.0, 60, 0, 50),
                                        Sounding(1.5, 3.0, 60, 1, 50)]


def test_velocities_follow_phrases_not_a_flat_line() -> None:
    written = Written("x", ("a",), tuple((float(b), b + 1.0, 60, 0) for b in range(16)), 4.0)
    levels = velocities(written, random.Random(1), 70.0)
    assert len(levels) == 16 and all(30 <= v <= 110 for v in levels)
    assert max(levels) - min(levels) >= 15
