"""Which MIDI API to use, and finding ports by name or regex (never by index).

Port references in a config:
  "Keystation"          the first port whose name contains this text
  "re:^Keystation.*1$"  the first port whose name matches this regular expression
  "virtual:melody"      a port the agent creates under this name, for others to connect to
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import rtmidi

from agent.errors import PortError

API_ENV = "STAGE_AGENT_MIDI_API"
_API_BY_NAME = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}


@dataclass(frozen=True)
class Backend:
    name: str  # "jack" | "alsa" | ...
    api: int


def choose_backend(configured: str = "auto") -> Backend:
    """The configured API, else $STAGE_AGENT_MIDI_API, else the first compiled API that works.

    On a machine without an ALSA sequencer, rtmidi's default API fails at construction, so "auto"
    tries each compiled API in turn and keeps the first that opens.
    """
    wanted = configured if configured != "auto" else os.environ.get(API_ENV, "auto").lower()
    if wanted != "auto":
        if wanted not in _API_BY_NAME:
            raise PortError(f"{API_ENV}={wanted!r}: expected one of {', '.join(_API_BY_NAME)}")
        api = _API_BY_NAME[wanted]
        _probe(api, wanted)
        return Backend(wanted, api)
    errors = []
    for api in rtmidi.get_compiled_api():
        name = rtmidi.get_api_name(api)
        if api == rtmidi.API_RTMIDI_DUMMY:
            continue
        try:
            _probe(api, name)
        except PortError as e:
            errors.append(str(e))
            continue
        return Backend({v: k for k, v in _API_BY_NAME.items()}.get(api, name), api)
    raise PortError("no MIDI API works here: " + "; ".join(errors or ["none compiled in"]))


def _probe(api: int, name: str) -> None:
    try:
        rtmidi.MidiIn(api, "stage-agent-probe").delete()
    except rtmidi.SystemError as e:
        raise PortError(f"MIDI API {name} is not usable: {e}") from None


def is_virtual(ref: str) -> bool:
    return ref.startswith("virtual:")


def virtual_name(ref: str) -> str:
    return ref.removeprefix("virtual:")


def match_port(names: list[str], ref: str) -> int | None:
    """Index of the first port name matching the reference (substring or `re:` regex)."""
    if ref.startswith("re:"):
        pattern = re.compile(ref[3:])
        hits = [i for i, n in enumerate(names) if pattern.search(n)]
    else:
        hits = [i for i, n in enumerate(names) if ref in n]
    return hits[0] if hits else None


def list_ports(backend: Backend, client_name: str = "stage-agent-list") -> dict[str, list[str]]:
    """{"inputs": [...], "outputs": [...]} as the backend names them."""
    probe_in = rtmidi.MidiIn(backend.api, client_name)
    probe_out = rtmidi.MidiOut(backend.api, client_name)
    try:
        return {"inputs": probe_in.get_ports(), "outputs": probe_out.get_ports()}
    finally:
        probe_in.delete()
        probe_out.delete()
