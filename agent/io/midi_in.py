"""MIDI input: real ports in, stamped messages out, on the event loop.

The rtmidi callback runs on rtmidi's own thread. It only stamps the arrival (monotonic ns, the
agent's clock), appends to a bounded deque, and wakes the loop once per burst with
call_soon_threadsafe; parsing and dispatch to players happen on the loop, a bounded turn at a
time (TURN_NS), so a flood of input never keeps the loop from its timers, signals and sockets.
A note-on that has waited longer than `midi.shed_after_ms` when its turn comes is shed, with
its note-off (listen/shedding.py): under a flood the agent answers what is fresh and never falls
behind the music. When the queue is full, a new note-on is dropped, and its note-off after it
(the same pairing, on rtmidi's thread); other messages (note-offs, pedals, controls) have room
for as many again before they are dropped too (the ones queued keep their order). Both are
counted (`InputStats.shed`, `.overflow`): the service reports the counts on stderr and in the
log once per port poll, and in its telemetry and summary. A message whose handling raises is
logged and counted, and the next one handled. Given a feedback guard (listen/feedback.py),
every message a player hears passes it first. Ports are matched by name and polled: a vanished
port is reported, and reopened when it returns.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import rtmidi
from rtmidi._rtmidi import MidiBase

from agent.config import Config, Player
from agent.errors import ConfigError
from agent.events import Heard
from agent.io.ports import Backend, is_virtual, match_port, virtual_name
from agent.listen.feedback import FeedbackGuard, Trip
from agent.listen.shedding import PortShedding
from agent.midi import MidiByteParser, channel_of
from agent.stats import LogThrottle, Samples

log = logging.getLogger(__name__)

# (event, port ref, players): "lost"/"back" (the port vanished, returned); "feedback" (the
# players hear the agent's own notes: listen/feedback.py) and "feedback-over" (re-armed)
PortEvent = Callable[[str, str, list[str]], None]

# One turn of the loop hands input to the players for at most this long (at least one message
# is handled), then yields; the rest of the queue waits, in order, for the next turn. The
# scheduler's timers, signal handlers, MQTT, the monitor and the log's flush run between turns,
# so input holds a due note back by one turn at most: 1 ms keeps that within the scheduler's
# lateness target (p99 1-2 ms, max 5 ms). A message costs 20-100 us here, by mode, so a turn
# holds 10-50 messages, a JACK cycle's burst of ordinary playing; yielding costs a pass of the
# loop (a few us), nothing against a turn. A time budget, not a count of messages: their cost
# varies fivefold by mode, and more by machine.
TURN_NS = 1_000_000
# A full queue (midi.queue_size) refuses note-ons; the messages that end sounds have room for as
# many again, so a flood of note-ons never makes the agent miss a note-off.
RESERVE_FACTOR = 2
# delete_inputs(): how long a callback already on its way gets to finish once its port is
# closed, in sleeps of CLOSE_SETTLE_S (the GIL let go each time): two of the interpreter's switch
# intervals at least (a thread waiting for the GIL gets it within one), then for as long as one
# of ours still runs, up to CLOSE_WAIT_S.
CLOSE_SETTLE_S = 0.005
CLOSE_WAIT_S = 1.0


@dataclass
class InputStats:
    received: int = 0
    overflow: int = 0  # dropped because the queue was full
    shed: int = 0  # note-ons too old when their turn came, and their note-offs (not heard)
    malformed: int = 0  # bytes the parser had to drop
    unhandled: int = 0  # still queued when the ports closed (after the stop): never heard
    failed: int = 0  # messages whose handling raised (logged; the next ones are handled)
    callback_ns: Samples = field(default_factory=Samples)
    handle_ns: Samples = field(default_factory=Samples)  # one message's handling, on the loop


def delete_inputs(inputs: list[rtmidi.MidiIn],
                  running: Callable[[], bool] = lambda: False) -> None:
    """Close the inputs' ports, let a callback already on its way finish, then cancel the
    callbacks and delete the inputs (`running`: a callback of ours is inside, as its own counter
    says). Each step is there for a way python-rtmidi 1.5.8 on JACK crashed or hung here:

    - The port closes first (rtmidi's MidiBase.close_port: MidiIn's own cancels the callback
      first), so rtmidi's thread is given no new message. Cancelling while messages come is
      racy inside rtmidi: cancelCallback clears the function, the data, then the flag, with no
      barrier, and a thread between its look at the flag and the call calls NULL (a reviewer
      hit it within a minute of cancels in a tight loop under a flood). On JACK a closed port
      delivers nothing more; an ALSA virtual port keeps delivering, so there the window stays.
    - Deleting an input holds the GIL while it waits for rtmidi's thread to finish its cycle,
      and a callback of that cycle waiting for the GIL would wait for good: the stop during a
      flood hung so (2 of 10 runs). The settle (the GIL let go, two switch intervals at least)
      lets such a callback finish first. Likely, not certain: a thread that took the GIL for
      longer than the settle would still hold one back.
    - What python-rtmidi's callback holds is kept alive until the input is deleted.
      `cancel_callback` drops the (function, data) pair whose address rtmidi's thread holds
      while it waits for the GIL, to read it once it has it: freed, that was a use-after-free.
      A stop under a flood crashed so (SIGSEGV, or a heap found corrupt later: 3 runs of 3 in
      a reproduction; tests/integration/test_input_close.py fails so on the old code)."""
    held = [gc.get_referents(rt) for rt in inputs]  # the pair among them (test_input_close.py)
    for rt in inputs:
        MidiBase.close_port(rt)
    settle_s = max(2 * sys.getswitchinterval(), CLOSE_SETTLE_S)
    started = time.monotonic()
    while time.monotonic() - started < settle_s or (
            running() and time.monotonic() - started < CLOSE_WAIT_S):
        time.sleep(CLOSE_SETTLE_S)
    for rt in inputs:
        rt.cancel_callback()
        rt.delete()
    del held  # rtmidi's thread went with the inputs


class _Port:
    """One opened input port and the players who play on it."""

    def __init__(self, ref: str, players: list[Player], sysex_limit: int) -> None:
        self.ref = ref
        self.players = players
        self.parser = MidiByteParser(sysex_limit=sysex_limit)
        self.refusing = PortShedding()  # a full queue (on rtmidi's thread)
        self.shedding = PortShedding()  # too old when its turn comes (on the loop)
        self.in_callback = 0  # 1 while its callback runs (on rtmidi's thread): close() waits
        self.rt: rtmidi.MidiIn | None = None
        self.opened_name: str | None = None  # the real port name we matched

    def players_on(self, channel: int | None) -> list[Player]:
        """The port's players a message of `channel` (0-15; None: no channel) is for."""
        return [p for p in self.players
                if channel is None or not p.channels or channel + 1 in p.channels]


