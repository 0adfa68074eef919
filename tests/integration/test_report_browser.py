"""`stage-agent report` on a replay of the shipped demo, looked at as a person would: the folder
holds the page and real PNG pictures, and Debian's headless Chromium, loading the page over HTTP
from 127.0.0.1, renders it with every picture loaded, nothing fetched from elsewhere, and no
console error.

Playwright (pip) drives the system's Chromium (tests/browser.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from agent import config as config_mod
from agent.cli import main
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import new_recording_dir
from agent.report.build import LATENCIES, PAGE_NAME, PIANO_ROLL, TIMELINE
from agent.spatial.runtime import PICTURE_NAME
from tests.browser import headless_chromium, serving

DEMO = Path(__file__).resolve().parents[2] / "performances" / "demo"
PICTURES = (PIANO_ROLL, TIMELINE, LATENCIES, PICTURE_NAME)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo replayed (with its model, sections and speaker layout), then `stage-agent
    report` on the replay's folder; the page's path."""
    base = tmp_path_factory.mktemp("report")
    recording = load_recording(DEMO / "rehearsal.mid")
    cfg = fit_config(recording, config_mod.load(DEMO / "performance.toml"))
    out = new_recording_dir(base, "demo", "-replay")  # a stamped name, as a real recording has
    replay_fast(recording, cfg, out, "demo")
    assert main(["report", str(out)]) == 0
    return out / "report" / PAGE_NAME


def test_the_demo_report_holds_the_page_and_real_pictures(report: Path) -> None:
    html = report.read_text()
    assert "<title>demo: rehearsal report</title>" in html
    for name in PICTURES:  # the demo has a [spatial] layout: the voices' picture is there
        assert f'src="{name}"' in html
        with Image.open(report.parent / name) as image:
            image.verify()  # a whole, valid PNG
        with Image.open(report.parent / name) as image:
            assert image.format == "PNG"
            width, height = image.size
        assert 1000 <= width <= 1600 and 300 <= height <= 700, (name, image.size)
        assert f'width="{width}" height="{height}"' in html
    assert "<th>notes heard</th><td>128</td>" in html


def test_chromium_renders_the_page_with_every_picture_and_no_error(report: Path) -> None:
    with serving(report.parent) as served, headless_chromium() as chromium:
        page = chromium.load(served + PAGE_NAME)
        assert page.title() == "demo: rehearsal report"
        assert page.inner_text("h1") == "demo: rehearsal report"
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.getAttribute('src'), alt: e.alt, "
                   "complete: e.complete, width: e.naturalWidth, height: e.naturalHeight}))")
        rendered_height = page.evaluate("document.body.scrollHeight")
    assert [i["src"] for i in images] == list(PICTURES)
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["alt"], image
    assert rendered_height > 2000  # the tables and four pictures laid out, not an empty page
    assert chromium.errors == []
    assert sorted(chromium.requests) == sorted(served + name for name in (PAGE_NAME, *PICTURES))
