"""The live monitor's page in Debian's headless Chromium, served by the real monitor (its server on
a real socket, on an event loop in a thread of the test) with figures published to it: the
panels never paint over each other at any window width (the meters' velocity bars overlapped the
latency table's row labels), and pages keep loading, stream and all, while slow-loris clients
dribble at the server.

Playwright (pip) drives the system's Chromium (tests/browser.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.io.monitor import Monitor
from tests.browser import Chromium, chromium_or_skip, headless_chromium
from tests.slowloris import SlowLoris

TIMEOUT = 10.0
WAIT_MS = 10_000
PLAYERS = ["keys", "upright-bass-left-hand-and-more", "bass", "drums"]
FIGURE = {"n": 123456, "p50": 1.234, "p99": 12.345, "max": 1234.567}
TELEMETRY = {"reaction_ms": FIGURE, "lateness_ms": FIGURE, "loop_lag_ms": FIGURE,
             "model_wait_ms": FIGURE, "emitted": 123456,
             "dropped": {"input": 0, "output": 0}, "fallbacks": 0}
Box = dict[str, float]


@pytest.fixture
def monitor_port() -> Iterator[int]:
    """A Monitor on 127.0.0.1 serving from its own event loop in a thread, with the telemetry
    and the meters a page shows. Its port."""
    chromium_or_skip()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        monitor = Monitor("127.0.0.1", 0, lambda: {"performance": "layout", "recording": "r",
                                                   "mqtt": "off"}, PLAYERS)
        await monitor.start()
        monitor.telemetry(TELEMETRY)
        box["port"], box["loop"], box["stop"] = (monitor.address[1], asyncio.get_running_loop(),
                                                 asyncio.Event())
        started.set()
        await box["stop"].wait()
        await monitor.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    yield box["port"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(TIMEOUT)


def overlap(a: Box, b: Box) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def inside(a: Box, b: Box) -> bool:
    return (a["x"] >= b["x"] and a["x"] + a["width"] <= b["x"] + b["width"]
            and a["y"] >= b["y"] and a["y"] + a["height"] <= b["y"] + b["height"])


def boxes(page: Any, selector: str) -> list[Box]:
    locator = page.locator(selector)
    found = [locator.nth(i).bounding_box() for i in range(locator.count())]
    assert None not in found, selector  # every one is on the page, laid out
    return found


def loaded(chromium: Chromium, page: Any, url: str) -> Any:
    """`page` showing the monitor, its stream open and every meter and latency row shown."""
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200
    chromium.expect(page.locator("#state")).to_have_text("performing", timeout=WAIT_MS)
    chromium.expect(page.locator("#meters tr")).to_have_count(len(PLAYERS) + 1)
    chromium.expect(page.locator("#latency tr")).to_have_count(4)
    return page


@pytest.mark.parametrize("width", [360, 700, 800, 1024, 1280, 1920])
def test_no_panel_paints_over_another(monitor_port: int, width: int) -> None:
    with headless_chromium() as chromium:
        chromium.page.set_viewport_size({"width": width, "height": 1000})
        page = loaded(chromium, chromium.page, f"http://127.0.0.1:{monitor_port}/")
        bars = boxes(page, "#meters .bar")
        labels = boxes(page, "#latency td:first-child")
        assert len(bars) == 2 * (len(PLAYERS) + 1) and len(labels) == 4
        assert [(bar, label) for bar in bars for label in labels if overlap(bar, label)] == []
        sections = boxes(page, "main > section")
        meters = sections[4]
        assert page.locator("main > section").nth(4).locator("h2").inner_text() == "METERS"
        assert all(inside(bar, meters) for bar in bars)
        for cell in boxes(page, "#meters td"):  # names and figures too
            assert inside(cell, meters)
        assert [(a, b) for i, a in enumerate(sections) for b in sections[i + 1:]
                if overlap(a, b)] == []
    assert chromium.errors == []


def test_pages_load_while_slow_loris_clients_dribble(monitor_port: int) -> None:
    """Issue 14: 13 slow-loris connections made a third of page loads fail."""
    attack = SlowLoris(monitor_port, 13)
    try:
        with headless_chromium() as chromium:
            url = f"http://127.0.0.1:{monitor_port}/"
            for _ in range(10):  # a technician opening the page again and again
                loaded(chromium, chromium.new_page(), url).close()
        assert chromium.errors == []
        assert min(attack.connects) >= 1
    finally:
        attack.close()
