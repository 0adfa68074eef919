"""Corpus import, the command: folders walked, junk named with its reason, exit codes through
the real CLI, the split of small corpora, byte-identical output, and atomic replacement (an
interrupted or killed import leaves the old corpus as it was)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.errors import CorpusError
from agent.model.corpus import load_corpus, split_of
from agent.model.corpus_import import Skip
from agent.model.corpus_write import ImportSettings, import_corpus
from agent.record.corpus_recording import read_recording
from tests.midi_files import melody, name, smf, tune, write

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m agent.cli ARGS` in `cwd`, this checkout's code first."""
    path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                          text=True, timeout=120, check=False)


def tunes(folder: Path, count: int, notes: int = 40) -> list[Path]:
    return [tune(folder / f"tune-{i:02d}.mid", count=notes, low=30 + i % 80) for i in range(count)]


def manifest(corpus: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((corpus / "manifest.json").read_text())  # type: ignore[no-any-return]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_folder_with_junk_imports_what_is_usable_and_names_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tunes(src / "set", 10)
    tune(src / "Deeper" / "Loud Song.MIDI", count=30)
    tune(src / "Deeper" / "other.SMF", count=31)
    write(src / "empty.mid", b"")
    write(src / "notes.mid", b"remember to buy strings\n")
    write(src / "cut.mid", (src / "set" / "tune-03.mid").read_bytes()[:60])
    write(src / "type2.mid", smf([melody(20), melody(20)], fmt=2))
    write(src / "drums.mid", smf([melody(40, channel=9)]))
    write(src / "short.mid", smf([melody(5)]))
    write(src / "copy.mid", (src / "set" / "tune-00.mid").read_bytes())
    write(src / "zz-type0.mid", smf([melody(40, low=31)], fmt=0))  # tune-01's notes, type 0
    write(src / ".git" / "hidden.mid", smf([melody(40)]))
    write(src / "cover.jpg", b"\xff\xd8\xff")
    os.mkfifo(src / "pipe.mid")
    with (src / "huge.mid").open("wb") as f:
        f.truncate(17 << 20)  # sparse: refused by its size before a byte is read
    done = cli("corpus", "import", "src", "--name", "mine", "--licence", "CC-BY 4.0",
               "--provenance", "my own playing", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    left = dict(line.removeprefix("left out ").split(": ", 1)
                for line in done.stdout.splitlines() if line.startswith("left out"))
    assert left == {
        "src/set/tune-00.mid": "duplicate of src/copy.mid (the same bytes)",
        "src/cut.mid": "truncated: track 2 of 2 has 0 of its 413 bytes",
        "src/drums.mid": "drums only (40 notes)",
        "src/empty.mid": "empty file",
        "src/huge.mid": "larger than the 16 MiB a MIDI file is read up to",
        "src/notes.mid": "not a MIDI file (no MThd header)",
        "src/pipe.mid": "not a regular file (a FIFO): refused",
        "src/short.mid": "too short: 5 notes, fewer than the 16 of --min-notes",
        "src/type2.mid": "SMF type 2 (independent sequences, one pattern per track): not "
                         "supported; save it as type 1",
        "src/zz-type0.mid": "duplicate of src/set/tune-01.mid (the same notes)",
    }
    assert "mine: 12 works" in done.stdout and "1 other files ignored" in done.stdout
    m = manifest(tmp_path / "corpora" / "mine")
    assert sorted(w["id"] for w in m["works"]) == [
        "copy", "deeper-loud-song", "deeper-other",
        *[f"set-tune-{i:02d}" for i in range(1, 10)]]
    [collection] = m["collections"]
    assert (collection["licence"], collection["provenance"]) == ("CC-BY 4.0", "my own playing")
    assert m["source"]["paths"] == ["src"] and m["split_unit"] == "work"
    loud = next(w for w in m["works"] if w["id"] == "deeper-loud-song")
    assert loud["source"] == "src/Deeper/Loud Song.MIDI"
    assert loud["parts"] == [{"name": "melody", "channel": 1, "program": None, "notes": 30}]
    velocities = [40 + 7 * i % 80 for i in range(40)]  # tests/midi_files.py melody
    assert loud["velocity_range"] == [min(velocities[:30]), max(velocities[:30])]
    assert m["velocity_range"] == [min(velocities), max(velocities)] and m["velocity"] is None
    corpus = load_corpus(tmp_path / "corpora" / "mine")
    assert corpus.hash == m["hash"] and len(corpus.works) == 12
    # By id; no id here hashes to valid, so the work of lowest sha256(id) in train moved there.
    moved = {w.id: w.split for w in corpus.works if w.split != split_of(w.id)}
    assert moved == {"set-tune-01": "valid"} and {w.split for w in corpus.works} == {
        "train", "valid", "test"}


def test_a_flat_corpus_says_so_and_built_velocities_are_as_played(tmp_path: Path) -> None:
    for i in range(10):
        tune(tmp_path / "src" / f"t{i}.mid", count=20 + i, velocity=64)
    done = import_corpus([str(tmp_path / "src")], ImportSettings("flat", tmp_path / "c"),
                         read_recording)
    assert done.manifest["velocity"] == 64 and done.manifest["velocity_range"] == [64, 64]
    assert {int(v) for w in load_corpus(done.path).works for v in w.velocity} == {64}


def test_exit_codes_through_the_command_line(tmp_path: Path) -> None:
    write(tmp_path / "junk" / "a.mid", b"")
    write(tmp_path / "junk" / "b.mid", b"MThd")
    nothing = cli("corpus", "import", "junk", "--name", "x", cwd=tmp_path)
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    assert "nothing usable: none of the 2 files and recordings read gave a work" in \
        nothing.stderr
    assert "left out junk/a.mid: empty file" in nothing.stdout
    empty = cli("corpus", "import", "junk/none", "--name", "x", cwd=tmp_path)
    assert empty.returncode == 2 and "left out junk/none: not found" in empty.stdout
    tunes(tmp_path / "good", 10)
    assert cli("corpus", "import", "good", "--name", "x", cwd=tmp_path).returncode == 0
    again = cli("corpus", "import", "good", "--name", "x", cwd=tmp_path)
    assert again.returncode == 2 and "corpora/x exists: --force replaces it" in again.stderr
    assert cli("corpus", "import", "good", "--name", "x", "--force",
               cwd=tmp_path).returncode == 0
    listed = cli("corpus", "list", cwd=tmp_path)
    assert "x: 10 works" in listed.stdout and "(licence: not declared)" in listed.stdout


def test_bad_options_and_folders_are_named(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tunes(tmp_path / "good", 10)
    os.chdir(tmp_path)
    try:
        for bad, why in ((["--name", "bach-chorales"], "the name of a recipe corpus"),
                         (["--name", "../up"], "a corpus name is letters, digits, - and _"),
                         (["--name", "y", "--min-notes", "0"], "--min-notes 0: at least 1"),
                         (["--name", "y", "--jobs", "0"], "--jobs 0: at least 1")):
            assert main(["corpus", "import", "good", *bad]) == 2
            assert why in capsys.readouterr().err
        (tmp_path / "corpora" / "notacorpus").mkdir(parents=True)
        (tmp_path / "corpora" / "notacorpus" / "keep.txt").write_text("mine")
        assert main(["corpus", "import", "good", "--name", "notacorpus", "--force"]) == 2
        assert "is not a corpus folder" in capsys.readouterr().err
        assert (tmp_path / "corpora" / "notacorpus" / "keep.txt").read_text() == "mine"
        (tmp_path / "afile").write_text("")
        assert main(["corpus", "import", "good", "--name", "y", "--root", "afile"]) == 1
        assert "afile/y: cannot write the corpus" in capsys.readouterr().err
        assert main(["corpus", "import", "good", "--name", "j", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert (summary["works"], summary["notes"], summary["left_out"]) == (10, 400, [])
    finally:
        os.chdir(REPO)


def test_below_ten_works_the_split_is_by_8_bar_segments(tmp_path: Path) -> None:
    # Three tunes of 32, 35 and 42 bars (4/4): 4, 4 and 5 segments (a last piece of fewer than
    # 4 bars joins the segment before it).
    for i, bars in enumerate((32, 35, 42)):
        tune(tmp_path / "src" / f"t{i}.mid", count=bars * 4)
    done = import_corpus([str(tmp_path / "src")], ImportSettings("few", tmp_path / "c"),
                         read_recording)
    m = done.manifest
    assert m["split_unit"] == "segment"
    assert [(w["id"], w["bars"], w["notes"]) for w in m["works"]] == [
        ("t0.b0001", [1, 8], 32), ("t0.b0009", [9, 16], 32), ("t0.b0017", [17, 24], 32),
        ("t0.b0025", [25, 32], 32), ("t1.b0001", [1, 8], 32), ("t1.b0009", [9, 16], 32),
        ("t1.b0017", [17, 24], 32), ("t1.b0025", [25, 35], 44), ("t2.b0001", [1, 8], 32),
        ("t2.b0009", [9, 16], 32), ("t2.b0017", [17, 24], 32), ("t2.b0025", [25, 32], 32),
        ("t2.b0033", [33, 42], 40)]
    assert all(m["splits"][s]["works"] >= 1 for s in ("train", "valid", "test"))
    corpus = load_corpus(done.path)
    segment = next(w for w in corpus.works if w.id == "t1.b0009")
    assert segment.onset[0] == 0.0 and segment.onset[-1] == 31.0  # from its own bar 1
    assert {w.split for w in corpus.works} == {"train", "valid", "test"}


def test_too_small_to_validate_is_refused_with_the_number_needed(tmp_path: Path) -> None:
    tune(tmp_path / "src" / "a.mid", count=8 * 4 * 4)  # 32 bars: 4 segments
    tune(tmp_path / "src" / "b.mid", count=8 * 4 * 2, low=50)  # 16 bars: 2 segments
    with pytest.raises(CorpusError) as e:
        import_corpus([str(tmp_path / "src")], ImportSettings("tiny", tmp_path / "c"),
                      read_recording)
    assert "too small to validate: 2 works (fewer than 10, so cut into 8-bar segments) give " \
           "6 segments, and at least 10 are needed" in str(e.value)
    assert "add about 32 bars of music, or 8 more works" in str(e.value)
    assert not (tmp_path / "c" / "tiny").exists() and list((tmp_path / "c").iterdir()) == []


def test_a_split_left_empty_takes_a_work_from_the_largest(tmp_path: Path) -> None:
    # Ten works whose ids all hash to train (no valid, no test work by id alone).
    ids = [i for i in (f"w{k}" for k in range(200)) if split_of(i) == "train"][:10]
    for i, work_id in enumerate(ids):
        tune(tmp_path / "src" / f"{work_id}.mid", count=20, low=40 + i)
    m = import_corpus([str(tmp_path / "src")], ImportSettings("s", tmp_path / "c"),
                      read_recording).manifest
    assert {s: m["splits"][s]["works"] for s in ("train", "valid", "test")} == {
        "train": 8, "valid": 1, "test": 1}


def test_the_same_input_gives_a_byte_identical_corpus(tmp_path: Path) -> None:
    tunes(tmp_path / "src" / "b", 6)
    tunes(tmp_path / "src" / "a", 6, notes=33)
    write(tmp_path / "src" / "junk.mid", b"junk")
    os.chdir(tmp_path)
    try:
        first = import_corpus(["src/b", "src/a"], ImportSettings("one", Path("c1"), jobs=1),
                              read_recording)
        second = import_corpus(["src/a", "src/b"], ImportSettings("one", Path("c2"), jobs=1),
                               read_recording)
    finally:
        os.chdir(REPO)
    assert folder_bytes(tmp_path / first.path) == folder_bytes(tmp_path / second.path)
    assert len(folder_bytes(tmp_path / first.path)) == 13


def test_reading_in_several_processes_gives_the_same_corpus(tmp_path: Path) -> None:
    tunes(tmp_path / "src", 70, notes=20)
    one = import_corpus([str(tmp_path / "src")], ImportSettings("p", tmp_path / "c1", jobs=1),
                        read_recording)
    two = import_corpus([str(tmp_path / "src")], ImportSettings("p", tmp_path / "c2", jobs=2),
                        read_recording)
    assert folder_bytes(one.path) == folder_bytes(two.path)


def test_an_import_that_fails_midway_leaves_the_old_corpus_as_it_was(tmp_path: Path) -> None:
    tunes(tmp_path / "old", 10)
    old = import_corpus([str(tmp_path / "old")], ImportSettings("c", tmp_path / "corpora"),
                        read_recording)
    before = folder_bytes(old.path)
    tunes(tmp_path / "new", 10, notes=50)
    for run in ("a", "b"):  # two recordings: the second is where the import is interrupted
        (tmp_path / "new" / run).mkdir()
        (tmp_path / "new" / run / "log.jsonl").write_text("{}\n")
    calls = []

    def interrupted(folder: Path, given: str) -> object:
        calls.append(given)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C half-way through the reading
        raise Skip("not a recording")

    with pytest.raises(KeyboardInterrupt):
        import_corpus([str(tmp_path / "new")], ImportSettings("c", tmp_path / "corpora",
                                                              force=True, jobs=1),
                      interrupted)  # type: ignore[arg-type]
    assert len(calls) == 2
    assert folder_bytes(old.path) == before and load_corpus(old.path).hash == old.manifest["hash"]
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["c"]


def test_a_killed_import_leaves_the_old_corpus_and_the_next_one_cleans_up(
        tmp_path: Path) -> None:
    tunes(tmp_path / "old", 10)
    assert cli("corpus", "import", "old", "--name", "c", cwd=tmp_path).returncode == 0
    before = folder_bytes(tmp_path / "corpora" / "c")
    # Enough files that reading takes a while: killed as soon as its temporary folder appears.
    tunes(tmp_path / "big", 400, notes=200)
    path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "corpus", "import", "big",
                             "--name", "c", "--force", "--jobs", "1"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": path},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "corpora").glob(".c.import-*")):
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert list((tmp_path / "corpora").glob(".c.import-*")), "the killed import's folder"
    assert folder_bytes(tmp_path / "corpora" / "c") == before
    done = cli("corpus", "import", "old", "--name", "c", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["c"]
    assert folder_bytes(tmp_path / "corpora" / "c") == before


def test_an_old_corpus_set_aside_by_a_killed_swap_is_put_back(tmp_path: Path) -> None:
    tunes(tmp_path / "old", 10)
    old = import_corpus([str(tmp_path / "old")], ImportSettings("c", tmp_path / "corpora"),
                        read_recording)
    before = folder_bytes(old.path)
    # Killed between the two renames of the swap: the old corpus is under its hidden name.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    old.path.rename(tmp_path / "corpora" / f".c.old-{dead}")
    with pytest.raises(CorpusError, match="exists: --force replaces it"):
        import_corpus([str(tmp_path / "old")], ImportSettings("c", tmp_path / "corpora"),
                      read_recording)
    assert folder_bytes(old.path) == before
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["c"]


def test_sources_are_walked_once_each_in_path_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tunes(src / "b", 5)
    tunes(src / "a", 5, notes=30)
    (src / "a" / "loop").symlink_to(src)  # a folder linked into itself
    write(src / "a" / "odd.KAR", smf([[name("k")], melody(20, low=70)]))
    done = import_corpus([str(src)], ImportSettings("w", tmp_path / "c"), read_recording)
    sources = [w["source"] for w in done.manifest["works"]]
    assert sources == sorted(sources) and len(sources) == 11
    assert f"{src}/a/odd.KAR" in sources
