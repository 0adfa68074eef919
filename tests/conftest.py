"""Shared fixtures. The JACK server is real (dummy driver): this machine kind has no ALSA
sequencer, and JACK's MIDI ports are the real thing rtmidi talks to on stage under JACK."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from agent.io.jack_server import JackServer, dummy_jack


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A JACK dummy server for the whole session.

    512 frames (10.7 ms): the tests assert what arrives, never when, and on a shared 2-core
    machine the dummy driver misses cycles at 128 frames (bench/README.md), which loses and
    repeats MIDI. Latency is measured in bench/, at the periods a stage would use.
    """
    with dummy_jack(f"stage-agent-test-{os.getpid()}", period=512) as server:
        yield server


@pytest.fixture(scope="session")
def jack(jack_server: JackServer) -> dict[str, str]:
    """The environment a process needs to be a client of the session's JACK server."""
    return jack_server.env
