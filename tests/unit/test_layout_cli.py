"""`stage-agent layout show|import`: on the shipped layouts, and a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.spatial.importers import import_layout

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"


def test_show_summarises_a_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layout", "show", str(LAYOUTS / "ring-8.toml")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "ring-8: 8 speakers: 8 panning, 0 subwoofers, 0 direct-out")


def test_import_writes_the_projects_format_and_marks_subwoofers(tmp_path: Path) -> None:
    out = tmp_path / "dome.toml"
    assert main(["layout", "import", str(LAYOUTS / "dome-93.toml"), str(out), "--aed",
                 "--subwoofers", "94-98"]) == 0
    again, original = import_layout(out), import_layout(LAYOUTS / "dome-93.toml")
    assert [s.channel for s in again.subwoofers()] == [94, 95, 96, 97, 98]
    assert again.directions() == pytest.approx(original.directions(), abs=1e-9)


def test_a_bad_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[layout]\nname = 3\n")
    assert main(["layout", "show", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
