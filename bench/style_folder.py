"""Bench material for issue 15: a folder of MIDI files as a musician has one, of a style the
shipped model has never heard (Monteverdi's five-voice madrigals), played like a human, with the
junk a real folder holds. Bench material, not shipped data: written where it is told, never
committed (the encodings come with music21 under its corpus terms).

What it writes, exactly:

- The music: the 48 madrigals of music21's `monteverdi` collection (books 3, 4 and 5; that
  folder's 97 files are 49 MusicXML scores and 48 roman-numeral analyses, `.rntxt`, which are
  not music to play; `madrigal.3.1_old.mxl`, an older encoding of 3.1, gives only junk below),
  each cut in two at a bar line in its middle third (the one the fewest notes sound across,
  the nearer the middle on a tie): 96 pieces, "prima parte" and "seconda parte", ~45 bars and
  ~450 notes each. Notes as written (ties merged, grace notes left out), five voices (book 5:
  five and a basso continuo). `--madrigals N` takes the first N madrigals taking the books in
  turn (3.1, 4.1, 5.1, 3.2, ...), so a small folder still has every kind of file.
- Played like a human, each piece its own take (its random draws come from the seed and its file
  name alone): a tempo of 88-126 quarter notes a minute, drifting ±1.5-4% in a slow wave over
  eight bars; each note's onset off by N(0, 8 ms) clipped at 20 ms, plus its voice's own lead or
  lag of up to 6 ms; notes held 82-97% of their written length. Velocity: the take's level
  (48-84), the voice's own (N(0, 4)), a shape per phrase of a voice (notes between rests of a
  beat or more: from 0.4 h below at its ends to 0.6 h above at its middle, h 8-20), the
  metre (downbeat +8, the middle of a bar +2, off-beats -4), an accent on one note in 25 (+12)
  and N(0, 4) noise, clipped to 30-110.
- Saved as different programs save (what a piece gets goes by its place i in the folder, so
  that first and second halves share every kind): ticks per quarter 96, 384, 480 or 960, a
  quarter of the pieces each ((i + i // 2) mod 4); type 1 (a conductor track, then a track per
  voice, voice i on channel i + 1, program 52 "choir aahs", the continuo 19 "church organ"), but
  every seventh piece type 0 (one track, voices by channel); every fifth a tempo map that
  follows the music (a passage of four to eight bars 12% slower, the last two bars slowing 6% a
  beat; the other files have one tempo, so the playing drifts off their grid); every ninth a
  keyboard take (every voice on channel 1 as a pianist plays a reduction: one key per pitch,
  keys let go at 45-85% of the note, the sustain pedal (CC64) changed legato every half bar);
  half of them ((i + i // 2) odd) write note-offs as note-ons of velocity 0; one piece carries a
  click track on channel 10. Running status as mido writes it.
- Where: book 3 in `Libro III/`, book 4 in `Libro IV/`, book 5 in `Libro V/` with its seconde
  parti one folder deeper (`Libro V/seconde parti/`); file names `Monteverdi - Libro IV, 07 -
  prima parte.mid`, with every eleventh piece in another case or extension (`.MIDI`, `.smf`,
  `.SMF`, `.Mid`).
- The junk: `Untitled.mid` (empty), `template.mid` (a tempo, a track name, a program: no note),
  `click track.mid` (drums only, channel 10), `Libro IV/download.mid` (an HTML error page),
  a byte-identical copy of the second piece (`... copy.mid`), and 3.1's old encoding as a type-2
  file (its prima parte) and as a file cut off at 60% of its bytes (its seconda parte). Beside
  them, files that are not MIDI by name: `.DS_Store`, `Libro III/cover.jpg`, `notes.txt`.

Deterministic: the same seed and music21 give byte-identical files.

    python bench/style_folder.py OUT [--seed 15] [--madrigals 48]
"""

from __future__ import annotations

import argparse
import io
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import music21
from _madrigals import (
    LEAD_IN_BEATS,
    Sounding,
    Written,
    halves,
    pedal_changes,
    play,
    read_madrigal,
    score_tempo,
)

