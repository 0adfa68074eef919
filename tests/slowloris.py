"""Slow-loris clients for the tests of the live monitor: real sockets in threads."""

from __future__ import annotations

import itertools
import socket
import threading


class SlowLoris:
    """`count` clients, each in its own thread with a blocking socket: it connects and sends a
    request one byte every `every_s`, never finishing it (a header line that never ends); when
    the server cuts it, it connects again at once, as an attacker would."""

    HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, port: int, count: int, every_s: float = 0.2) -> None:
        self.port, self.every_s = port, every_s
        self.connects = [0] * count  # connections made, per client
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, i: int) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5.0) as s:
                    self.connects[i] += 1
                    for byte in itertools.chain(self.HEAD, itertools.repeat(ord("a"))):
                        s.sendall(bytes([byte]))
                        if self.stop.wait(self.every_s):
                            return
            except OSError:  # cut (or refused): connect again
                self.stop.wait(0.01)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5.0)
