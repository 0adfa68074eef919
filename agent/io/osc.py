"""OSC over UDP: the state and plan stream out (to visuals), commands in (from a director's patch).

OscOut sends what agent/visuals/state.py encodes (addresses documented there) to each
destination. It never blocks and never raises on a network error: a send that fails (send buffer
full, no route, the peer's port closed) is dropped and counted per destination, and the first
failure of each destination is logged once. A peer that comes back gets the next message.

OscControlIn takes commands on a UDP port (bind it to loopback or the stage interface), in the
forms listed in agent/io/osc_command.py. Refused, counted in `stats` and logged at most once a
second per reason, never raised: a sender whose IP address is not on the allow-list, more than
`rate` packets (or bundled messages) a second from one sender (a token bucket holding one
second's worth), a packet over `max_size` bytes, a packet python-osc cannot decode, and a
command policy/commands.py refuses. Bundles are unpacked at once whatever their timetag: waiting
on a sender's timetag would let any sender stall the event loop, and commands are meant to act
now. UDP source addresses can be spoofed: the allow-list keeps out mistakes, a stage VLAN keeps
out people.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_packet import OscPacket

from agent.clock import NS_PER_S, Clock, MonotonicClock
from agent.errors import StageAgentError
from agent.io.osc_command import command_fields
from agent.io.udp import UdpError, UdpPeer, open_peer
from agent.policy.commands import Command, parse_command
from agent.stats import LogThrottle
from agent.visuals.state import messages

log = logging.getLogger(__name__)

_NOT_REFRESHED = ("plan",)  # a plan's times count from when it was made: never re-sent late


class OscError(StageAgentError):
    """An OSC destination or listening address that cannot be used."""


class OscOut:
    """Sends the state stream to every destination ("host", port); hosts resolved once, here,
    each through its own connected UDP socket (agent/io/udp.py says why)."""

    def __init__(self, destinations: Sequence[tuple[str, int]]) -> None:
        self._dests: list[UdpPeer] = []
        self._last: dict[str, Mapping[str, Any]] = {}
        try:
            for host, port in destinations:
                self._dests.append(open_peer(host, port, log))
        except UdpError as e:
            self.close()
            raise OscError(str(e)) from None

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per destination "host:port": datagrams sent (handed to the network) and dropped
        (failed to send, or refused by the peer: a refused one was first counted as sent)."""
        return {d.label: {"sent": d.sent, "dropped": d.dropped} for d in self._dests}

    def send_state(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Encode and send now. ValueError (nothing sent) for an unknown kind or a malformed
        payload: that is a bug of the caller, not of the network."""
        datagrams = [m.dgram for m in messages(kind, payload)]
        if kind not in _NOT_REFRESHED:
            self._last[kind] = dict(payload)
        for d in self._dests:
            for data in datagrams:
                d.send(data)

    def refresh(self) -> None:
        """Send the latest state of every kind again (not the plan). UDP loses packets and a
        visuals machine restarted mid-show must catch up: call this every second or so."""
        for kind, payload in list(self._last.items()):
            self.send_state(kind, payload)

    def close(self) -> None:
        for d in self._dests:
            d.close()


@dataclass
class _Bucket:
    tokens: float
    t_ns: int


class OscControlIn:
    """Commands over OSC into `on_command`, each checked by policy/commands.parse_command."""

    def __init__(self, host: str, port: int, allow: Sequence[str], sections: Sequence[str],
                 on_command: Callable[[Command], None], max_size: int = 8192, rate: int = 200,
                 clock: Clock | None = None) -> None:
        if rate < 1 or max_size < 16:
            raise OscError(f"OSC control: rate {rate} and max_size {max_size} must be positive")
        self._host, self._port = host, port
        self._allow: set[str] = set()
        for a in allow:  # kept as the strings the socket reports, so a packet costs no parsing
            try:
                ip = ipaddress.ip_address(a)
            except ValueError:
                raise OscError(f"OSC control: allow: {a!r} is not an IP address") from None
            self._allow.add(str(ip))
            if ip.version == 4:
                self._allow.add(f"::ffff:{ip}")  # as seen by a dual-stack IPv6 socket
        self._sections = tuple(sections)
        self._on_command = on_command
        self._max_size = max_size
        self._rate = rate
        self._clock: Clock = clock or MonotonicClock()
        self._buckets: dict[str, _Bucket] = {}  # only allowed senders: bounded by the list
        self._log_throttle = LogThrottle(lambda: self._clock.now_ns() / NS_PER_S)  # per reason
        self._transport: asyncio.DatagramTransport | None = None
        self.stats = dict.fromkeys(
            ("packets", "commands", "refused_sender", "refused_rate", "refused_size",
             "refused_decode", "bad_commands", "command_errors", "receive_errors"), 0)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self._host, self._port))
        except OSError as e:
            raise OscError(f"OSC control: cannot listen on {self._host}:{self._port}: {e}"
                           ) from None
        if not self._allow:
            log.warning("OSC control: the allow-list is empty: every command is refused")

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when it was asked for port 0)."""
        if self._transport is None:
            raise OscError("OSC control: not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram(self, data: bytes, sender: str) -> None:
        """One UDP datagram from IP address `sender` (called on the loop, by the protocol)."""
        self.stats["packets"] += 1
        if sender not in self._allow:
            self._refuse("sender", f"{sender} is not on the allow-list")
            return
        if not self._take(sender):  # before decoding: a flood costs as little as possible
            self._refuse("rate", f"{sender} sends over {self._rate} packets/s")
            return
        if len(data) > self._max_size:
            self._refuse("size", f"{len(data)}-byte packet from {sender} (max {self._max_size})")
            return
        try:
            # OscPacket only reads timetags, it never waits on them (unlike python-osc's
            # servers with strict_timing): every message is handled now.
            msgs = [timed.message for timed in OscPacket(data).messages]
        except Exception as e:  # ParseError, and whatever a crafted packet provokes
            self._refuse("decode", f"undecodable packet from {sender}: {e!r}")
            return
        for i, msg in enumerate(msgs):
            if i and not self._take(sender):  # a bundle's messages cost a token each
                self._refuse("rate", f"{sender} sends over {self._rate} messages/s",
                             len(msgs) - i)
                return
            self._message(msg)

    def _message(self, msg: OscMessage) -> None:
        try:
            verb, fields = command_fields(msg.address, msg.params)
            command = parse_command(verb, fields, self._sections)
        except StageAgentError as e:
            self.stats["bad_commands"] += 1
            self._log("command", f"OSC command {msg.address} {msg.params!r} refused: {e}")
            return
        self.stats["commands"] += 1
        try:
            self._on_command(command)
        except StageAgentError as e:
            self.stats["command_errors"] += 1
            self._log("apply", f"OSC command {command} failed: {e}")
        except Exception:  # a bug downstream: keep listening (the next command may be panic)
            self.stats["command_errors"] += 1
            log.exception("OSC command %s raised", command)

    def _take(self, sender: str) -> bool:
        now = self._clock.now_ns()
        b = self._buckets.setdefault(sender, _Bucket(float(self._rate), now))
        b.tokens = min(float(self._rate), b.tokens + (now - b.t_ns) * self._rate / NS_PER_S)
        b.t_ns = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _refuse(self, reason: str, detail: str, n: int = 1) -> None:
        self.stats["refused_" + reason] += n
        self._log(reason, f"OSC control: refused: {detail}")

    def _log(self, reason: str, text: str) -> None:
        """At most one line a second per reason: a flood must not become a flood of logs."""
        suppressed = self._log_throttle.due(reason)
        if suppressed is None:
            return
        more = f" (and {suppressed} more in the last second)" if suppressed else ""
        log.warning("%s%s", text, more)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: OscControlIn) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner.datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        self._owner.stats["receive_errors"] += 1
        self._owner._log("receive", f"OSC control: receive error: {exc!r}")
