"""bench/own_style.py's steps after the import (training, held-out bits, the new style heard,
velocity) with their exact labels (its smoke run in test_bench_smoke.py runs them too): here on a
built corpus standing in for an imported one (copied under another name, as an import of the
user's folder would name it), with the real `stage-agent train` in its own process. No figure
is asserted (they are the bench's to print)."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import mido
import pytest

from agent.model.corpus import build_corpus, corpus_hash, load_corpus

BENCH = Path(__file__).resolve().parents[2] / "bench"


def with_dynamics(corpus: Path, name: str) -> None:
    """Rename a built corpus and give its notes velocities 40-100 (as a player's would vary),
    its manifest's sha256s and hash made to match."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    files = []
    for entry in manifest["works"]:
        path = corpus / "midi" / f"{entry['id']}.mid"
        mid = mido.MidiFile(path)
        for track in mid.tracks:
            for i, msg in enumerate(track):
                if msg.type == "note_on" and msg.velocity > 0:
                    track[i] = msg.copy(velocity=40 + (i * 7) % 61)
        mid.save(path)
        data = path.read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        files.append((entry["id"], data))
    manifest.update(name=name, hash=corpus_hash(files))
    (corpus / "manifest.json").write_text(json.dumps(manifest))


def test_the_steps_after_the_import_run_on_a_stand_in_corpus(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "corpora"
    for name in ("oneill-1850", "bach-chorales"):
        build_corpus(name, root, limit=12)
    shutil.copytree(root / "oneill-1850", root / "mine")
    with_dynamics(root / "mine", "mine")
    sys.path.insert(0, str(BENCH))
    try:
        import own_style
    finally:
        sys.path.remove(str(BENCH))
    shipped = [load_corpus(root / name) for name in own_style.CHECK_STYLES]
    args = argparse.Namespace(finetune_minutes=0.1, scratch_minutes=0.1, pieces=1, seed=1)
    said: list[str] = []
    assert own_style.after_import(load_corpus(root / "mine"), shipped, args,
                                  tmp_path / "out", said) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in said[:3]] == ["core", "none", "scratch"], said
    assert said[0].startswith("core: best validation after")
    assert any(line.startswith("velocity, corpus mine: 40-100") for line in said)
    assert "scratch: best validation" in out
    assert "base, styles blended evenly" in out and "scratch, style mine" in out
    assert "old style oneill-1850: base" in out
    assert "5b. the new style: 1 held-out works of mine" in out
    assert "scratch, style mine - demo.pt, style bach-chorales: mean distance" in out
    assert ", beat_lock 0 - demo.pt, style oneill-1850, beat_lock 0: mean distance" in out
    assert "6. velocity" in out and "corpus mine (train split): 40-100" in out
