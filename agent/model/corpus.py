"""Training corpora: reproducible MIDI folders built from music21's bundled corpus, or imported
from a musician's own MIDI files and recordings.

A corpus is a folder `<root>/<name>/` holding `manifest.json` (what was built, from what, under
which rules and licence, with a sha256 per file) and `midi/<work-id>.mid`, one Standard MIDI File
per work. Building needs music21 (agent/model/corpus_build.py); importing needs neither music21
nor mido (agent/model/corpus_write.py); loading needs only numpy (agent/model/smf_bytes.py reads
the files), so a machine that trains or performs never imports music21. corpora/README.md
describes the format.

The split of a work depends on its id alone, so it never changes with build order, `--limit`, or
the other works in the corpus: a test work stays a test work in every build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import CorpusError
from agent.events import PhraseNote
from agent.listen.keys import file_keys
from agent.model.smf_bytes import SmfError, read_smf

CORPUS_FORMAT = "stage-agent-corpus"
CORPUS_VERSION = 1
TICKS_PER_BEAT = 480
SPLITS = ("train", "valid", "test")
IMPORTED_BY = "stage-agent corpus import"  # an imported corpus's manifest source.program


@dataclass(frozen=True)
class Recipe:
    """How one corpus is made: where the works come from and what is known about them."""

    name: str
    description: str
    collection: str
    source_dir: str  # folder of music21's corpus the works come from
    provenance: str
    licence: str
    remarks: str
    voices: tuple[str, ...]  # part names in voice order; a work must have exactly these parts
    default_bpm: float  # when the score has no metronome mark


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="bach-chorales",
        description="J. S. Bach's four-part chorales (the Riemenschneider set as music21 lists "
                    "it), one MIDI track per voice: soprano, alto, tenor, bass.",
        collection="bach-chorales",
        source_dir="bach",
        provenance="MusicXML encodings distributed with music21 in its corpus folder `bach`. Most "
                   "files credit 'PDF (c)2004 Margaret Greentree, www.jsbchorales.net' (exported "
                   "from Finale with Dolet); a few carry no credit or were re-exported with "
                   "MuseScore. Where a chorale exists both as MusicXML and as Humdrum **kern, the "
                   "MusicXML file is used; the list of chorales is music21's "
                   "corpus.chorales.Iterator (Riemenschneider numbering).",
        licence="The music (J. S. Bach, 1685-1750) is in the public domain. The encodings are "
                "distributed with music21 under its corpus terms (music21/corpus/license.txt: "
                "distributed with the permission of the encoders; some encodings may not be used "
                "commercially; see the licence embedded in each file or directory). No licence "
                "for redistribution is stated, so the built MIDI files are not committed.",
        remarks="Only scores with exactly four parts are kept; chorales with instrumental parts "
                "(horns, violins, continuo) are skipped and listed. Works appearing twice in the "
                "Riemenschneider numbering are built once.",
        voices=("Soprano", "Alto", "Tenor", "Bass"),
        default_bpm=96.0,
    ),
    Recipe(
        name="oneill-1850",
        description="Francis O'Neill's 'The Music of Ireland' (1903, 1850 melodies): Irish "
                    "dance tunes and airs, one melody track per tune.",
        collection="oneill-1850",
        source_dir="oneills1850",
        provenance="ABC transcriptions distributed with music21 in its corpus folder "
                   "`oneills1850`. The Z: fields name many volunteer transcribers (among them "
                   "Henrik Norbeck, Bob Safranek, Trish O'Neil, John Chambers, Dan G. Petersen, "
                   "Michael Hogan, Stephen Foy, Norbert Paap, John B. Walsh); each tune's own "
                   "Z: field is in its ABC source.",
        licence="The music (published 1903, traditional tunes) is in the public domain. The "
                "transcriptions are distributed with music21 under its corpus terms "
                "(music21/corpus/license.txt); the ABC files state no licence of their own. No "
                "licence for redistribution is stated, so the built MIDI files are not committed.",
        remarks="Tunes are identified by their X: number (O'Neill's tune number). Some numbers "
                "are transcribed twice in different files: the first in file-name order that "
                "builds is kept, the others are listed as skipped. The last tune of "
                "0626-0700.abc is numbered X: 800 but is O'Neill's 700 (its B: field says so; "
                "800 is another tune in 0759-0810.abc), so it is built as oneill-0700.",
        voices=("Melody",),
        default_bpm=120.0,
    ),
)}


@dataclass(frozen=True)
class Work:
    """One piece as notes, every array sorted by (onset, pitch, voice)."""

    id: str  # stable id, also the MIDI file stem
    collection: str
    split: str  # train | valid | test
    bpm: float  # quarter notes per minute (first tempo)
    bar_beats: float  # bar length in quarter notes (first time signature)
    key: str | None  # e.g. "F major", "D mixolydian"; None if the source gives no mode
    onset: np.ndarray  # float64 quarter-note beats from the start
    duration: np.ndarray  # float64 beats, > 0
    pitch: np.ndarray  # int16 MIDI pitch
    velocity: np.ndarray  # int16 1..127
    voice: np.ndarray  # int16 part index (chorales 0=S 1=A 2=T 3=B; tunes 0)


@dataclass(frozen=True)
class Corpus:
    name: str
    path: Path
    hash: str  # identifies the corpus in checkpoints (see corpus_hash)
    works: tuple[Work, ...]

    def split(self, name: str) -> list[Work]:
        if name not in SPLITS:
            raise CorpusError(f"corpus {self.name}: unknown split {name!r}: "
                              f"one of {', '.join(SPLITS)}")
        return [w for w in self.works if w.split == name]


def split_of(work_id: str) -> str:
    """The fixed split of a work: sha256 of its id, mod 10: 0 test, 1 valid, else train."""
    bucket = int(hashlib.sha256(work_id.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def corpus_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over each work's id, a NUL byte and its MIDI file's bytes, in id order."""
    h = hashlib.sha256()
    for work_id, data in sorted(files):
        h.update(work_id.encode() + b"\0" + data)
    return h.hexdigest()


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise CorpusError(f"unknown corpus {name!r}: the recipes are {', '.join(RECIPES)}")
    return RECIPES[name]


