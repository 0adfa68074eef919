"""Build a corpus from music21's bundled corpus: scores -> notes -> MIDI files + manifest.json.

Imported only by agent.model.corpus.build_corpus, so music21 is needed only to build. The MIDI
files are written with mido, not music21's writer, so their bytes depend only on the notes: the
same music21 version gives byte-identical files on every build (tests/unit/test_corpus.py).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mido
import music21
from music21 import bar, converter, key, meter, spanner, stream, tempo

from agent.model.corpus import (
    CORPUS_FORMAT,
    CORPUS_VERSION,
    SPLITS,
    TICKS_PER_BEAT,
    Recipe,
    corpus_hash,
    split_of,
    write_manifest,
)

VELOCITY = 80  # the scores carry no dynamics
PROGRESS_EVERY = 50  # candidates between progress lines
MAX_EXPANSION = 4.0  # longer after expanding repeats than this many times: music21 misread them
# MIDI key signatures are a count of sharps (negative: flats) and a major/minor flag.
_MAJOR = ("Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#")
_MINOR = tuple(f"{k}m" for k in ("Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#",
                                 "G#", "D#", "A#"))
# Tunes whose X: number is wrong in music21's ABC files: (file, X) -> O'Neill's number.
_ONEILL_NUMBER_FIXES = {("0626-0700.abc", 800): 700}  # B: field says "O'Neill's 700"

RULES = {
    "velocity": f"fixed {VELOCITY} for every note: the scores carry no dynamics",
    "tempo": "the first metronome mark with a number in the score, as quarter notes per minute "
             "(for ABC the Q: field as music21 reads it: Q:80 is 80 quarter notes per minute); "
             "else the collection's default (bach-chorales 96, oneill-1850 120). MusicXML "
             "<sound tempo> playback hints, which music21 reads as number-less playback-only "
             "marks, are not used: no chorale has a printed metronome mark",
    "repeats": "expanded with music21's Score.expandRepeats (repeat signs, first and second "
               "endings), after giving each end repeat that lacks a start repeat one right after "
               "the previous end repeat or double bar and its endings (how ABC players read a "
               "lone `:|`); when music21 cannot "
               f"expand them, or expanding makes a work more than {MAX_EXPANSION:g} times longer, "
               "the score is taken as written and the work's `repeats` field says so",
    "timing": f"{TICKS_PER_BEAT} ticks per quarter note; onsets and ends rounded to the nearest "
              "tick; tied notes merged; grace notes (no duration of their own) left out; a note "
              "overlapping the next note of the same pitch in its voice is cut where it starts; "
              "a pickup bar is padded to a full bar (silence before its first note), so bar "
              "lines fall on multiples of bar_beats",
    "meter_and_key": "bar_beats and the MIDI time signature come from the first time signature "
                     "(4/4 when there is none); key is the first key as encoded (tonic and mode), "
                     "null when the source gives only a key signature",
    "split": "by work id: int(sha256(id), 16) % 10 == 0 -> test, == 1 -> valid, else train",
}


class _Skip(Exception):
    """A work that does not fit the recipe (e.g. five parts for a four-voice corpus)."""


@dataclass(frozen=True)
class _Candidate:
    id: str
    source: str  # where in music21's corpus it comes from
    parse: Callable[[], Any]  # -> music21 Score


@dataclass(frozen=True)
class _Piece:
    id: str
    title: str
    source: str
    bpm: float
    time_signature: tuple[int, int]
    bar_beats: float
    key: str | None
    key_sharps: int | None
    minor: bool
    repeats: str
    notes: list[tuple[int, int, int, int]]  # start tick, end tick, pitch, voice


def build(recipe: Recipe, out: Path, *, limit: int | None,
          progress: Callable[[str], None] | None) -> None:
    say = progress or (lambda _: None)
    midi_dir = out / "midi"
    midi_dir.mkdir(parents=True, exist_ok=True)
    for stale in midi_dir.glob("*.mid"):  # works of an earlier build must not linger
        stale.unlink()
    candidates = list(_candidates(recipe))
    works: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    files: list[tuple[str, bytes]] = []
    built: set[str] = set()
    for i, cand in enumerate(candidates):
        if limit is not None and len(works) >= limit:
            break
        if i % PROGRESS_EVERY == 0:
            say(f"{recipe.name}: {i}/{len(candidates)} read, {len(works)} built, "
                f"{len(skipped)} skipped")
        if cand.id in built:
            skipped.append({"id": cand.id, "reason": f"{cand.source}: a second transcription "
                                                      f"of {cand.id}, which is already built"})
            continue
        try:
            piece = _piece(cand, recipe)
        except Exception as e:  # music21 raises many kinds; the work is skipped and recorded
            skipped.append({"id": cand.id, "reason": f"{cand.source}: {_reason(e)}"})
            say(f"{recipe.name}: skipped {cand.id}: {_reason(e)}")
            continue
        data = _midi_bytes(piece, recipe)
        (midi_dir / f"{piece.id}.mid").write_bytes(data)
        files.append((piece.id, data))
        built.add(piece.id)
        works.append(_entry(piece, recipe, data))
    works.sort(key=lambda w: str(w["id"]))
    # Last: the manifest appears only once every file it names is written.
    write_manifest(out / "manifest.json", _manifest(recipe, works, skipped, files))
    say(f"{recipe.name}: {len(works)} built, {len(skipped)} skipped")


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, _Skip) else f"{type(e).__name__}: {text}"


# --- sources ---------------------------------------------------------------------------------

def _candidates(recipe: Recipe) -> Iterator[_Candidate]:
    if recipe.name == "bach-chorales":
        return _chorales()
    if recipe.name == "oneill-1850":
        return _oneill(recipe)
    raise AssertionError(f"no source for recipe {recipe.name}")


_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn")


def _chorales() -> Iterator[_Candidate]:
    names = set(music21.corpus.chorales.Iterator(returnType="filename"))
    for name in sorted(names, key=lambda n: n.split("/")[-1]):
        work_id = name.split("/")[-1]
        found = music21.corpus.getWork(name)
        paths = found if isinstance(found, list) else [found]
        # getWork matches by prefix (bwv190.7 also finds bwv190.7-inst, the version with the
        # orchestra): the file named exactly after the work comes first. The MusicXML encodings
        # share one origin, so they come before the **kern files of a few chorales.
        path = min(paths, key=lambda p: (p.stem != work_id, _SUFFIXES.index(p.suffix)
                                         if p.suffix in _SUFFIXES else 9, p.name))
        yield _Candidate(id=work_id, source=f"bach/{path.name}",
                         parse=partial(converter.parse, path))


def _oneill(recipe: Recipe) -> Iterator[_Candidate]:
    folder = Path(music21.__file__).parent / "corpus" / recipe.source_dir
    for file in sorted(folder.glob("*.abc")):
        text = file.read_text(encoding="latin-1")
        header, *tunes = re.split(r"(?m)^(?=X:)", text)
        for tune in tunes:
            match = re.match(r"X:\s*(\d+)", tune)
            if match is None:
                continue
            number = _ONEILL_NUMBER_FIXES.get((file.name, int(match[1])), int(match[1]))
            yield _Candidate(
                id=f"oneill-{number:04d}", source=f"{recipe.source_dir}/{file.name} X:{match[1]}",
                # The file header (fields before the first X:) applies to every tune in it.
                parse=partial(converter.parseData, header + tune, format="abc"))


# --- score -> notes --------------------------------------------------------------------------

def _piece(cand: _Candidate, recipe: Recipe) -> _Piece:
    score = cand.parse()
    parts = list(score.parts)
    if len(parts) != len(recipe.voices):
        names = ", ".join(str(p.partName) for p in parts)
        raise _Skip(f"{len(parts)} parts ({names}); this corpus takes exactly "
                    f"{len(recipe.voices)} ({', '.join(recipe.voices)})")
    _close_repeats(score)
    try:
        expanded, repeats = score.expandRepeats(), "expanded"
    except music21.repeat.ExpanderException as e:
        expanded, repeats = score, f"as written: music21 cannot expand them ({e})"
    if expanded.highestTime > MAX_EXPANSION * score.highestTime:
        expanded, repeats = score, (f"as written: expanding made it "
                                    f"{expanded.highestTime / score.highestTime:.1f} times longer")
    # A pickup bar is short at its start (paddingLeft): shift everything by that much, so bar
    # lines fall on multiples of the bar length and a note's position in the bar is its onset
    # modulo the bar (what the model's position token reads).
    first_bar = expanded.parts[0].getElementsByClass(stream.Measure).first()
    pickup = round(float(first_bar.paddingLeft) * TICKS_PER_BEAT) if first_bar is not None else 0
    notes: dict[tuple[int, int, int], int] = {}  # (voice, pitch, start) -> end
    for voice, part in enumerate(expanded.parts):
        for n in part.stripTies().flatten().notes:
            if n.duration.isGrace or n.quarterLength <= 0:
                continue
            start = round(float(n.offset) * TICKS_PER_BEAT) + pickup
            end = round(float(n.offset + n.quarterLength) * TICKS_PER_BEAT) + pickup
            for p in n.pitches:
                k = (voice, int(p.midi), start)
                notes[k] = max(end, notes.get(k, end))
    if not notes:
        raise _Skip("no notes")
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    ks = score.recurse().getElementsByClass(key.KeySignature).first()
    is_key = isinstance(ks, key.Key)
    return _Piece(
        id=cand.id, title=str(score.metadata.title or "") if score.metadata else "",
        source=cand.source, bpm=_bpm(score, recipe),
        time_signature=(ts.numerator, ts.denominator) if ts else (4, 4),
        bar_beats=float(ts.barDuration.quarterLength) if ts else 4.0,
        key=f"{ks.tonic.name.replace('-', 'b')} {ks.mode}" if is_key else None,
        key_sharps=None if ks is None else int(ks.sharps),
        minor=is_key and ks.mode == "minor", repeats=repeats, notes=_unoverlap(notes))


def _close_repeats(score: Any) -> None:
    """Give each end repeat that has no start repeat one, after the previous end repeat.

    ABC tunes often mark every strain with a closing `:|` only, which players read as "repeat
    from the previous `:|` or `||` (after its endings), or the start". music21's expander repeats
    each of them from the start of the tune, so a tune of eight such strains grew ~100-fold.
    """
    for part in score.parts:
        opened = False
        section = None  # the first measure after the last end repeat or double bar
        for measure in part.getElementsByClass(stream.Measure):
            in_ending = any(isinstance(s, spanner.RepeatBracket)
                            for s in measure.getSpannerSites())
            if section is None and not in_ending:  # a second ending starts no section
                section = measure
            if _is_repeat(measure.leftBarline, "start"):
                opened = True
            if _is_repeat(measure.rightBarline, "end"):
                if not opened and section is not None:
                    section.leftBarline = bar.Repeat(direction="start")
                opened, section = False, None
            elif isinstance(measure.rightBarline, bar.Barline) and (
                    measure.rightBarline.type in ("double", "light-light", "final")):
                section = None


def _is_repeat(barline: Any, direction: str) -> bool:
    return isinstance(barline, bar.Repeat) and barline.direction == direction


def _bpm(score: Any, recipe: Recipe) -> float:
    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):
        # Marks made up from a word ("Andante") carry an implicit number: not the source's.
        if mark.number is not None and not mark.numberImplicit:
            return round(float(mark.getQuarterBPM()), 3)
    return recipe.default_bpm


def _unoverlap(notes: dict[tuple[int, int, int], int]) -> list[tuple[int, int, int, int]]:
    """Cut a note where the next note of the same pitch in its voice starts.

    MIDI cannot hold two overlapping notes of one pitch on one channel unambiguously, and the
    loader must read back exactly what was written.
    """
    out: list[tuple[int, int, int, int]] = []
    ordered = sorted(notes.items())
    for i, ((voice, pitch, start), end) in enumerate(ordered):
        if i + 1 < len(ordered) and ordered[i + 1][0][:2] == (voice, pitch):
            end = min(end, ordered[i + 1][0][2])
        out.append((start, end, pitch, voice))
    return sorted(out)


# --- output ----------------------------------------------------------------------------------

def _midi_bytes(piece: _Piece, recipe: Recipe) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    num, den = piece.time_signature
    conductor = [
        mido.MetaMessage("track_name", name=piece.id, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.bpm), time=0),
        mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0),
    ]
    if piece.key_sharps is not None and -7 <= piece.key_sharps <= 7:
        names = _MINOR if piece.minor else _MAJOR
        conductor.append(mido.MetaMessage("key_signature", key=names[piece.key_sharps + 7],
                                          time=0))
    mid.tracks.append(mido.MidiTrack(conductor))
    for voice, name in enumerate(recipe.voices):
        events: list[tuple[int, int, int]] = []  # tick, 0 = off / 1 = on, pitch
        for start, end, pitch, v in piece.notes:
            if v == voice:
                events += [(start, 1, pitch), (end, 0, pitch)]
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tick, on, pitch in sorted(events):  # offs before ons at the same tick
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=voice, note=pitch,
                                      velocity=VELOCITY if on else 0, time=tick - last))
            last = tick
        mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def _entry(piece: _Piece, recipe: Recipe, data: bytes) -> dict[str, Any]:
    return {
        "id": piece.id, "title": piece.title, "source": piece.source,
        "collection": recipe.collection, "split": split_of(piece.id), "key": piece.key,
        "bpm": piece.bpm, "bar_beats": piece.bar_beats,
        "time_signature": f"{piece.time_signature[0]}/{piece.time_signature[1]}",
        "repeats": piece.repeats, "notes": len(piece.notes),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _manifest(recipe: Recipe, works: list[dict[str, Any]], skipped: list[dict[str, str]],
              files: list[tuple[str, bytes]]) -> dict[str, Any]:
    def count(ws: list[dict[str, Any]]) -> dict[str, int]:
        return {"works": len(ws), "notes": sum(int(w["notes"]) for w in ws)}

    return {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "name": recipe.name,
        "description": recipe.description,
        "source": {"package": "music21", "version": music21.__version__,
                   "folder": recipe.source_dir},
        "collections": [{
            "name": recipe.collection, "provenance": recipe.provenance,
            "licence": recipe.licence, "remarks": recipe.remarks, **count(works)}],
        "rules": RULES,
        "voices": list(recipe.voices),
        "ticks_per_beat": TICKS_PER_BEAT,
        "velocity": VELOCITY,
        "splits": {s: count([w for w in works if w["split"] == s]) for s in SPLITS},
        "works": works,
        "skipped": skipped,
        "hash": corpus_hash(files),
    }
