"""The shipped pieces (performances/): the chorale piece's rehearsal is what its script makes from
music21's corpus, played as people would; the piece replays through the agent with its model,
sections and dome, deterministically; and `stage-agent compare` re-improvises a replay of the
demo with another seed or config into one page with both runs' figures and piano rolls."""

from __future__ import annotations

import functools
import importlib.util
import io
import itertools
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent import config as config_mod
from agent import midi
from agent.cli import main
from agent.model.corpus import Work
from agent.record.log import read_log
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import LOG_NAME, MIDI_NAME
from agent.report.build import PAGE_NAME
from agent.report.compare import REPLAY_DIR, ROLL_A, ROLL_B
from tests.browser import headless_chromium, serving
from tests.model_fixtures import save_random_checkpoint
from tests.pipeline.test_replay import emitted

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "performances" / "demo"
CHORALE = ROOT / "performances" / "chorale"


@functools.cache
def script() -> ModuleType:
    """performances/chorale/make_rehearsal.py, imported (registered, as its dataclass needs)."""
    name = "chorale_make_rehearsal"
    spec = importlib.util.spec_from_file_location(name, CHORALE / "make_rehearsal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chorale_work(tmp_path_factory: pytest.TempPathFactory) -> Work:
    """BWV 113.8 built from music21 as the bach-chorales corpus builds it (~6 s)."""
    work: Work = script().load_work(tmp_path_factory.mktemp("corpus"))
    return work


def test_the_chorale_rehearsal_is_what_its_script_makes(chorale_work: Work) -> None:
    buf = io.BytesIO()
    script().rehearsal(chorale_work).save(file=buf)
    assert buf.getvalue() == (CHORALE / "rehearsal.mid").read_bytes()


def test_the_chorale_is_traded_phrase_by_phrase_then_sung_through(chorale_work: Work) -> None:
    made = script()
    parts = made.perform(chorale_work, random.Random(made.SEED))
    assert list(parts) == ["soprano", "bass"]
    spans = made.phrases(chorale_work)
    written: dict[str, list[tuple[float, int]]] = {}
    for turn, (name, voice) in enumerate((("soprano", 0), ("bass", 3))):
        mask = chorale_work.voice == voice
        written[name] = sorted(zip(chorale_work.onset[mask].tolist(),
                                   chorale_work.pitch[mask].tolist(), strict=True))
        traded = [p for k in range(turn, len(spans), 2) for o, p in written[name]
                  if spans[k][0] <= o < spans[k][1]]
        # Its turns of the trading, then its whole voice, note for note.
        assert [n.pitch for n in parts[name]] == traded + [p for _, p in written[name]]
        assert all(a.onset_s < b.onset_s for a, b in itertools.pairwise(parts[name]))
    # The soprano singing it through: between two notes away from a phrase's end, a beat lasts
    # 60/84 s within the tempo's drift (2%) and the two onsets' jitter (30 ms each); across a
    # fermata it lasts much longer.
    beat_s = 60 / made.TEMPO_BPM
    sung = list(zip(parts["soprano"][-len(written["soprano"]):], written["soprano"], strict=True))
    slowing = [(e - (made.FINAL_RIT_BEATS if e == made.PHRASE_ENDS[-1] else made.RIT_BEATS), e)
               for e in made.PHRASE_ENDS]
    plain = held = 0
    for (a, (wa, _)), (b, (wb, _)) in itertools.pairwise(sung):
        per_beat = (b.onset_s - a.onset_s) / (wb - wa)
        if all(wb <= lo or wa >= e for lo, e in slowing):
            assert abs(per_beat - beat_s) <= 0.02 * beat_s + 0.060 / (wb - wa)
            plain += 1
        elif any(wa < e <= wb for e in made.PHRASE_ENDS):
            assert per_beat > 1.5 * beat_s
            held += 1
    assert plain > 30 and held == len(made.PHRASE_ENDS) - 1
    velocities = [n.velocity for n in parts["soprano"]]
    assert min(velocities) >= 20 and max(velocities) <= 120 and np.std(velocities) > 4


def notes_left_sounding(records: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    sounding: set[tuple[str, int, int]] = set()
    for r in records:
        if r["k"] != "emit":
            continue
        data = bytes.fromhex(r["data"])
        key = (r["port"], data[0] & 15, data[1]) if len(data) == 3 else None
        if midi.is_note_on(data):
            assert key not in sounding
            sounding.add(key)  # type: ignore[arg-type]
        elif midi.is_note_off(data):
            sounding.discard(key)  # type: ignore[arg-type]
    return sounding


@pytest.fixture(scope="module")
def chorale_replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stage-agent replay` of the chorale piece, as the README gives it (with its model)."""
    out = tmp_path_factory.mktemp("chorale") / "r"
    assert main(["replay", str(CHORALE / "rehearsal.mid"), "--config",
                 str(CHORALE / "performance.toml"), "--out", str(out)]) == 0
    return out


def test_the_chorale_piece_replays_with_its_model_sections_and_dome(chorale_replay: Path) -> None:
    header, records = read_log(chorale_replay / LOG_NAME)
    assert header["config"]["model"]["styles"] == ["bach-chorales"]
    assert Path(header["layout"]).name == "dome-93.toml"
    heard = sum(midi.is_note_on(bytes.fromhex(r["data"])) for r in records if r["k"] == "in")
    rehearsal = load_recording(CHORALE / "rehearsal.mid")
    assert heard == sum(midi.is_note_on(h.data) for h in rehearsal.inputs)  # type: ignore[union-attr]
    decisions = [r for r in records if r["k"] == "decision"]
    sections = [(r["name"], r["why"]) for r in decisions if r["what"] == "section"]
    assert sections == [("chorale", "bars")]
    switch = next(r["t"] for r in decisions if r["what"] == "section")
    # One answer to each of the seven traded phrases, each from the model (in time).
    answers = [r for r in decisions if r["what"] == "answer" and r["t"] < switch]
    assert len(answers) == 7 and all(r["source"] == "model" for r in answers)
    answered = [r for r in records if r["k"] == "model" and r["what"] == "answer"]
    assert {r["why"] for r in answered} == {"model"}
    # Then, as the band sings it through, it comps.
    assert sum(r["what"] == "comp" for r in decisions if r["t"] > switch) > 20
    played = [r for r in records if r["k"] == "emit"
              and midi.is_note_on(bytes.fromhex(r["data"]))]
    assert len(played) > 100
    assert notes_left_sounding(records) == set()
    assert (chorale_replay / "trajectories.png").read_bytes()[:4] == b"\x89PNG"


def test_the_chorale_replay_is_deterministic(chorale_replay: Path, tmp_path: Path) -> None:
    recording = load_recording(CHORALE / "rehearsal.mid")
    cfg = fit_config(recording, config_mod.load(CHORALE / "performance.toml"))
    replay_fast(recording, cfg, tmp_path / "again", "test")
    assert emitted(tmp_path / "again") == emitted(chorale_replay)
    assert (tmp_path / "again" / MIDI_NAME).read_bytes() == \
        (chorale_replay / MIDI_NAME).read_bytes()


# --- stage-agent compare --------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo replayed with its model: run A of the comparisons."""
    out = tmp_path_factory.mktemp("demo") / "run"
    recording = load_recording(DEMO / "rehearsal.mid")
    replay_fast(recording, fit_config(recording, config_mod.load(DEMO / "performance.toml")),
                out, "demo")
    return out


@pytest.fixture(scope="module")
def compared(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stage-agent compare` of the demo run with another seed; the page's path."""
    out = tmp_path_factory.mktemp("compare") / "seed-8"
    assert main(["compare", str(demo_run), "--seed", "8", "--out", str(out)]) == 0
    return out / PAGE_NAME


def test_compare_with_another_seed_writes_both_runs_side_by_side(compared: Path,
                                                                 demo_run: Path) -> None:
    out = compared.parent
    html = compared.read_text()
    assert "<title>demo: re-improvised side by side</title>" in html
    # What differs: the seed alone.
    differs = html[html.index("What differs"):html.index("How each agent")]
    assert differs.count("<tr><th>") == 2  # the header row and one setting
    assert "<tr><th>performance.seed</th><td>7</td><td>8</td></tr>" in differs
    # Both runs heard the same players; the agent played differently.
    assert ('<tr><th>player notes</th><td class="num">128</td><td class="num">128</td>'
            '<td class="num">0</td></tr>') in html
    assert emitted(out / REPLAY_DIR) != emitted(demo_run)
    _header, records = read_log(out / REPLAY_DIR / LOG_NAME)
    assert {r["why"] for r in records if r["k"] == "model" and r["what"] == "answer"} == \
        {"model"}  # the model ran again (the recorded answers were made with seed 7)
    assert notes_left_sounding(records) == set()
    for name in (ROLL_A, ROLL_B):
        assert f'src="{name}"' in html
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] >= 1000
    assert (out / REPLAY_DIR / MIDI_NAME).is_file()


def test_compare_with_another_config_renames_the_players(demo_run: Path, tmp_path: Path) -> None:
    """The demo's players through the chorale piece's settings (its players are named
    otherwise: the recording's players take their names in order)."""
    assert main(["compare", str(demo_run / LOG_NAME), "--config",
                 str(CHORALE / "performance.toml"), "--out", str(tmp_path / "c")]) == 0
    html = (tmp_path / "c" / PAGE_NAME).read_text()
    assert "<tr><th>players[0].name</th><td>melody</td><td>soprano</td></tr>" in html
    assert "<tr><th>model.styles</th>" in html
    header, _records = read_log(tmp_path / "c" / REPLAY_DIR / LOG_NAME)
    assert [p["name"] for p in header["config"]["players"]] == ["soprano", "bass"]


def test_compare_refuses_bad_input_clearly(demo_run: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(DEMO / "rehearsal.mid"), "--seed", "1"]) == 2
    assert "a MIDI file has no log" in capsys.readouterr().err
    assert main(["compare", str(demo_run), "--checkpoint", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint: model.checkpoint: no such file" in capsys.readouterr().err
    # A model without the piece's styles: named, nothing played.
    save_random_checkpoint(tmp_path / "tiny.pt")
    assert main(["compare", str(demo_run), "--checkpoint", str(tmp_path / "tiny.pt"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "model.styles" in capsys.readouterr().err
    assert not (tmp_path / "y" / PAGE_NAME).exists()


def test_chromium_shows_the_comparison_with_both_rolls(compared: Path) -> None:
    with serving(compared.parent) as served, headless_chromium() as chromium:
        page = chromium.load(served + PAGE_NAME)
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
        rows = page.eval_on_selector_all("table", "els => els.map(e => e.rows.length)")
    assert [i[0] for i in images] == [ROLL_A, ROLL_B]
    assert all(i[1] and i[2] > 0 for i in images)
    assert rows == [2, 19]  # the seed; the figures' header and 18 figures
    assert chromium.errors == []
