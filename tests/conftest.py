"""Shared fixtures. The JACK server is real (dummy driver): this machine kind has no ALSA
sequencer, and JACK's MIDI ports are the real thing rtmidi talks to on stage under JACK."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from agent.io.jack_server import dummy_jack


@pytest.fixture(scope="session")
def jack() -> Iterator[dict[str, str]]:
    """A JACK dummy server for the whole session; yields the environment its clients need."""
    with dummy_jack(f"stage-agent-test-{os.getpid()}") as server:
        yield server.env
