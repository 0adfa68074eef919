"""bench/learn_progressions.py and bench/develop_lift.py on a few corpus works, so that they
cannot rot (no figures asserted: they are the benches' to print)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agent.model.corpus import build_corpus

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    build_corpus("oneill-1850", root, limit=10)
    build_corpus("bach-chorales", root, limit=10)
    return root


def test_learn_progressions_writes_a_table_the_comp_loads(corpora: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from agent.listen.progression import load_transitions
    out = tmp_path / "progressions.json"
    assert bench("learn_progressions").main(["--root", str(corpora), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert set(table["counts"]) == {"major", "minor"} and "training splits" in table["source"]
    assert load_transitions(out).logp["major"][0].shape == (37, 36)
    assert bench("learn_progressions").main(["--root", str(corpora), "--out", str(out),
                                             "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_develop_lift_runs(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench("develop_lift").main(["--root", str(corpora), "--split", "train"])
    out = capsys.readouterr().out
    assert "lift" in out and "oneill-1850" in out and "bach-chorales" in out