BOOKS = {"3": "Libro III", "4": "Libro IV", "5": "Libro V"}
DEEPER = "seconde parti"  # book 5's second halves go one folder further down
OLD = "madrigal.3.1_old.mxl"  # an older encoding of 3.1: junk only
TICKS = (96, 384, 480, 960)
ODD_EXTENSIONS = (".MIDI", ".smf", ".SMF", ".Mid")
CHOIR, ORGAN, PIANO = 52, 19, 0  # General MIDI programs
HALVES = ("prima parte", "seconda parte")


@dataclass(frozen=True)
class PieceFile:
    path: str  # relative to the folder
    madrigal: str
    half: str
    notes: int
    ticks_per_beat: int
    smf_type: int
    tempo_changes: int
    pedal: bool
    velocity: tuple[int, int]  # lowest, highest


@dataclass(frozen=True)
class Folder:
    pieces: tuple[PieceFile, ...]
    junk: tuple[tuple[str, str], ...]  # (path, what is wrong with it)
    not_midi: tuple[str, ...]  # files whose names are not MIDI names


# --- saving ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Take:
    """How one piece is played and saved (chosen by its place in the folder, see the docstring;
    the random draws of the playing come from the seed and the file name)."""

    ticks_per_beat: int
    smf_type: int
    tempo_map: bool
    keyboard: bool
    zero_velocity_offs: bool
    click: bool

    @staticmethod
    def of(index: int) -> Take:
        # Odd moduli (and i + i // 2), so that no kind falls on first halves alone.
        mixed = index + index // 2
        return Take(TICKS[mixed % len(TICKS)], 0 if index % 7 == 3 else 1, index % 5 == 2,
                    index % 9 == 4, mixed % 2 == 1, index == 6)


Timed = tuple[int, int, mido.Message | mido.MetaMessage]  # tick, order at the tick, message


def to_track(events: list[Timed]) -> mido.MidiTrack:
    """Absolute ticks to a track: at one tick metas, then note-offs, pedals, note-ons."""
    track = mido.MidiTrack()
    last = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


@dataclass(frozen=True)
class Saved:
    data: bytes
    notes: list[Sounding]
    tempo_changes: int  # set_tempo events after the first


def piece_midi(w: Written, take: Take, rng: random.Random) -> Saved:
    spb = 60.0 / rng.uniform(88.0, 126.0)
    length = max(n[1] for n in w.notes)
    tempo = score_tempo(rng, spb, length, w.bar_beats, take.tempo_map)
    notes = play(w, rng, tempo, take.keyboard)
    tpb = take.ticks_per_beat

    def tick(seconds: float) -> int:
        return round(tempo.beats(seconds) * tpb)

    conductor: list[Timed] = [(0, 0, mido.MetaMessage("time_signature", numerator=round(
        w.bar_beats), denominator=4))]
    conductor += [(round(b * tpb), 0, mido.MetaMessage("set_tempo", tempo=round(s * 1e6)))
                  for b, s in zip(tempo.starts, tempo.seconds_per_beat, strict=True)]
    names = ("Piano",) if take.keyboard else w.parts
    parts: list[list[Timed]] = []
    for i, name in enumerate(names):
        channel = 0 if take.keyboard else i + (i >= 9)
        program = PIANO if take.keyboard else ORGAN if name == "Continuo" else CHOIR
        events: list[Timed] = [(0, 0, mido.MetaMessage("track_name", name=name)),
                               (0, 0, mido.Message("program_change", channel=channel,
                                                   program=program))]
        for n in notes:
            if n.channel != channel:
                continue
            on = tick(n.onset_s)
            off = max(on + 1, tick(n.end_s))
            events.append((on, 3, mido.Message("note_on", channel=channel, note=n.pitch,
                                               velocity=n.velocity)))
            events.append((off, 1, mido.Message("note_on", channel=channel, note=n.pitch,
                                                velocity=0) if take.zero_velocity_offs else
                           mido.Message("note_off", channel=channel, note=n.pitch,
                                        velocity=64)))
        if take.keyboard:
            events += [(tick(t), 2, mido.Message("control_change", channel=0, control=64,
                                                 value=value))
                       for t, value in pedal_changes(w, tempo, rng, max(n.end_s for n in notes))]
        parts.append(events)
    if take.click:
        beats = math.ceil(length)
        parts.append([(0, 0, mido.MetaMessage("track_name", name="Click"))] + [
            (round((b + LEAD_IN_BEATS) * tpb) + d, o, mido.Message(
                kind, channel=9, note=76 if b % round(w.bar_beats) == 0 else 77,
                velocity=100 if kind == "note_on" else 0))
            for b in range(beats) for d, o, kind in ((0, 3, "note_on"), (tpb // 8, 1,
                                                                         "note_off"))])
    mid = mido.MidiFile(type=take.smf_type, ticks_per_beat=tpb)
    if take.smf_type == 0:
        mid.tracks.append(to_track(conductor + [e for p in parts for e in p]))
    else:
        mid.tracks += [to_track(conductor)] + [to_track(p) for p in parts]
    return Saved(midi_bytes(mid), notes, len(tempo.starts) - 1)