def build_corpus(name: str, root: Path, *, limit: int | None = None,
                 progress: Callable[[str], None] | None = None) -> Corpus:
    """Build corpus `name` into root/name (music21 needed) and load it back."""
    chosen = recipe(name)
    if limit is not None and limit < 1:
        raise CorpusError(f"corpus {name}: --limit must be at least 1, not {limit}")
    try:
        from agent.model import corpus_build  # imports music21: only when building
    except ImportError as e:
        raise CorpusError(f"building corpus {name} needs music21 ({e}): "
                          "install it with `pip install 'stage-agent[corpus]'`") from None
    corpus_build.build(chosen, root / name, limit=limit, progress=progress)
    return load_corpus(root / name)


def load_corpus(path: Path) -> Corpus:
    """Read a built corpus, checking every MIDI file against the manifest's sha256."""
    manifest = read_manifest(path)
    name = str(manifest["name"])
    rebuild = (f"import it again (`stage-agent corpus import SOURCE... --name {name} --force`)"
               if manifest.get("source", {}).get("program") == IMPORTED_BY
               else f"run `stage-agent corpus build {name}`")
    works: list[Work] = []
    files: list[tuple[str, bytes]] = []
    for entry in manifest["works"]:
        file = path / "midi" / f"{entry['id']}.mid"
        try:
            data = file.read_bytes()
        except OSError:
            raise CorpusError(f"{file}: missing (MIDI files are built, not committed): "
                              f"{rebuild}") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CorpusError(f"{file}: sha256 differs from {path / 'manifest.json'} (the file "
                              f"was changed, or built by another build): {rebuild}")
        files.append((entry["id"], data))
        works.append(_work(entry, data, file))
    if corpus_hash(files) != manifest["hash"]:
        raise CorpusError(f"{path / 'manifest.json'}: the corpus hash does not match its files: "
                          f"{rebuild}")
    return Corpus(name=name, path=path, hash=str(manifest["hash"]), works=tuple(works))


def read_manifest(path: Path) -> dict[str, Any]:
    file = path / "manifest.json"
    build = (f"run `stage-agent corpus build {path.name}`" if path.name in RECIPES else
             f"make it with `stage-agent corpus import SOURCE... --name {path.name}` (or build "
             f"one of the recipes: {', '.join(RECIPES)})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path}: corpus not built (no manifest.json): {build}") from None
    except (OSError, ValueError) as e:
        raise CorpusError(f"{file}: not readable ({e}): {build}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CORPUS_FORMAT:
        raise CorpusError(f"{file}: not a {CORPUS_FORMAT} manifest: {build}")
    if manifest.get("version") != CORPUS_VERSION:
        raise CorpusError(f"{file}: version {manifest.get('version')!r}, this program reads "
                          f"version {CORPUS_VERSION}: {build}")
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """manifest.json as corpora/README.md gives it: sorted keys, indent 1, a newline at the end;
    written beside and renamed, so a reader never meets half a manifest."""
    text = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _work(entry: dict[str, Any], data: bytes, file: Path) -> Work:
    try:
        smf = read_smf(data)  # the lean reader (smf_bytes.py): ~3x mido over a whole corpus
    except SmfError as e:
        raise CorpusError(f"{file}: not a readable MIDI file: {e}") from None
    if smf.ticks_per_beat is None:
        raise CorpusError(f"{file}: not a readable MIDI file: SMPTE time, not beats")
    tpb = smf.ticks_per_beat
    rows: list[tuple[int, int, int, int, int]] = []  # start, pitch, voice, end, velocity
    # Track 0 is the conductor (tempo, metre, key); each later track is one voice.
    # Notes are paired as the agent hears them live (listen/keys.py: pedals, grace notes sorted
    # note-off first, overlapping notes of one key), with times in ticks; a note still sounding
    # at the end of its track ends there.
    for voice, track in enumerate(smf.tracks[1:]):
        keys = file_keys()
        notes: list[PhraseNote] = []
        for tick, message in track.messages:
            sound = keys.hear(tick, message)
            notes += [*sound.ended, *sound.grace]
        notes += keys.release_all(track.end)
        rows += [(n.onset_ns, n.pitch, voice, n.onset_ns + n.duration_ns, n.velocity)
                 for n in notes]
    rows.sort()
    table = np.array(rows, dtype=np.int64).reshape(-1, 5)
    return Work(
        id=str(entry["id"]), collection=str(entry["collection"]), split=str(entry["split"]),
        bpm=float(entry["bpm"]), bar_beats=float(entry["bar_beats"]),
        key=None if entry["key"] is None else str(entry["key"]),
        onset=table[:, 0] / tpb, duration=(table[:, 3] - table[:, 0]) / tpb,
        pitch=table[:, 1].astype(np.int16), velocity=table[:, 4].astype(np.int16),
        voice=table[:, 2].astype(np.int16))
