"""`stage-agent model card`: what went into a model, printed exactly as the checkpoint says."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.model import checkpoint
from tests.model_fixtures import random_net

REPO = Path(__file__).resolve().parents[2]
MINE = {"name": "mine", "hash": "ab" * 32, "works": 12, "notes": 3456, "velocity": None,
        "collections": [{"name": "mine", "provenance": "my band's rehearsals, 2024",
                         "licence": "CC BY 4.0"}]}
TUNES = {"name": "tune", "hash": "cd" * 32, "works": 1839, "notes": 280118}  # an older record
FINETUNE = {
    "kind": "finetune", "parent": {"path": "models/demo.pt", "sha256": "ef" * 32},
    "corpora": ["mine"], "added": ["mine"], "rehearsed": ["tune"], "rehearse": 1.0,
    "freeze": "core", "trained": "the added styles' rows and the output heads",
    "velocity_not_scored": ["tune"], "start_valid_bits": 9.5, "start_valid_pitch_bits": 4.25,
    "old_styles": {"tune": {"before": {"bits_per_event": 3.0, "pitch_bits_per_note": 2.25},
                            "after": {"bits_per_event": 3.0625, "pitch_bits_per_note": 2.5}}},
    "epochs": 7, "best_epoch": 5, "seconds": 80.4, "seconds_to_best": 61.0,
    "best_valid_bits": 6.125, "best_valid_pitch_bits": 3.0}
SCRATCH = {"kind": "scratch", "corpora": ["tune"], "epochs": 22, "best_epoch": 22,
           "seconds": 554.2, "seconds_to_best": 554.2, "best_valid_bits": 3.25,
           "best_valid_pitch_bits": 2.375}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "mine.pt"
    checkpoint.save(path, random_net(n_styles=2), ("tune", "mine"), [TUNES, MINE],
                    {"epochs": 7, "history": []}, np.zeros(0, dtype=np.int64),
                    runs=[SCRATCH, FINETUNE])
    return path


def test_the_card_says_what_went_into_a_model(model: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert main(["model", "card", str(model), "--md", str(model.with_suffix(".md"))]) == 0
    assert capsys.readouterr().out == f"""model: {model}
sha256: {sha}
network: embed 32, GRU 48, heads 32; 47,330 weights
styles: tune, mine
corpora: 2, 1,851 works, 283,574 notes
  tune: 1,839 works, 280,118 notes, velocity not recorded, hash {"cd" * 32}
    provenance and licence: not recorded (the checkpoint predates these records)
  mine: 12 works, 3,456 notes, velocities vary, hash {"ab" * 32}
    collection mine
      provenance: my band's rehearsals, 2024
      licence: CC BY 4.0
parents: models/demo.pt (sha256 {"ef" * 32})
training: 2 runs, 634.6 s in all
  1. from scratch on tune
     22 epochs, best epoch 22 after 554.2 s of 554.2 s
     validation: 3.250 bits/event, pitch 2.375 bits/note
  2. fine-tune of models/demo.pt (sha256 efefefefefef) on mine, new style mine
     freeze core: trained the added styles' rows and the output heads
     rehearsed tune: 1 old work per new work each epoch
     velocities not scored (flat): tune
     7 epochs, best epoch 5 after 61 s of 80.4 s
     validation: 9.500 -> 6.125 bits/event, pitch 4.250 -> 3.000 bits/note
     old style tune: validation 3.000 -> 3.062 bits/event (+0.062), pitch 2.250 -> 2.500 (+0.250)
card: {model.with_suffix(".md")}
"""
    assert model.with_suffix(".md").read_text() == f"""# Model card: `{model}`

- sha256: `{sha}`
- network: embed 32, GRU 48, heads 32; 47,330 weights
- styles: `tune`, `mine`
- parents: `models/demo.pt` (sha256 `{"ef" * 32}`)

## Corpora

| corpus | works | notes | velocity | hash |
|---|---:|---:|---|---|
| tune | 1,839 | 280,118 | velocity not recorded | `{"cd" * 32}` |
| mine | 12 | 3,456 | velocities vary | `{"ab" * 32}` |

### tune

Provenance and licence: not recorded (the checkpoint predates these records).

### mine

- collection `mine`
  - provenance: my band's rehearsals, 2024
  - licence: CC BY 4.0

## Training

2 runs, 634.6 s in all.

1. from scratch on tune
   - 22 epochs, best epoch 22 after 554.2 s of 554.2 s
   - validation: 3.250 bits/event, pitch 2.375 bits/note
2. fine-tune of models/demo.pt (sha256 efefefefefef) on mine, new style mine
   - freeze core: trained the added styles' rows and the output heads
   - rehearsed tune: 1 old work per new work each epoch
   - velocities not scored (flat): tune
   - 7 epochs, best epoch 5 after 61 s of 80.4 s
   - validation: 9.500 -> 6.125 bits/event, pitch 4.250 -> 3.000 bits/note
   - old style tune: validation 3.000 -> 3.062 bits/event (+0.062), pitch 2.250 -> 2.500 (+0.250)
"""


def test_the_card_of_the_shipped_model_made_before_cards(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "card", str(REPO / "models" / "demo.pt")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3:] == [
        "styles: bach-chorales, oneill-1850",
        "corpora: 2, 2,171 works, 369,254 notes",
        "  bach-chorales: 332 works, 89,136 notes, velocity not recorded, hash "
        "d2791181bcf79d8f431af0fa2d2159f5c46c6e7ca838959e1267bb43fc6d2fbd",
        "    provenance and licence: not recorded (the checkpoint predates these records)",
        "  oneill-1850: 1,839 works, 280,118 notes, velocity not recorded, hash "
        "086fcb7d6313d318eaee39a6c490f2b677ef7e7252f41a8b0993d8abbcb7563e",
        "    provenance and licence: not recorded (the checkpoint predates these records)",
        "parents: none",
        "training: 1 run, 554.2 s in all",
        "  1. from scratch on bach-chorales, oneill-1850",
        "     22 epochs, best epoch 22 after 554.2 s of 554.2 s",
        "     validation: 3.133 bits/event, pitch 2.327 bits/note"]


def test_the_card_refuses_what_is_not_a_checkpoint(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.pt").write_text("hello")
    assert main(["model", "card", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stage-agent: error: {tmp_path / 'x.pt'}: not a stage-agent model "
                          "checkpoint (") and err.count("\n") == 1