def midi_bytes(mid: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return bytes(buffer.getvalue())


def drums_only() -> bytes:
    """Four bars of a rock beat on channel 10 at 96 ticks a beat: kick, snare, closed hat."""
    events: list[Timed] = [(0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(96)))]
    for eighth in range(32):
        hits = [42] + ([36] if eighth % 4 == 0 else [38] if eighth % 4 == 2 else [])
        for note in hits:
            events += [(eighth * 48, 3, mido.Message("note_on", channel=9, note=note,
                                                     velocity=90)),
                       (eighth * 48 + 24, 1, mido.Message("note_off", channel=9, note=note))]
    mid = mido.MidiFile(type=0, ticks_per_beat=96)
    mid.tracks.append(to_track(events))
    return midi_bytes(mid)


def no_notes() -> bytes:
    """What a DAW saves from an empty template: a tempo, a metre, a named track, a program."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(to_track([(0, 0, mido.MetaMessage("set_tempo", tempo=500000)),
                                (0, 0, mido.MetaMessage("time_signature", numerator=4,
                                                        denominator=4))]))
    mid.tracks.append(to_track([(0, 0, mido.MetaMessage("track_name", name="Voice")),
                                (0, 1, mido.Message("program_change", program=CHOIR)),
                                (0, 2, mido.Message("control_change", control=7, value=100))]))
    return midi_bytes(mid)


ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not "
              b"Found</h1><p>The requested URL was not found on this server.</p></body></html>\n")


# --- the folder -----------------------------------------------------------------------------

def monteverdi() -> Path:
    return Path(music21.__file__).parent / "corpus" / "monteverdi"


def madrigal_files(limit: int | None) -> list[Path]:
    """The madrigals, taking the books in turn (3.1, 4.1, 5.1, 3.2, ...), the first `limit`."""
    folder = monteverdi()
    books: dict[str, list[Path]] = {b: [] for b in BOOKS}
    for path in sorted(folder.glob("madrigal.*.mxl"),
                       key=lambda p: tuple(int(x) for x in p.stem.split(".")[1:] if x.isdigit())):
        if path.name != OLD:
            books[path.stem.split(".")[1]].append(path)
    turns = [b[i] for i in range(max(map(len, books.values()))) for b in books.values()
             if i < len(b)]
    return turns[:limit]


def piece_name(madrigal: str, half: int, index: int) -> str:
    book, number = madrigal.split(".")
    folder = BOOKS[book] + (f"/{DEEPER}" if book == "5" and half == 1 else "")
    ext = ODD_EXTENSIONS[index // 11 % len(ODD_EXTENSIONS)] if index % 11 == 7 else ".mid"
    return f"{folder}/Monteverdi - {BOOKS[book]}, {int(number):02d} - {HALVES[half]}{ext}"


def make_folder(out: Path, seed: int = 15, madrigals: int | None = None) -> Folder:
    """Write the folder (see the module's docstring) into `out`, absent or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; the bench material "
                              "goes into a new one")
    pieces: list[PieceFile] = []
    written: dict[str, bytes] = {}
    index = 0
    for path in madrigal_files(madrigals):
        whole = read_madrigal(path)
        for half, part in enumerate(halves(whole)):
            name = piece_name(whole.id, half, index)
            take = Take.of(index)
            saved = piece_midi(part, take, random.Random(f"{seed}:{name}"))
            written[name] = saved.data
            pieces.append(PieceFile(name, whole.id, HALVES[half], len(saved.notes),
                                    take.ticks_per_beat, take.smf_type, saved.tempo_changes,
                                    take.keyboard, (min(n.velocity for n in saved.notes),
                                                    max(n.velocity for n in saved.notes))))
            index += 1
    old_first, old_second = halves(read_madrigal(monteverdi() / OLD))
    old = [piece_midi(h, Take.of(1), random.Random(f"{seed}:old:{i}")).data
           for i, h in enumerate((old_first, old_second))]
    type2 = mido.MidiFile(file=io.BytesIO(old[0]))
    type2.type = 2
    junk = {
        "Untitled.mid": (b"", "empty"),
        "template.mid": (no_notes(), "no notes"),
        "click track.mid": (drums_only(), "drums only"),
        "Libro IV/download.mid": (ERROR_PAGE, "not a MIDI file (an HTML page)"),
        f"{pieces[1].path.rsplit('.', 1)[0]} copy.mid": (written[pieces[1].path],
                                                         f"duplicate of {pieces[1].path}"),
        "Libro III/Monteverdi - Libro III, 01 (old edition) - prima parte.mid": (
            midi_bytes(type2), "type 2"),
        "Libro III/Monteverdi - Libro III, 01 (old edition) - seconda parte.mid": (
            old[1][:len(old[1]) * 6 // 10], "truncated"),
    }
    not_midi = {".DS_Store": b"\0\0\0\1Bud1" + bytes(32), "Libro III/cover.jpg":
                b"\xff\xd8\xff\xe0\0\x10JFIF\0" + bytes(64), "notes.txt":
                b"Monteverdi madrigals, books 3-5, played on the digital piano and the choir "
                b"patch.\n"}
    for name, data in [*written.items(), *((n, d) for n, (d, _) in junk.items()),
                       *not_midi.items()]:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    return Folder(tuple(pieces), tuple((n, why) for n, (_, why) in junk.items()),
                  tuple(not_midi))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="a new (or empty) folder to write")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--madrigals", type=int, default=None,
                    help="only the first N madrigals, the books in turn (default: all 48)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    try:
        folder = make_folder(args.out, args.seed, args.madrigals)
    except FileExistsError as e:
        print(f"style_folder: {e}", file=sys.stderr)
        return 2
    p = folder.pieces
    low = min(f.velocity[0] for f in p)
    high = max(f.velocity[1] for f in p)
    print(f"{args.out}: {len(p)} pieces from {len({f.madrigal for f in p})} madrigals, "
          f"{sum(f.notes for f in p)} notes, velocity {low}-{high}; "
          f"{time.perf_counter() - started:.1f} s")
    print("  ticks per beat: " + ", ".join(f"{t} x{sum(f.ticks_per_beat == t for f in p)}"
                                            for t in TICKS))
    print(f"  type 0 x{sum(f.smf_type == 0 for f in p)}, tempo maps "
          f"x{sum(f.tempo_changes > 0 for f in p)}, keyboard takes with pedal "
          f"x{sum(f.pedal for f in p)}, odd extensions "
          f"x{sum(not f.path.endswith('.mid') for f in p)}")
    for name, why in folder.junk:
        print(f"  junk: {name}: {why}")
    print(f"  not MIDI by name: {', '.join(folder.not_midi)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
