"""`stage-agent report` on a replay of the shipped demo, looked at as a person would: the folder
holds the page and real PNG pictures, and Debian's headless Chromium, loading the page over HTTP
from 127.0.0.1, renders it with every picture loaded, nothing fetched from elsewhere, and no
console error.

Playwright (pip) drives the system's Chromium; it never downloads a browser of its own.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from agent import config as config_mod
from agent.cli import main
from agent.record.replay import fit_config, load_recording, replay_fast
from agent.record.session import new_recording_dir
from agent.report.build import LATENCIES, PAGE_NAME, PIANO_ROLL, TIMELINE
from agent.spatial.runtime import PICTURE_NAME

DEMO = Path(__file__).resolve().parents[2] / "performances" / "demo"
PICTURES = (PIANO_ROLL, TIMELINE, LATENCIES, PICTURE_NAME)
# Chromium as root on a headless machine with no network but 127.0.0.1: no sandbox (root), no
# GPU, and none of its background connections (they would be refused, and logged).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


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


@pytest.fixture()
def served(report: Path) -> Iterator[str]:
    """The report folder over HTTP on 127.0.0.1 (a thread; port chosen by the system)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # requests: not on stderr
            pass

    handler = functools.partial(Quiet, directory=str(report.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_chromium_renders_the_page_with_every_picture_and_no_error(served: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (pip; the dev extra installs it)")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}")
                    if r.status >= 400 else None)
            page.on("request", lambda r: requests.append(r.url))
            response = page.goto(served + PAGE_NAME, wait_until="load")
            assert response is not None and response.status == 200
            assert page.title() == "demo: rehearsal report"
            assert page.inner_text("h1") == "demo: rehearsal report"
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({src: e.getAttribute('src'), alt: e.alt, "
                       "complete: e.complete, width: e.naturalWidth, height: e.naturalHeight}))")
            rendered_height = page.evaluate("document.body.scrollHeight")
        finally:
            browser.close()
    assert [i["src"] for i in images] == list(PICTURES)
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["alt"], image
    assert rendered_height > 2000  # the tables and four pictures laid out, not an empty page
    assert errors == []
    assert sorted(requests) == sorted(served + name for name in (PAGE_NAME, *PICTURES))
