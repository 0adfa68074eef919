"""Events that flow between the stages. Frozen: once made, an event is a fact.

Times are integer nanoseconds on the agent's clock (see clock.py). MIDI payloads are the raw bytes
of one complete message, as sent on the wire (running status already expanded).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heard:
    """One MIDI message from a human player, stamped on arrival."""

    time_ns: int
    player: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PhraseNote:
    """A note of a phrase, as the listener saw it (onset, pitch, velocity, length)."""

    onset_ns: int
    pitch: int
    velocity: int
    duration_ns: int
    channel: int = 0


@dataclass(frozen=True, slots=True)
class PlannedNote:
    """A note the agent means to play (absolute times on the agent's clock)."""

    start_ns: int
    pitch: int
    velocity: int
    duration_ns: int


@dataclass(frozen=True, slots=True)
class NoteId:
    """Names one agent note-on so its note-off can find it (the ledger's serial)."""

    port: str
    channel: int
    pitch: int
    serial: int


@dataclass(frozen=True, slots=True)
class Emitted:
    """A message that left (or was meant to leave) through an output port."""

    deadline_ns: int
    sent_ns: int
    port: str
    data: bytes
    delivered: bool
    cause_ns: int | None = None  # the heard event (or phrase end) this answers, if a reaction
