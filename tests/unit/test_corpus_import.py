"""Corpus import, reading: every kind of MIDI file people have, made with mido, read into a
piece, written as the corpus's MIDI file and loaded back as `Work` arrays by load_corpus."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.corpus import load_corpus
from agent.model.corpus_import import (
    Piece,
    Skip,
    SourceTrack,
    piece_bytes,
    piece_from_players,
    piece_from_smf,
)
from agent.model.corpus_write import ImportSettings, import_corpus
from agent.record.corpus_recording import read_recording
from tests.midi_files import melody, metre, name, note, smf, tempo, tune, write


def read(data: bytes) -> Piece:
    return piece_from_smf(data, "x.mid", title="x")


def rows(piece: Piece) -> list[list[int]]:
    """(start, end, pitch, velocity, part) of every note, at 480 ticks a quarter note."""
    return sorted([*n, i] for i, p in enumerate(piece.parts) for n in p.notes.tolist())


def test_a_type_0_file_is_split_into_its_channels() -> None:
    events = [name("Band"), tempo(0, 90),
              (0, mido.Message("program_change", channel=3, program=32)),
              *note(0, 480, 40, 100, channel=3), *note(0, 240, 72, 50, channel=0),
              *note(480, 240, 74, 60, channel=0)]
    piece = read(smf([events], fmt=0))
    assert [(p.name, p.channel, p.program) for p in piece.parts] == [
        ("Band (channel 1)", 0, None), ("Band (channel 4)", 3, 32)]
    assert rows(piece) == [[0, 240, 72, 50, 0], [0, 480, 40, 100, 1], [480, 720, 74, 60, 0]]
    assert piece.title == "Band" and piece.bpm == 90.0


@pytest.mark.parametrize("tpb", [96, 1000, 1])
def test_any_ticks_per_beat_becomes_480_rounded_to_the_nearest(tpb: int) -> None:
    # Notes at 0, 1/3 and 2.5 beats (as near as the file's ticks allow).
    third, two_and_a_half = round(tpb / 3), tpb * 5 // 2
    piece = read(smf([[*note(0, tpb, 60), *note(third, tpb, 62),
                       *note(two_and_a_half, tpb * 2, 64)]], tpb=tpb))
    to480 = [(t * 960 + tpb) // (2 * tpb) for t in (0, third, two_and_a_half)]
    assert [r[0] for r in rows(piece)] == to480
    assert [r[1] - r[0] for r in rows(piece)] == [480, 480, 960]


def test_tempo_map_and_metre_changes_are_kept_and_onsets_stay_in_beats(tmp_path: Path) -> None:
    conductor = [name("Changes"), tempo(0, 80), tempo(960, 140), tempo(1920, 60),
                 metre(0, 3, 4), metre(1440, 6, 8), (0, mido.MetaMessage("key_signature",
                                                                       key="Bbm"))]
    write(tmp_path / "src" / "changes.mid",
          smf([conductor, [name("Tune"), *melody(40, step=240)]], tpb=240))
    for i in range(9):
        tune(tmp_path / "src" / f"other{i}.mid", count=20, low=50 + i)
    corpus = import_corpus([str(tmp_path / "src")], ImportSettings("t", tmp_path / "c"),
                           read_recording)
    [entry] = [w for w in corpus.manifest["works"] if w["id"] == "changes"]
    assert (entry["bpm"], entry["tempo_changes"], entry["time_signature"], entry["bar_beats"],
            entry["key"]) == (80.0, 2, "3/4", 3.0, "Bb minor")
    mid = mido.MidiFile(tmp_path / "c" / "t" / "midi" / "changes.mid")
    tick, kept = 0, []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type in ("set_tempo", "time_signature"):
            kept.append((tick, msg.type, round(mido.tempo2bpm(msg.tempo)) if msg.type ==
                         "set_tempo" else f"{msg.numerator}/{msg.denominator}"))
    assert kept == [(0, "set_tempo", 80), (0, "time_signature", "3/4"),
                    (1920, "set_tempo", 140), (2880, "time_signature", "6/8"),
                    (3840, "set_tempo", 60)]
    [work] = [w for w in load_corpus(tmp_path / "c" / "t").works if w.id == "changes"]
    assert work.onset.tolist() == [float(i) for i in range(40)]  # beats, whatever the tempo
    assert work.duration.tolist() == [0.5] * 40 and work.bpm == 80.0 and work.bar_beats == 3.0


def test_running_status_and_note_on_velocity_0_as_note_off() -> None:
    # Every note-off a note-on at velocity 0, which mido writes in running status.
    events = [e for i in range(8) for e in note(i * 480, 400, 60 + i, 70, off_as_zero_on=True)]
    data = smf([events])
    assert data.count(b"\x90") == 1  # one status byte, then running status throughout
    assert rows(read(data)) == [[i * 480, i * 480 + 400, 60 + i, 70, 0] for i in range(8)]


def test_a_key_struck_again_while_down_ends_the_old_note_there() -> None:
    # C on at 0 and again at 240; the note-off at 480 was the first note's, 720 the second's.
    events = [(0, mido.Message("note_on", note=60, velocity=90)),
              (240, mido.Message("note_on", note=60, velocity=50)),
              (480, mido.Message("note_off", note=60)), (720, mido.Message("note_off", note=60))]
    assert rows(read(smf([events]))) == [[0, 240, 60, 90, 0], [240, 720, 60, 50, 0]]


def test_the_sustain_pedal_holds_notes_until_it_lifts() -> None:
    cc = [(100, mido.Message("control_change", control=64, value=127)),
          (1500, mido.Message("control_change", control=64, value=0))]
    events = [*note(0, 240, 60), *note(480, 240, 64), *note(1600, 240, 67), *cc]
    assert rows(read(smf([events]))) == [[0, 1500, 60, 80, 0], [480, 1500, 64, 80, 0],
                                         [1600, 1840, 67, 80, 0]]


def test_drums_are_left_out_as_a_part_and_counted() -> None:
    bank = [(0, mido.Message("control_change", channel=4, control=0, value=120))]  # GM2 kit
    gs = [(0, mido.Message("sysex", data=[0x41, 0x10, 0x42, 0x12, 0x40, 0x1A, 0x15, 0x02,
                                          0x0F]))]  # GS: block A, part 11 (channel 11), a drum map
    piece = read(smf([[name("Song")], [name("Piano"), *melody(20)],
                      [name("Kit"), *melody(12, channel=9)],
                      [name("Toms"), *bank, *melody(5, channel=4)],
                      [name("More"), *gs, *melody(3, channel=10)]]))
    assert [p.name for p in piece.parts] == ["Piano"]
    assert piece.left_out == (("Kit (channel 10)", "drums (12 notes)"),
                              ("Toms (channel 5)", "drums (5 notes)"),
                              ("More (channel 11)", "drums (3 notes)"))
    assert piece.drums == (3, 20)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"not midi at all", "not a MIDI file (no MThd header)"),
    (smf([melody(20)])[:40], "truncated: track 1 of 1 has"),
    (smf([melody(4), melody(4)], fmt=2), "SMF type 2 (independent sequences"),
    (smf([[name("Silence"), tempo(0, 120)]]), "no notes"),
    (smf([melody(30, channel=9)]), "drums only (30 notes)"),
    (smf([[(0, mido.Message("note_on", note=60)), (0, mido.Message("note_off", note=60))]]),
     "no notes (1 of no length)"),
])
def test_files_with_nothing_usable_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(Skip) as e:
        read(data)
    assert str(e.value).startswith(reason)


def test_velocities_are_kept_and_a_file_reads_back_to_exactly_its_notes() -> None:
    events = [*melody(30, velocity=None), *note(15_000, 480, 61, 1), *note(15_000, 480, 62, 127)]
    piece = read(smf([[name("T")], [name("A"), *events], [name("B"), *melody(10, low=40)]]))
    data = piece_bytes(piece, "t")
    mid = mido.MidiFile(file=io.BytesIO(data))
    assert mid.type == 1 and mid.ticks_per_beat == 480
    assert [t.name for t in mid.tracks] == ["t", "A", "B"]
    assert piece.velocity_range() == (1, 127)
    from agent.model.corpus import _work  # the loader's own reading of one file
    work = _work({"id": "t", "collection": "c", "split": "train", "bpm": 120, "bar_beats": 4,
                  "key": None}, data, Path("t.mid"))
    loaded = sorted(zip((work.onset * 480).round().astype(int).tolist(),
                        ((work.onset + work.duration) * 480).round().astype(int).tolist(),
                        work.pitch.tolist(), work.velocity.tolist(), work.voice.tolist(),
                        strict=True))
    assert [list(r) for r in loaded] == rows(piece)
    assert np.all(work.duration > 0)


def test_an_smpte_file_counts_beats_at_its_first_tempo() -> None:
    data = bytearray(smf([[tempo(0, 60), *note(0, 1000, 60), *note(2000, 500, 62)]], tpb=480))
    data[12:14] = bytes([0xE7, 40])  # -25 fps x 40 ticks: 1000 ticks a second
    # At 60 bpm a second is a beat: 480 ticks.
    assert rows(read(bytes(data))) == [[0, 480, 60, 80, 0], [960, 1200, 62, 80, 0]]


VALID = smf([[name("T"), tempo(0, 90), metre(0, 3, 4)],
             [name("A"), *melody(12), (0, mido.Message("control_change", control=64,
                                                       value=127))],
             [name("B"), *melody(8, channel=9)]], tpb=96)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(VALID)))
def test_a_damaged_file_is_a_piece_or_a_reason_never_an_error(
        changes: list[tuple[int, int]], cut: int) -> None:
    """Bytes overwritten at random and the file cut short: read, or left out saying why."""
    data = bytearray(VALID[:cut] if cut else VALID)
    for at, value in changes:
        if at < len(data):
            data[at] = value
    try:
        piece = read(bytes(data))
    except Skip as e:
        assert str(e)
    else:
        assert piece.notes == sum(len(p.notes) for p in piece.parts) > 0
        assert all((p.notes[:, 1] > p.notes[:, 0]).all() for p in piece.parts)
        piece_bytes(piece, "w")


def test_players_messages_are_paired_as_the_agent_heard_them_live() -> None:
    """A key struck again whose note-off was lost on the way: live, a note-off 2 s later is the
    new note's (keys.py's OWED_WINDOW_NS), so the new note ends there, not at the track's end.
    Times in ns; at 120 bpm a second is 960 ticks; time 0 is the first note struck."""
    s = 1_000_000_000
    played = [(5 * s, bytes([0x90, 60, 100])), (6 * s, bytes([0x90, 60, 90])),
              (8 * s, bytes([0x80, 60, 0])), (8 * s, bytes([0x91, 40, 70])),
              (9 * s, bytes([0x91, 40, 0]))]
    piece = piece_from_players([SourceTrack("keys", played, 20 * s)], "run", "0" * 64,
                               title="run", bpm=120.0, time_signature=(3, 4))
    assert [(p.name, p.channel) for p in piece.parts] == [("keys (channel 1)", 0),
                                                          ("keys (channel 2)", 1)]
    assert rows(piece) == [[0, 960, 60, 100, 0], [960, 2880, 60, 90, 0],
                           [2880, 3840, 40, 70, 1]]
    assert (piece.bpm, piece.time_signature) == (120.0, (3, 4))
