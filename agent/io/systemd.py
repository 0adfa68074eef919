"""systemd's notify protocol (sd_notify(3)): READY, WATCHDOG, STOPPING and STATUS datagrams.

The protocol is one datagram of `KEY=value` lines to the unix socket named by NOTIFY_SOCKET (a
path, or an abstract socket when it starts with "@"). Outside systemd there is no NOTIFY_SOCKET
and every call does nothing; a socket that cannot be reached is logged once. Nothing here ever
raises: a service manager's trouble must not stop the music.

The watchdog interval comes from WATCHDOG_USEC (and WATCHDOG_PID, when set, must be ours). The
service pings at half the interval, and only when its loop shows signs of life (see service.py):
a hung loop sends nothing, and systemd restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        self._failed = False
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_ns: int | None = (
            int(usec) * 1000 if usec.isdigit() and int(usec) > 0 and ours else None)
        if self.address:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            except OSError as e:
                self._report(e)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def _target(self) -> str | bytes:
        # An abstract socket: "@name" on the wire is a leading NUL byte.
        return b"\0" + self.address[1:].encode() if self.address.startswith("@") else self.address

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines; True if the datagram left. Never raises."""
        if self._sock is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(message, self._target())
        except OSError as e:
            self._report(e)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready=1, status=status)

    def ping(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(stopping=1, status=status)

    def _report(self, error: OSError) -> None:
        if not self._failed:
            self._failed = True
            log.warning("systemd notify socket %s: %s (further failures not logged)",
                        self.address, error)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def request_realtime(priority: int = 40) -> str:
    """Ask for SCHED_FIFO at `priority` for this process; on EPERM (no LimitRTPRIO, no
    CAP_SYS_NICE) say so and carry on under the normal scheduler. Returns what happened."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as e:  # PermissionError is an OSError
        log.info("realtime priority not granted (%s): running at normal priority", e)
        return f"normal ({e.__class__.__name__})"
    return f"SCHED_FIFO {priority}"
