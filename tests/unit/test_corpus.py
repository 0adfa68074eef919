"""Corpora built from music21's real corpus files: manifest, MIDI files, split, determinism."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest

from agent.cli import main
from agent.errors import EXIT_CONFIG, CorpusError
from agent.model.corpus import (
    CORPUS_FORMAT,
    RECIPES,
    Corpus,
    build_corpus,
    load_corpus,
    split_of,
)

LIMIT = 3
# Generous vocal ranges (MIDI pitch) for soprano, alto, tenor, bass.
RANGES = [(57, 84), (50, 77), (45, 72), (33, 67)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Corpus]:
    root = tmp_path_factory.mktemp("corpora")
    return {name: build_corpus(name, root, limit=LIMIT) for name in RECIPES}


def manifest(corpus: Corpus) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpus.path / "manifest.json").read_text())
    return data


@pytest.mark.parametrize("name", list(RECIPES))
def test_manifest_records_source_rules_and_counts(built: dict[str, Corpus], name: str) -> None:
    corpus = built[name]
    m = manifest(corpus)
    assert m["format"] == CORPUS_FORMAT and m["version"] == 1 and m["name"] == name
    assert m["source"]["package"] == "music21" and m["source"]["version"]
    [collection] = m["collections"]
    assert collection["provenance"] and "public domain" in collection["licence"]
    assert {"velocity", "tempo", "repeats", "split"} <= set(m["rules"])
    assert m["hash"] == corpus.hash
    works = m["works"]
    assert [w["id"] for w in works] == sorted(w["id"] for w in works)
    assert collection["works"] == len(works) == len(corpus.works) == LIMIT
    assert collection["notes"] == sum(w["notes"] for w in works)
    assert sum(s["works"] for s in m["splits"].values()) == LIMIT
    assert sum(s["notes"] for s in m["splits"].values()) == collection["notes"]
    text = (corpus.path / "manifest.json").read_text()
    assert text == json.dumps(m, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", list(RECIPES))
def test_midi_files_hold_the_notes_the_manifest_counts(built: dict[str, Corpus],
                                                       name: str) -> None:
    corpus = built[name]
    entries = {w["id"]: w for w in manifest(corpus)["works"]}
    assert sorted(p.stem for p in (corpus.path / "midi").glob("*.mid")) == sorted(entries)
    for work in corpus.works:
        mid = mido.MidiFile(corpus.path / "midi" / f"{work.id}.mid")
        assert mid.type == 1 and mid.ticks_per_beat == 480
        assert len(mid.tracks) == 1 + len(RECIPES[name].voices)
        assert [t.name for t in mid.tracks[1:]] == list(RECIPES[name].voices)
        metas = {m.type: m for m in mid.tracks[0] if m.is_meta}
        assert mido.tempo2bpm(metas["set_tempo"].tempo) == pytest.approx(work.bpm, abs=1e-3)
        assert "time_signature" in metas
        ons = sum(1 for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0)
        assert ons == entries[work.id]["notes"] == len(work.pitch) > 0


@pytest.mark.parametrize("name", list(RECIPES))
def test_split_is_a_function_of_the_work_id(built: dict[str, Corpus], name: str) -> None:
    for work in built[name].works:
        bucket = int(hashlib.sha256(work.id.encode()).hexdigest(), 16) % 10
        assert work.split == {0: "test", 1: "valid"}.get(bucket, "train") == split_of(work.id)
    corpus = built[name]
    assert sum(len(corpus.split(s)) for s in ("train", "valid", "test")) == len(corpus.works)
    with pytest.raises(CorpusError, match="unknown split"):
        corpus.split("dev")


@pytest.mark.parametrize("name", list(RECIPES))
def test_a_rebuild_is_byte_identical(built: dict[str, Corpus], name: str,
                                     tmp_path: Path) -> None:
    again = build_corpus(name, tmp_path, limit=LIMIT)
    first = built[name]
    assert again.hash == first.hash
    for a in sorted((first.path / "midi").iterdir()):
        assert (again.path / "midi" / a.name).read_bytes() == a.read_bytes()
    assert (again.path / "manifest.json").read_bytes() == (
        first.path / "manifest.json").read_bytes()


def test_chorales_load_as_four_voices_in_vocal_ranges(built: dict[str, Corpus]) -> None:
    for work in built["bach-chorales"].works:
        assert work.collection == "bach-chorales" and work.id.startswith("bwv")
        assert set(work.voice.tolist()) == {0, 1, 2, 3}
        for voice, (low, high) in enumerate(RANGES):
            pitches = work.pitch[work.voice == voice]
            assert low <= pitches.min() and pitches.max() <= high, (work.id, voice)
        # the soprano sits above the bass on average: voices are not shuffled
        assert work.pitch[work.voice == 0].mean() > work.pitch[work.voice == 3].mean() + 12
        assert work.bar_beats in (3.0, 4.0) and work.key and work.key.endswith(("major", "minor"))


@pytest.mark.parametrize("name", list(RECIPES))
def test_loaded_arrays_are_typed_sorted_and_positive(built: dict[str, Corpus],
                                                     name: str) -> None:
    for work in built[name].works:
        assert work.onset.dtype == np.float64 and work.duration.dtype == np.float64
        assert {a.dtype for a in (work.pitch, work.velocity, work.voice)} == {np.dtype(np.int16)}
        assert len({len(a) for a in (work.onset, work.duration, work.pitch, work.velocity,
                                     work.voice)}) == 1
        order = np.lexsort((work.voice, work.pitch, work.onset))
        assert (order == np.arange(len(order))).all()
        assert work.onset[0] >= 0 and (work.duration > 0).all()
        assert (work.velocity == 80).all()


def test_loaded_notes_equal_the_score_music21_reads(built: dict[str, Corpus]) -> None:
    from music21 import corpus as m21corpus

    score = m21corpus.parse("bach/bwv10.7").expandRepeats()
    expected = sorted(
        (round(float(n.offset) * 480), p.midi, voice)
        for voice, part in enumerate(score.parts)
        for n in part.stripTies().flatten().notes if n.quarterLength > 0 for p in n.pitches)
    work = next(w for w in built["bach-chorales"].works if w.id == "bwv10.7")
    got = sorted(zip((work.onset * 480).round().astype(int).tolist(), work.pitch.tolist(),
                     work.voice.tolist(), strict=True))
    assert got == expected


def test_a_tampered_midi_file_is_named(built: dict[str, Corpus], tmp_path: Path) -> None:
    copy = tmp_path / "bach-chorales"
    shutil.copytree(built["bach-chorales"].path, copy)
    victim = sorted((copy / "midi").glob("*.mid"))[1]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=victim.name) as e:
        load_corpus(copy)
    assert "stage-agent corpus build bach-chorales" in str(e.value)


def test_an_unbuilt_corpus_says_how_to_build_it(built: dict[str, Corpus],
                                                tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="stage-agent corpus build oneill-1850"):
        load_corpus(tmp_path / "oneill-1850")
    # the committed manifest without its (uncommitted) MIDI files
    copy = tmp_path / "copy" / "oneill-1850"
    copy.mkdir(parents=True)
    shutil.copy(built["oneill-1850"].path / "manifest.json", copy)
    with pytest.raises(CorpusError, match=r"missing.*stage-agent corpus build oneill-1850"):
        load_corpus(copy)


def test_an_unknown_recipe_is_a_user_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CorpusError, match="bach-chorales, oneill-1850"):
        build_corpus("palestrina", tmp_path)
    assert main(["corpus", "build", "palestrina", "--root", str(tmp_path)]) == EXIT_CONFIG
    assert "unknown corpus 'palestrina'" in capsys.readouterr().err


def test_cli_builds_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "build", "oneill-1850", "--root", str(tmp_path), "--limit", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("oneill-1850: 2 works (train ")
    assert "0 skipped" in out[-1]
    assert main(["corpus", "list", "--root", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "bach-chorales: not built" in listing
    assert "oneill-1850: 2 works" in listing and "MIDI files built" in listing


def test_a_missing_corpus_is_told_how_to_make_it(tmp_path: Path) -> None:
    """A recipe's folder is built; any other is the user's own music, imported."""
    for name, how in (("bach-chorales", "run `stage-agent corpus build bach-chorales`"),
                      ("mine", "make it with `stage-agent corpus import SOURCE... --name mine` "
                               "(or build one of the recipes: bach-chorales, oneill-1850)")):
        (tmp_path / name).mkdir()
        with pytest.raises(CorpusError) as e:
            load_corpus(tmp_path / name)
        assert str(e.value) == f"{tmp_path / name}: corpus not built (no manifest.json): {how}"
