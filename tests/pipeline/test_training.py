"""`stage-agent train` and `eval` end to end on small real corpora built from music21."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import pytest
import torch

from agent.cli import main
from agent.errors import ModelError
from agent.model import checkpoint
from agent.model.corpus import build_corpus
from agent.model.eval_checkpoint import evaluate
from agent.model.net import NetConfig
from agent.model.train import TrainSettings, train

SMALL = NetConfig(embed=32, hidden=48, head=32)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    for name in ("bach-chorales", "oneill-1850"):
        build_corpus(name, root, limit=20)
    return root


@pytest.fixture(scope="module")
def trained(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    train([corpora / "bach-chorales", corpora / "oneill-1850"],
          TrainSettings(out=out, max_epochs=2, batch=8, window=64, net=SMALL))
    return out


def test_training_writes_self_describing_checkpoints(trained: Path, corpora: Path) -> None:
    best = checkpoint.load(trained / "best.pt")
    assert best.styles == ("bach-chorales", "oneill-1850")
    assert [c["hash"] for c in best.corpora] == [
        build_corpus_hash(corpora / "bach-chorales"), build_corpus_hash(corpora / "oneill-1850")]
    history = best.train["history"]
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert best.train["best_epoch"] == min(history, key=lambda h: h["valid_bits"])["epoch"]
    assert best.extra == {}  # what ships carries no optimiser state
    last = checkpoint.load(trained / "last.pt")
    assert last.train["epochs"] == 2
    assert set(last.extra) == {"optimiser", "plateau", "rng", "progress"}
    assert best.corpus_lines.size > 1000  # every voice of every work, for the copy guard
    # What the model card prints: each corpus's provenance and licence, its flat velocity.
    assert [c["collections"][0]["name"] for c in best.corpora] == ["bach-chorales",
                                                                   "oneill-1850"]
    assert all(c["collections"][0]["licence"].startswith("The music") for c in best.corpora)
    assert [c["velocity"] for c in best.corpora] == [80, 80]
    assert best.runs == ({"kind": "scratch", "corpora": ["bach-chorales", "oneill-1850"],
                          "epochs": 2, "best_epoch": best.train["best_epoch"],
                          "seconds": best.train["seconds"],
                          "seconds_to_best": best.train["seconds_to_best"],
                          "best_valid_bits": best.train["best_valid_bits"],
                          "best_valid_pitch_bits": history[best.train["best_epoch"] - 1][
                              "valid_pitch_bits"]},)
    assert best.parent is None


def build_corpus_hash(path: Path) -> str:
    from agent.model.corpus import load_corpus
    return load_corpus(path).hash


def test_resume_continues_where_training_stopped(trained: Path, corpora: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    train([corpora / "bach-chorales", corpora / "oneill-1850"],
          TrainSettings(out=out, max_epochs=3, batch=8, window=64, net=SMALL, resume=True))
    last = checkpoint.load(out / "last.pt")
    assert [h["epoch"] for h in last.train["history"]] == [1, 2, 3]
    before = checkpoint.load(trained / "last.pt").train["history"]
    assert last.train["history"][:2] == before  # the first two epochs are the same record
    with pytest.raises(ModelError, match="trained on other corpora"):
        train([corpora / "bach-chorales"],
              TrainSettings(out=out, max_epochs=4, net=SMALL, resume=True))


def test_eval_reports_likelihood_sample_and_originality(trained: Path, corpora: Path,
                                                        tmp_path: Path) -> None:
    ckpt = checkpoint.load(trained / "best.pt")
    report = evaluate(ckpt, [corpora], sample_path=tmp_path / "s.mid")
    assert set(report["heldout"]) == {"all", "bach-chorales", "oneill-1850"}
    for figures in report["heldout"].values():
        assert 0 < figures["pitch_bits_per_note"] < figures["bits_per_event"]
        assert figures["events"] > 0
    originality = report["originality"]
    assert originality["longest_shared_run_notes"] <= originality["bound_notes"] == 12
    assert originality["sample_notes"] == 2 * 200
    sample = mido.MidiFile(tmp_path / "s.mid")
    names = [t.name for t in sample.tracks[1:]]
    assert names == ["bach-chorales", "oneill-1850"]
    for track in sample.tracks[1:]:
        agent_ons = [m for m in track if m.type == "note_on" and m.channel == 1]
        assert len(agent_ons) == 200


def test_eval_command_prints_the_report(trained: Path, corpora: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", str(trained / "best.pt"), "--corpora", str(corpora),
                 "--sample", str(tmp_path / "x.mid")])
    out = capsys.readouterr().out
    assert code == 0
    assert "test bach-chorales:" in out and "bits/event" in out
    assert "originality: longest run shared with the corpus" in out


def test_a_checkpoint_from_elsewhere_is_refused_by_eval(trained: Path, tmp_path: Path,
                                                        corpora: Path) -> None:
    data = torch.load(trained / "best.pt", weights_only=True)
    data["corpora"][0]["hash"] = "f" * 64
    torch.save(data, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="differs from the corpus this model was trained on"):
        evaluate(checkpoint.load(tmp_path / "other.pt"), [corpora])


def test_torchrun_trains_with_two_processes(corpora: Path, tmp_path: Path) -> None:
    """Distributed data parallel over gloo, as torchrun launches it on a machine with no GPU."""
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "agent.cli", "train", str(corpora / "bach-chorales"), "--out",
         str(tmp_path / "ddp"), "--max-epochs", "1", "--batch", "8", "--window", "64",
         "--hidden", "48"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 processes" in result.stdout
    assert result.stdout.count("epoch 1: train") == 1  # only rank 0 speaks
    assert checkpoint.load(tmp_path / "ddp" / "best.pt").train["epochs"] == 1
