"""`stage-agent train --init` (fine-tuning), `eval --corpora DIR... --style` and `model card`,
on tiny corpora written by the tests: real MIDI files, real training, in seconds."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.cli import main
from agent.errors import ModelError
from agent.model import checkpoint
from agent.model import representation as rep
from agent.model.corpus import load_corpus
from agent.model.eval_checkpoint import evaluate
from agent.model.finetune import finetune_plan, grow_styles
from agent.model.heldout import Bits, heldout_bits, scored
from agent.model.net import NetConfig
from agent.model.originality import join_lines
from agent.model.plan import record
from agent.model.train import TrainSettings, train
from tests.model_fixtures import random_net, style_corpus

SMALL = NetConfig(embed=32, hidden=48, head=32)
MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]
MINOR = [57, 59, 60, 62, 64, 65, 67, 69]
WHOLE = [60, 62, 64, 66, 68, 70, 72, 74]
QUICK = {"max_epochs": 2, "batch": 8, "window": 64}
READING = ("inputs.", "bos", "gru.")  # what --freeze core keeps (with the old style rows)
VELOCITY_HEAD = ("out.velocity.", "query.velocity.")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    return {"major": style_corpus(root, "major", MAJOR, seed=1),
            "minor": style_corpus(root, "minor", MINOR, seed=2),
            "whole": style_corpus(root, "whole", WHOLE, seed=3, velocities=(30, 110)),
            "flat": style_corpus(root, "flat", WHOLE, seed=4)}


@pytest.fixture(scope="module")
def parent(corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parent")
    train([corpora["major"], corpora["minor"]], TrainSettings(out=out, net=SMALL, **QUICK))
    return out / "best.pt"


@pytest.fixture(scope="module")
def child(corpora: dict[str, Path], parent: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Path:
    """major rehearsed (the parent knows it), whole a new style with varied velocities."""
    out = tmp_path_factory.mktemp("child")
    train([corpora["major"], corpora["whole"]], TrainSettings(out=out, init=parent, **QUICK))
    return out / "best.pt"


def test_a_rehearsed_flat_corpus_keeps_its_velocities_scored(
        corpora: dict[str, Path], parent: Path) -> None:
    """What is rehearsed is what the parent plays in that style, its one velocity included:
    unscored, the shared velocity head drifted to the new corpus's dynamics in the old styles
    (--freeze core on the madrigals: the chorales' velocity bits 0.007 -> 0.265 per event).
    A new flat corpus stays unscored (test below)."""
    plan = finetune_plan([load_corpus(corpora["major"]), load_corpus(corpora["whole"])], parent,
                         "core", 1.0)
    assert [w.velocity for works in plan.rehearsal for w in works] == [True] * sum(
        len(works) for works in plan.rehearsal) and plan.rehearsal
    assert all(s.velocity for s in plan.old_valid["major"])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path).net.state_dict()


def test_a_finetune_adds_a_style_and_records_what_went_in(parent: Path, child: Path,
                                                          corpora: dict[str, Path]) -> None:
    p, c = checkpoint.load(parent), checkpoint.load(child)
    assert c.styles == ("major", "minor", "whole")
    whole = load_corpus(corpora["whole"])
    assert c.corpora == (*p.corpora, record(whole))
    assert c.corpora[2]["collections"] == [{"name": "whole", "provenance": "made by the tests",
                                            "licence": "CC0"}]
    assert [x["velocity"] for x in c.corpora] == [80, 80, None]
    # The copy guard covers the parent's corpora and the new one.
    assert np.array_equal(c.corpus_lines, np.concatenate([p.corpus_lines, join_lines(
        [line for w in whole.works for line in rep.melodic_lines(w)])]))
    assert c.parent == {"path": str(parent),
                        "sha256": hashlib.sha256(parent.read_bytes()).hexdigest()}
    assert c.runs[0] == p.runs[0] and c.runs[0]["kind"] == "scratch"
    run = c.runs[1]
    assert {k: run[k] for k in ("kind", "corpora", "added", "rehearsed", "rehearse", "freeze",
                                "velocity_not_scored", "epochs")} == {
        "kind": "finetune", "corpora": ["whole"], "added": ["whole"], "rehearsed": ["major"],
        "rehearse": 2.0, "freeze": "core", "velocity_not_scored": [], "epochs": 2}
    assert set(run["old_styles"]["major"]) == {"before", "after"}
    assert run["best_valid_bits"] == min(h["valid_bits"] for h in c.train["history"])
    assert checkpoint.load(child.with_name("last.pt")).extra == {}  # a fine-tune is not resumed


def test_freeze_core_keeps_the_reading_and_the_old_style_rows_bit_exact(parent: Path,
                                                                        child: Path) -> None:
    before, after = weights(parent), weights(child)
    kept = [n for n in before if n.startswith(READING)]
    assert len(kept) == 11
    for name in kept:
        assert torch.equal(before[name], after[name]), name
    assert torch.equal(before["style.weight"], after["style.weight"][:2])
    assert not torch.equal(after["style.weight"][2], before["style.weight"].mean(0))
    for name in ("state_to_heads.weight", "out.pitch.weight", "out.velocity.weight"):
        assert not torch.equal(before[name], after[name]), name


def test_a_new_style_starts_as_the_blend_of_the_old_ones() -> None:
    net = random_net(3)
    grown = grow_styles(net, 2).eval()
    assert torch.equal(grown.style.weight[:2], net.style.weight)
    tokens = torch.tensor([[[0, 60, 5, 5, 24, 0], [1, 64, 10, 5, 8, 12]]])
    new, blend = torch.tensor([[0.0, 0.0, 1.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    with torch.no_grad():
        for head, logits in grown(tokens, new).items():
            assert torch.allclose(logits, grown(tokens, blend)[head], atol=1e-5), head


def test_freeze_none_moves_every_weight(parent: Path, corpora: dict[str, Path],
                                        tmp_path: Path) -> None:
    """Every weight learns; an old style's row moves only when its corpus is rehearsed."""
    train([corpora["major"], corpora["whole"]],
          TrainSettings(out=tmp_path, init=parent, freeze="none", max_epochs=1, batch=8,
                        window=64))
    before, after = weights(parent), weights(tmp_path / "best.pt")
    for name, value in before.items():
        if name != "style.weight":
            assert not torch.equal(value, after[name]), name
    rows = before["style.weight"]
    assert not torch.equal(rows[0], after["style.weight"][0])  # major: rehearsed
    assert torch.equal(rows[1], after["style.weight"][1])  # minor: no works, no gradient
    assert not torch.equal(rows.mean(0), after["style.weight"][2])  # whole: new
    assert checkpoint.load(tmp_path / "best.pt").runs[-1]["trained"] == "every weight"


def test_a_flat_corpus_teaches_the_velocity_head_nothing(parent: Path, corpora: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """Every note of `flat` has velocity 80: its velocities are out of the loss, so under
    --freeze core the velocity head's weights (and its slice of state_to_heads) stay bit-exact,
    while a corpus with dynamics (the `child` fixture's) moves them."""
    train([corpora["flat"]], TrainSettings(out=tmp_path, init=parent, rehearse=0, **QUICK))
    before, after = weights(parent), weights(tmp_path / "best.pt")
    head = [n for n in before if n.startswith(VELOCITY_HEAD)]
    assert len(head) == 5
    for name in head:
        assert torch.equal(before[name], after[name]), name
    rows = slice(2 * SMALL.head, 3 * SMALL.head)  # HEADS order: pitch, dt, velocity, duration
    assert torch.equal(before["state_to_heads.weight"][rows], after["state_to_heads.weight"][rows])
    assert not torch.equal(before["out.pitch.weight"], after["out.pitch.weight"])
    assert checkpoint.load(tmp_path / "best.pt").runs[-1]["velocity_not_scored"] == ["flat"]


def test_eval_scores_the_base_and_the_finetuned_model_on_the_same_notes(
        parent: Path, child: Path, corpora: dict[str, Path], tmp_path: Path) -> None:
    base = evaluate(checkpoint.load(parent), [corpora["whole"]], style="blend",
                    sample_path=tmp_path / "base.mid")
    tuned = evaluate(checkpoint.load(child), [corpora["whole"]],
                     sample_path=tmp_path / "tuned.mid")
    b, t = base["heldout"]["whole"], tuned["heldout"]["whole"]
    assert b["events"] == t["events"] == len(load_corpus(corpora["whole"]).split("test")) * 48
    assert (b["style"], b["trained_on"], t["style"], t["trained_on"]) == (
        "blend", False, "whole", True)
    assert base["heldout"]["all"]["events"] == b["events"]
    # Without --style, a corpus that is not a style of the model is scored in the blend.
    assert evaluate(checkpoint.load(parent), [corpora["whole"]])["heldout"]["whole"] == b
    minor = evaluate(checkpoint.load(child), [corpora["whole"], corpora["minor"]], style="minor")
    assert [v["style"] for k, v in minor["heldout"].items() if k != "all"] == ["minor", "minor"]
    assert minor["heldout"]["all"]["events"] == sum(
        minor["heldout"][k]["events"] for k in ("whole", "minor"))
    with pytest.raises(ModelError, match="--style 'jazz': this model's styles are major, "
                                         "minor, whole, or blend"):
        evaluate(checkpoint.load(child), [corpora["whole"]], style="jazz")
    # A folder without a manifest holds the model's own corpora by name: all of them.
    own = evaluate(checkpoint.load(child), [corpora["whole"].parent])
    assert [(k, v.get("style")) for k, v in own["heldout"].items()] == [
        ("all", None), ("major", "major"), ("minor", "minor"), ("whole", "whole")]


def test_the_eval_command_takes_corpus_folders_and_refuses_bad_ones(
        child: Path, corpora: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(child), "--corpora", str(corpora["whole"]), str(corpora["flat"]),
                 "--style", "blend", "--sample", str(tmp_path / "s.mid")]) == 0
    out = capsys.readouterr().out
    assert "\ntest whole: " in out and "events, style blend)\n" in out
    assert "events, style blend, a corpus it was not trained on)\n" in out  # flat
    for args, message in (
            (["--corpora", str(tmp_path / "nope")], "no such folder"),
            (["--corpora", str(corpora["whole"]), "--style", "jazz"], "--style 'jazz'"),
            (["--corpora", str(corpora["whole"]), str(corpora["whole"])],
             "two corpora named whole")):
        assert main(["eval", str(child), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("stage-agent: error: ") and message in err


def test_the_train_command_finetunes_with_a_progress_bar(
        parent: Path, corpora: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(corpora["whole"]), "--init", str(parent), "--out",
                 str(tmp_path), "--max-epochs", "1", "--batch", "8", "--window", "64"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "styles ['major', 'minor', 'whole']" in out
    assert "epoch 0 (as initialised): valid" in out
    assert "old styles not rehearsed nor measured" in out
    # The bar: the epoch, its validation bits, the time left of the budget.
    assert re.search(r"epoch 1: .*\|, valid \d+\.\d{3} bits \(best \d+\.\d{3}\), \d\d:\d\d left",
                     err)
    run = checkpoint.load(tmp_path / "best.pt").runs[-1]
    assert (run["freeze"], run["rehearsed"], run["old_styles"]) == ("core", [], {})


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda d, p: ["--init", str(d / "missing.pt")], "cannot read the model checkpoint"),
    (lambda d, p: ["--init", str(d / "notes.txt")], "not a stage-agent model checkpoint"),
    (lambda d, p: ["--init", str(d)], "cannot read the model checkpoint"),
    (lambda d, p: ["--init", str(p), "--resume"], "--init starts a new model"),
    (lambda d, p: ["--freeze", "none"], "--freeze: for a fine-tune only (with --init)"),
    (lambda d, p: ["--init", str(p), "--hidden", "64"], "--hidden does not go with --init"),
    (lambda d, p: ["--init", str(p), "--rehearse", "-1"], "--rehearse -1: must be 0 or more"),
])
def test_train_refuses_a_bad_init_with_exit_2(make_args, message: str,  # type: ignore[no-untyped-def]
                                               parent: Path, corpora: dict[str, Path],
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a model\n")
    code = main(["train", str(corpora["whole"]), "--out", str(tmp_path / "out"),
                 *make_args(tmp_path, parent)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("stage-agent: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "best.pt").exists()


def test_train_refuses_a_finetune_that_adds_nothing_or_overwrites_its_parent(
        parent: Path, child: Path, corpora: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(corpora["major"]), "--init", str(parent), "--out",
                 str(tmp_path)]) == 2
    assert "was trained on every corpus given (major): a fine-tune needs at least one corpus " \
           "it has not seen" in capsys.readouterr().err
    assert main(["train", str(corpora["whole"]), "--init", str(parent), "--out",
                 str(parent.parent)]) == 2
    assert "would overwrite the --init checkpoint" in capsys.readouterr().err
    last = tmp_path / "resume"
    last.mkdir()
    (last / "last.pt").write_bytes(child.with_name("last.pt").read_bytes())
    assert main(["train", str(corpora["major"]), str(corpora["whole"]), "--out", str(last),
                 "--resume"]) == 2
    assert "made by a fine-tune (--init), which is not resumed" in capsys.readouterr().err


def test_figures_combined_over_corpora_are_those_of_all_their_notes(
        corpora: dict[str, Path]) -> None:
    net = random_net(5)
    parts = [scored(load_corpus(corpora[n]).split("test"), i % 2)
             for i, n in enumerate(("major", "whole", "minor"))]
    together = heldout_bits(net, [s for p in parts for s in p])
    combined = Bits.combine([heldout_bits(net, p) for p in parts])
    assert (combined.events, combined.durations) == (together.events, together.durations)
    for a, b in ((combined.bits_per_event, together.bits_per_event),
                 (combined.pitch_bits_per_note, together.pitch_bits_per_note),
                 *((combined.per_head[h], together.per_head[h]) for h in together.per_head)):
        assert a == pytest.approx(b, rel=1e-5)


def test_the_card_of_a_finetuned_model_names_its_parent_and_corpora(
        parent: Path, child: Path, corpora: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "card", str(child)]) == 0
    out = capsys.readouterr().out.splitlines()
    sha = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert f"parents: {parent} (sha256 {sha})" in out
    assert "styles: major, minor, whole" in out
    whole = load_corpus(corpora["whole"]).hash
    assert f"  whole: 30 works, 1,440 notes, velocities vary, hash {whole}" in out
    assert out.count("      provenance: made by the tests") == 3
    assert f"  2. fine-tune of {parent} (sha256 {sha[:12]}) on whole, new style whole" in out
    assert "     rehearsed major: 2 old works per new work each epoch" in out
    assert any(line.startswith("     old style major: validation ") for line in out)
