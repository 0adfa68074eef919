"""The live monitor, looked at as the stage technician would: `stage-agent perform` runs as a real
process on real JACK ports with `[monitor] listen` on 127.0.0.1, Debian's headless Chromium opens
the page, and the page shows the agent performing, follows the playing live (the player's and the
agent's note counts, the key heard, the plan, the latency figures), follows a mode change sent
over OSC, and a second page opened mid-show is complete at once; nothing is fetched but the page
and its event stream, and there is no console error.

Playwright (pip) drives the system's Chromium (tests/browser.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from agent.io.jack_server import JackServer
from tests.browser import chromium_or_skip, headless_chromium

from .broker import free_port
from .jackpeer import CALL_RESPONSE, Peer, running_agent, write_piece

pytestmark = pytest.mark.jack

PIECE = CALL_RESPONSE + """[osc]
control = "127.0.0.1:{osc_port}"
[monitor]
listen = "127.0.0.1:{monitor_port}"
"""
WAIT_MS = 10_000
NOTES = "tr[data-player='{}'] .notes"  # a meter row's note count


@pytest.fixture
def stage(jack_server: JackServer, tmp_path: Path) -> Iterator[tuple[Peer, Path, int, int]]:
    name = "monitor"
    peer = Peer(name, f"{name}-keys", f"{name}-synth", jack_server.xruns)
    monitor_port, osc_port = free_port(), free_port()
    config = write_piece(tmp_path, PIECE, name, osc_port=osc_port, monitor_port=monitor_port)
    yield peer, config, monitor_port, osc_port
    peer.close()


def test_the_page_follows_the_performance_live(stage: tuple[Peer, Path, int, int],
                                               jack: dict[str, str]) -> None:
    chromium_or_skip()  # before the agent starts
    peer, config, monitor_port, osc_port = stage
    url = f"http://127.0.0.1:{monitor_port}/"
    with running_agent(config, jack, peer) as agent:
        with headless_chromium() as chromium:
            page = chromium.load(url)
            assert page.title() == "stage-agent monitor"
            # Playwright's expect() retries until the page shows it (or fails at its
            # timeout); wait_for_function cannot run here: the page's Content-Security-Policy
            # forbids evaluating strings, and the test keeps the page as it is on stage.
            expect = chromium.expect
            # The whole picture as soon as the stream opens: performing, its mode, its folder.
            expect(page.locator("#state")).to_have_text("performing", timeout=WAIT_MS)
            expect(page.locator("#mode")).to_have_text("call-response")
            expect(page.locator("#performance")).to_have_text("monitor")
            expect(page.locator("#recording")).to_have_text(agent.recording)
            expect(page.locator("#mqtt")).to_have_text("off")
            expect(page.locator(NOTES.format("keys"))).to_have_text("0")
            expect(page.locator(NOTES.format("agent"))).to_have_text("0")
            assert page.inner_text("#key") == "—"

            for pitch in (60, 62, 64, 65, 67):  # a phrase; the answer comes after its gap
                peer.send(0x90, pitch, 90)
                time.sleep(0.08)
                peer.send(0x80, pitch, 0)
            peer.expect(1, timeout=10)  # the answer has started at the synth port

            # The page follows: the player's notes, the agent's, the MIDI counts, the key heard,
            # the roles, the plan, and the latency figures (telemetry comes once a second).
            some = re.compile(r"^[1-9][0-9]*$")
            for selector in (NOTES.format("keys"), NOTES.format("agent"), "#messages-in",
                             "#messages-out"):
                expect(page.locator(selector)).to_have_text(some, timeout=WAIT_MS)
            expect(page.locator("#key")).not_to_have_text("—", timeout=WAIT_MS)
            expect(page.locator("#roles")).to_contain_text("keys")
            expect(page.locator("#plan-summary")).to_have_text(
                re.compile(r"^call-response: \d+ notes"), timeout=WAIT_MS)
            reaction = page.locator("#latency tr", has_text="reaction").locator("td")
            expect(reaction.nth(1)).to_have_text(re.compile(r"^\d+\.\d\d$"),
                                                 timeout=WAIT_MS)
            heard = page.inner_text(NOTES.format("keys"))  # 5 (an xrun may lose or repeat one)

            # A director changes the mode over OSC: the page shows it.
            SimpleUDPClient("127.0.0.1", osc_port).send_message("/stage-agent/cmd/mode",
                                                               "accompany")
            expect(page.locator("#mode")).to_have_text("accompany", timeout=WAIT_MS)

            # A page opened now is complete at once (the snapshot on connect).
            late = chromium.new_page()
            late.goto(url, wait_until="load")
            expect(late.locator("#mode")).to_have_text("accompany", timeout=WAIT_MS)
            expect(late.locator(NOTES.format("keys"))).to_have_text(heard)
            expect(late.locator("#key")).to_have_text(page.inner_text("#key"))
            expect(late.locator("#recording")).to_have_text(agent.recording)
            page.close()
            late.close()
        assert agent.wait() == 0, agent.err
    assert chromium.errors == []
    assert sorted(set(chromium.requests)) == [url, url + "events"]
