"""MIDI output: the agent's ports, by name. A write to a vanished port is dropped and counted.

Closing a JACK output waits for its drain: rtmidi's close_port waits (a semaphore, at most 1 s)
for a process cycle to move what its ring buffer holds into the port, before the port goes
(measured here: 100 messages sent just before the close, at a 4096-frame period, all moved; the
close took 31-42 ms, the rest of a cycle). A message too large for the port's buffer would be
dropped there, unsaid, and what leaves the port still needs the receiver's next cycle; the
agent's panic is a few hundred bytes, sent DRAIN_S (service.py) before the close. A close that
took the whole second had no cycle (a starved or stopped JACK server): what was queued went
with the port. That is reported (`unconfirmed`), never silent: a synth may hold notes until
the next start's reset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import rtmidi

from agent.errors import ConfigError
from agent.io.ports import Backend, is_virtual, match_port, virtual_name

log = logging.getLogger(__name__)

# A JACK output's close that took this long waited out rtmidi's 1 s for a process cycle (its
# wait is on the wall clock, ours on the monotonic one: they differ by far less than 10 ms).
UNCONFIRMED_CLOSE_S = 0.99


class MidiOutputs:
    def __init__(self, refs: tuple[str, ...], backend: Backend, client_name: str,
                 on_port_event: Callable[[str, str], None], source: str = "<config>") -> None:
        self._refs = refs
        self._source = source
        self._backend = backend
        self._client_name = client_name
        self._on_port_event = on_port_event
        self._open: dict[str, tuple[rtmidi.MidiOut, str]] = {}  # ref -> (port, matched name)
        self._lister = rtmidi.MidiOut(backend.api, client_name + "-poll")
        self.dropped = 0
        self.unconfirmed: list[str] = []  # outputs closed with no JACK cycle to drain them

    def open(self) -> None:
        try:
            for index, ref in enumerate(self._refs):
                if not self._open_one(index, ref):
                    raise ConfigError(self._source, f"agent.outputs[{index}]",
                                      f"no MIDI output matches {ref!r}; outputs here: "
                                      f"{self._lister.get_ports()}")
        except Exception:
            self.close()
            raise

    def _open_one(self, index: int, ref: str) -> bool:
        rt = rtmidi.MidiOut(self._backend.api, self._client_name)
        if is_virtual(ref):
            rt.open_virtual_port(virtual_name(ref))
            self._open[ref] = (rt, virtual_name(ref))
            return True
        try:
            names = rt.get_ports()
            found = match_port(names, ref)
            if found is not None:
                rt.open_port(found, f"out-{index + 1}")
        except rtmidi.RtMidiError as e:  # the port went while being opened: not there
            log.info("MIDI output %r changed while being opened (%s)", ref, e)
            found = None
        if found is None:
            rt.delete()
            return False
        self._open[ref] = (rt, names[found])
        return True

    def send(self, ref: str, data: bytes) -> bool:
        """Send one message; False (and counted) if the port is gone. Never raises."""
        entry = self._open.get(ref)
        if entry is None:
            self.dropped += 1
            return False
        try:
            entry[0].send_message(data)
        except (rtmidi.RtMidiError, ValueError, TypeError) as e:
            self.dropped += 1
            log.error("MIDI output %r: send failed: %s", ref, e)
            return False
        return True

    def poll(self) -> None:
        """Look for vanished and returning ports, as MidiInputs.poll does."""
        try:
            names = self._lister.get_ports()
        except rtmidi.RtMidiError as e:  # a port went while being listed: look again next poll
            log.info("MIDI outputs changed while being listed (%s)", e)
            return
        for index, ref in enumerate(self._refs):
            if is_virtual(ref):
                continue
            entry = self._open.get(ref)
            if entry is not None and entry[1] not in names:
                entry[0].delete()
                del self._open[ref]
                log.warning("MIDI output %r (%s) vanished", ref, entry[1])
                self._on_port_event("lost", ref)
            elif entry is None and match_port(names, ref) is not None and self._open_one(
                    index, ref):
                log.warning("MIDI output %r is back", ref)
                self._on_port_event("back", ref)

    def close(self) -> None:
        """Close every output; on JACK, after its drain, or reported undrained (above)."""
        for ref, (rt, name) in self._open.items():
            began = time.monotonic()
            rt.close_port()
            took = time.monotonic() - began
            if self._backend.name == "jack" and took >= UNCONFIRMED_CLOSE_S:
                self.unconfirmed.append(ref)
                log.warning("MIDI output %r (%s): JACK ran no cycle for %.1f s at the close: "
                            "what was still queued for it may be lost (a synth may hold notes "
                            "until the agent's next start resets it)", ref, name, took)
            rt.delete()
        self._open.clear()
        self._lister.delete()
