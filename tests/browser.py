"""Debian's headless Chromium for the tests that look at a page as a person would, and a folder
served over HTTP on 127.0.0.1 for it to load.

Playwright (pip) drives the system's Chromium; it never downloads a browser of its own. A test
without either is skipped, naming what is missing (scripts/setup.sh and the dev extra install
them).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Chromium as root on a headless machine with no network but 127.0.0.1: no sandbox (root), no
# GPU, and none of its background connections (they would be refused, and logged).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def chromium_or_skip() -> tuple[str, Any]:
    """Debian's chromium and Playwright's sync API; without either the test is skipped."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (pip; the dev extra installs it)")
    return chromium, sync_api


@dataclass
class Chromium:
    """A headless Chromium with a fresh profile and one page open. Every page it opens records
    what went wrong (console errors, page errors, failed requests, HTTP errors) in `errors` and
    every URL it asks for in `requests`. `expect` is Playwright's retrying assertion."""

    context: Any  # Playwright's BrowserContext
    expect: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    page: Any = field(init=False)  # the first page, opened with the browser

    def __post_init__(self) -> None:
        self.page = self.new_page()

    def load(self, url: str) -> Any:
        """The first page, once `url` has loaded in it (fails unless it answered 200)."""
        response = self.page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            raise AssertionError(f"{url} answered {response and response.status}")
        return self.page

    def new_page(self) -> Any:
        page = self.context.new_page()
        errors, requests = self.errors, self.requests
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
        page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)
        page.on("request", lambda r: requests.append(r.url))
        return page


@contextmanager
def headless_chromium() -> Iterator[Chromium]:
    """Chromium for the length of a `with` block (skipped without it); closed at its end."""
    chromium, sync_api = chromium_or_skip()
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield Chromium(context, sync_api.expect)
        finally:
            context.close()


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on 127.0.0.1 (a thread; port chosen by the system); its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # requests: not on stderr
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