class MidiInputs:
    """`guard` (optional) is fed every message a player hears; the service feeds it what the
    agent sends. A trip and a re-arm go out as port events, after which the agent decides."""

    def __init__(self, config: Config, backend: Backend, on_heard: Callable[[Heard], None],
                 on_port_event: PortEvent, guard: FeedbackGuard | None = None,
                 on_shed: Callable[[Heard], None] | None = None) -> None:
        """`on_shed`: given each message shed (not heard, but played: to be recorded)."""
        self._config = config
        self._backend = backend
        self._on_heard = on_heard
        self._on_shed = on_shed
        self._on_port_event = on_port_event
        self._guard = guard
        self._queue: collections.deque[tuple[int, int, list[int]]] = collections.deque()
        self._limit = config.midi.queue_size
        self._shed_after_ns = round(config.midi.shed_after_ms * 1e6) or None  # 0: never
        self._wake_pending = False
        self._closed = False
        self._failure_log = LogThrottle()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = InputStats()
        by_port: dict[str, list[Player]] = {}
        for p in config.players:
            by_port.setdefault(p.port, []).append(p)
        self._ports = [_Port(ref, ps, config.midi.sysex_limit) for ref, ps in by_port.items()]
        self._lister = rtmidi.MidiIn(backend.api, config.midi.client_name + "-poll")

    # -- lifecycle --------------------------------------------------------------------------
    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open every port; a missing one is a ConfigError naming the key (nothing stays open)."""
        self._loop = loop
        try:
            for index, port in enumerate(self._ports):
                if not self._open(index, port):
                    key = next(i for i, p in enumerate(self._config.players) if p.port == port.ref)
                    raise ConfigError(self._config.source, f"players[{key}].port",
                                      f"no MIDI input matches {port.ref!r}; inputs here: "
                                      f"{self._lister.get_ports()}")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close every port. What is still queued is never handled (a turn may be pending on
        the loop): counted as `unhandled`."""
        self._release([port for port in self._ports if port.rt is not None])
        self._lister.delete()
        self._closed = True
        self.stats.unhandled += len(self._queue)
        self._queue.clear()

    def _release(self, ports: list[_Port]) -> None:
        delete_inputs([port.rt for port in ports if port.rt is not None],
                      lambda: any(port.in_callback for port in ports))
        for port in ports:
            port.rt = None

    def poll(self) -> None:
        """Look for vanished and returning ports (no MIDI library gives hot-plug events)."""
        try:
            names = self._lister.get_ports()
        except rtmidi.RtMidiError as e:  # a port went while being listed: look again next poll
            log.info("MIDI inputs changed while being listed (%s)", e)
            return
        for index, port in enumerate(self._ports):
            if is_virtual(port.ref):
                continue
            if port.rt is not None and port.opened_name not in names:
                self._release([port])  # holds the loop ~10 ms: the settle, rare
                log.warning("MIDI input %r (%s) vanished", port.ref, port.opened_name)
                self._on_port_event("lost", port.ref, [p.name for p in port.players])
            elif port.rt is None and match_port(names, port.ref) is not None and self._open(
                    index, port):
                log.warning("MIDI input %r is back as %s", port.ref, port.opened_name)
                self._on_port_event("back", port.ref, [p.name for p in port.players])
        if self._guard is not None:
            for name in self._guard.quiet(time.monotonic_ns()):
                port = next(port for port in self._ports if any(
                    p.name == name for p in port.players))
                log.warning("MIDI input %r: no note from %s for %.0f s: answering them again",
                            port.ref, name, self._guard.quiet_ns / 1e9)
                self._on_port_event("feedback-over", port.ref, [name])

    def _open(self, index: int, port: _Port) -> bool:
        rt = rtmidi.MidiIn(self._backend.api, self._config.midi.client_name)
        follow_clock = any(p.follow_clock for p in port.players)
        # SysEx is capped by the parser; clock only when following it; active sensing kept out.
        rt.ignore_types(sysex=False, timing=not follow_clock, active_sense=True)
        if is_virtual(port.ref):
            rt.open_virtual_port(virtual_name(port.ref))
            port.opened_name = virtual_name(port.ref)
        else:
            try:
                names = rt.get_ports()
                found = match_port(names, port.ref)
                if found is not None:
                    rt.open_port(found, f"in-{index + 1}")
            except rtmidi.RtMidiError as e:  # the port went while being opened: not there
                log.info("MIDI input %r changed while being opened (%s)", port.ref, e)
                found = None
            if found is None:
                rt.delete()
                return False
            port.opened_name = names[found]
        rt.set_callback(self._callback, index)
        port.rt = rt
        return True

    # -- the hot path -----------------------------------------------------------------------
    def _callback(self, event: tuple[list[int], float], index: int) -> None:
        """rtmidi's thread. Stamp, append (or refuse: a full queue), wake the loop once per
        burst. Nothing else."""
        t = time.monotonic_ns()
        port = self._ports[index]
        port.in_callback += 1  # this port's own thread is the only one to write it
        try:
            queued = len(self._queue)
            if (not port.refusing.admit(data := event[0], queued >= self._limit)
                    or queued >= self._limit * RESERVE_FACTOR):
                self.stats.overflow += 1
            else:
                self._queue.append((t, index, data))
                if not self._wake_pending:
                    self._wake_pending = True
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._drain)
            self.stats.callback_ns.add(time.monotonic_ns() - t)
        finally:
            port.in_callback -= 1

    def _drain(self) -> None:
        """On the loop: parse and dispatch what is queued, in arrival order, for one turn
        (TURN_NS); if more is queued then, the next turn is scheduled (call_soon: after the
        callbacks already due, timers and I/O included) and this one yields.

        The wake flag stays set while draining and between turns, so the rest of a burst (one
        JACK cycle delivers many messages) appends without waking the loop again; a wake-up
        costs the callback a round trip for the GIL. The queue is checked once more after the
        flag is cleared: an append that raced the clearing is drained here, or has scheduled
        its own wake-up.
        """
        if self._closed:
            return
        queue, ports, stats = self._queue, self._ports, self.stats
        shed_after = self._shed_after_ns
        now = time.monotonic_ns()
        end = now + TURN_NS
        while True:
            while queue:
                t, index, data = queue.popleft()
                stale = shed_after is not None and now - t > shed_after
                if ports[index].shedding.admit(data, stale):
                    try:
                        self.feed_bytes(t, index, data)
                    except Exception:  # one message's trouble must not end the listening
                        self._failed(data)
                    began, now = now, time.monotonic_ns()
                    stats.handle_ns.add(now - began)
                else:  # not heard (recorded: a few us, against tens for one handled)
                    stats.shed += 1
                    self._shed(t, index, data)
                    now = time.monotonic_ns()
                if queue and now >= end:
                    assert self._loop is not None
                    self._loop.call_soon(self._drain)
                    return
            self._wake_pending = False
            if not queue:
                return
            self._wake_pending = True

    def _failed(self, data: list[int]) -> None:
        """Handling a message raised: logged (at most once a second, with its traceback), and
        counted; the drain goes on, so input is never left waiting behind a bug."""
        self.stats.failed += 1
        held = self._failure_log.due()
        if held is not None:
            log.exception("MIDI input: handling %s failed (%d in all%s); listening on",
                          bytes(data).hex(" "), self.stats.failed,
                          f", {held} not logged since the last" if held else "")

    def feed_bytes(self, t_ns: int, index: int, data: list[int] | bytes) -> None:
        """Parse raw bytes from port `index` and hand each message to the right player."""
        port = self._ports[index]
        dropped_before = port.parser.stats.dropped
        for message in port.parser.feed(data):
            self.stats.received += 1
            for player in port.players_on(channel_of(message)):
                if self._guard is not None:
                    trip = self._guard.heard(t_ns, player.name, message)
                    if trip is not None:  # first: the message that tripped is not answered
                        self._tripped(port, trip)
                self._on_heard(Heard(t_ns, player.name, message))
        self.stats.malformed += port.parser.stats.dropped - dropped_before

    def _shed(self, t_ns: int, index: int, data: list[int]) -> None:
        """A shed message to its players, to be recorded. Only whole note messages are shed
        (listen/shedding.py), so the port's parser, which may hold a SysEx in progress, is
        left alone."""
        if self._on_shed is None:
            return
        for player in self._ports[index].players_on(data[0] & 0x0F):
            try:
                self._on_shed(Heard(t_ns, player.name, bytes(data)))
            except Exception:  # recording is best effort: the drain goes on
                self._failed(data)

    def _tripped(self, port: _Port, trip: Trip) -> None:
        assert self._guard is not None
        log.warning("MIDI input %r (%s): the agent hears itself: %d of its own notes came back "
                    "from player %s within %.0f ms of being sent (the last: %s). Not answering "
                    "%s until no note comes from them for %.0f s. Is the agent's output "
                    "connected to its input (a patch, a MIDI thru)?", port.ref,
                    port.opened_name, trip.echoes, trip.player, self._guard.window_ns / 1e6,
                    trip.data.hex(" "), trip.player, self._guard.quiet_ns / 1e9)
        self._on_port_event("feedback", port.ref, [trip.player])
