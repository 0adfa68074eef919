"""The agent hearing itself: its own notes coming back as a player's.

A patching accident (the agent's output connected to its own input, a synth's MIDI thru wired
back to the keyboard's port) makes the agent answer its own notes: in harmony mode one note ran
away at 17,000 messages/s, for ever. Nothing a player plays looks like that: the very note the
agent just sent (channel, pitch and velocity; a note-off in either form) arriving within a few
ms of the send, again and again.

Fed by the I/O edge: `sent` with every message the agent sends (when, the bytes), `heard` with
every message a player's port delivers to a player (its arrival stamp, the player). A note
heard within `window_ns` after the agent sent the same note is an echo; `trip` echoes heard by
one player within `span_ns` trip the guard for that player: `heard` returns a Trip, once. A
tripped player is re-armed when no note has been heard from them for `quiet_ns` (a MIDI clock
they send goes on): `quiet` returns those. A loop that is still patched then trips again within
`trip` echoes. By player, not by port: players sharing a port on other channels than the
agent's never hear its echoes.

Pure: times are given, no clock is read. Its decisions reach the agent as recorded controls
(`port-feedback`, `port-feedback-over`), so a replay follows them without running it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

# An echo travels out of the agent's output port and back in through its input port: one JACK
# period at least (2.7 ms at 128 frames / 48 kHz), two at most on an idle machine (43 ms at 1024
# frames), a USB MIDI loop a few ms. 50 ms covers these with margin; a player would have to play
# the agent's own note, on its channel, at its velocity, within that time, `trip` times in
# `span_ns`, to be taken for an echo.
WINDOW_NS = 50_000_000
TRIP = 8  # echoes: a runaway makes these in a few JACK periods, a call and its answer never
SPAN_NS = 2_000_000_000  # an echoed answer (a slower loop: call, answer, its echo, ...) fits
QUIET_NS = 2_000_000_000  # no note this long from a tripped player: listen again
SENDS_PER_NOTE = 4  # the latest sends of each note kept: a runaway repeats one note fast
PRUNE_AT = 4096  # notes kept before the stale ones are forgotten (a bound on memory)


def note_key(data: bytes) -> bytes | None:
    """A note as the guard compares it (a note-off in either form as 8n pp 00); else None."""
    if len(data) != 3 or data[0] & 0xE0 != 0x80:  # 8n or 9n: a note-off or a note-on
        return None
    if data[0] & 0xF0 == 0x90 and data[2] > 0:
        return bytes(data)
    return bytes((0x80 | data[0] & 0x0F, data[1], 0))


@dataclass(frozen=True)
class Trip:
    """The agent heard itself as `player`: `echoes` of its notes within the span, the last at
    `t_ns` (`data`, its bytes)."""

    player: str
    t_ns: int
    echoes: int
    data: bytes


@dataclass
class _Source:
    last_heard_ns: int
    echoes: collections.deque[int] = field(default_factory=collections.deque)  # arrival times
    tripped: bool = False


class FeedbackGuard:
    def __init__(self, window_ns: int = WINDOW_NS, trip: int = TRIP, span_ns: int = SPAN_NS,
                 quiet_ns: int = QUIET_NS) -> None:
        self.window_ns, self.trip, self.span_ns, self.quiet_ns = window_ns, trip, span_ns, quiet_ns
        self._sent: dict[bytes, collections.deque[int]] = {}  # note -> its latest send times
        self._players: dict[str, _Source] = {}

    def sent(self, t_ns: int, data: bytes) -> None:
        """The agent sent `data` at `t_ns`."""
        key = note_key(data)
        if key is None:
            return
        times = self._sent.get(key)
        if times is None:
            if len(self._sent) >= PRUNE_AT:
                self._prune(t_ns)
            times = self._sent[key] = collections.deque(maxlen=SENDS_PER_NOTE)
        times.append(t_ns)

    def heard(self, t_ns: int, player: str, data: bytes) -> Trip | None:
        """`player` heard `data`, stamped `t_ns` on arrival. A Trip the first time their
        echoes reach `trip` within `span_ns` (then not again until re-armed)."""
        key = note_key(data)
        if key is None:
            return None  # the agent sends notes (and controls): a clock is never its echo
        state = self._players.get(player)
        if state is None:
            state = self._players[player] = _Source(t_ns)
        state.last_heard_ns = max(state.last_heard_ns, t_ns)
        if not any(0 <= t_ns - s <= self.window_ns for s in self._sent.get(key, ())):
            return None
        echoes = state.echoes
        echoes.append(t_ns)
        while echoes and echoes[0] < t_ns - self.span_ns:
            echoes.popleft()
        if state.tripped or len(echoes) < self.trip:
            return None
        state.tripped = True
        return Trip(player, t_ns, len(echoes), bytes(data))

    def quiet(self, now_ns: int) -> list[str]:
        """Tripped players from whom no note was heard for `quiet_ns`: re-armed now."""
        out = []
        for player, state in self._players.items():
            if state.tripped and now_ns - state.last_heard_ns >= self.quiet_ns:
                state.tripped = False
                state.echoes.clear()
                out.append(player)
        return out

    def tripped(self, player: str) -> bool:
        state = self._players.get(player)
        return state is not None and state.tripped

    def _prune(self, now_ns: int) -> None:
        """Forget notes not sent within the window before `now_ns`: no echo can match them
        (an arrival is stamped before it is handled, and handled after the send)."""
        # Sends older than the window before the oldest arrival still to be handled could
        # match it; input waits at most a few turns, so a second is a safe margin.
        horizon = now_ns - self.window_ns - 1_000_000_000
        for key in [k for k, times in self._sent.items() if times[-1] < horizon]:
            del self._sent[key]
