"""One UDP peer that never blocks and never raises on the network: shared by the OSC outputs.

A send that fails (send buffer full, no route, the peer's port closed) is dropped and counted,
and the first failure of each peer is logged once, on the logger the owner passes (so each
output's warnings keep their own name). A peer that comes back gets the next datagram.

One connected UDP socket per peer: an unconnected socket on Linux silently drops the ICMP
"port unreachable" a closed peer answers with (no drop could be counted), and one socket shared
by several peers would report a peer's refusal on the next send to any of them, losing that one
instead. Not thread-safe: each owner sends from one thread (the event loop's).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from agent.errors import StageAgentError


class UdpError(StageAgentError):
    """A peer's address cannot be resolved."""


@dataclass
class UdpPeer:
    label: str  # "host:port", as logs and stats name it
    addr: tuple[Any, ...]  # as getaddrinfo gives it (IPv6 adds flow and scope)
    sock: socket.socket
    log: logging.Logger
    connected: bool = False
    sent: int = 0
    dropped: int = 0
    logged: bool = False

    def send(self, data: bytes) -> bool:
        """Hand one datagram to the network now; False (counted, never raised) if it failed."""
        for retry in (False, True):
            try:
                if not self.connected:  # no route when made (interface down at boot): retry
                    self.sock.connect(self.addr)
                    self.connected = True
                self.sock.send(data)
            except ConnectionRefusedError as e:
                # The ICMP refusal of an earlier datagram, reported on this send, which it
                # cancelled: count the earlier one lost and send this one once more.
                self._dropped(e)
                if retry:
                    return False
                continue
            except OSError as e:  # would block (send buffer full), unreachable, too long
                self._dropped(e)
                return False
            self.sent += 1
            return True
        return False  # not reached: the loop returns on its second pass

    def close(self) -> None:
        self.sock.close()

    def _dropped(self, e: OSError) -> None:
        self.dropped += 1
        if not self.logged:
            self.logged = True
            self.log.warning("OSC to %s: %s; dropping and counting (logged once)", self.label, e)


def open_peer(host: str, port: int, log: logging.Logger) -> UdpPeer:
    """Resolve once, here (never per send), and connect a non-blocking socket. UdpError if the
    host cannot be resolved; a peer without a route yet is kept and connected on a later send."""
    try:  # IPv4 first: "localhost" may list ::1 first, while OSC peers mostly listen on IPv4
        infos = sorted(socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM),
                       key=lambda info: info[0] != socket.AF_INET)
    except (OSError, UnicodeError) as e:
        raise UdpError(f"OSC destination {host}:{port}: {e}") from None
    family, _type, _proto, _name, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    peer = UdpPeer(f"{host}:{port}", tuple(addr), sock, log)
    try:
        sock.connect(peer.addr)
        peer.connected = True
    except OSError as e:
        log.warning("OSC to %s: %s; will try again on each send", peer.label, e)
    return peer
