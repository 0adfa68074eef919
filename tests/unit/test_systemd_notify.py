"""sd_notify over a real unix datagram socket: what systemd would read, and never a raise."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.io.systemd import Notifier, request_realtime


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2.0)
    yield s, path
    s.close()


def test_ready_watchdog_and_stopping_arrive_as_systemd_reads_them(
        listener: tuple[socket.socket, str]) -> None:
    s, path = listener
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert n.enabled and n.watchdog_ns == 2_000_000_000
    assert n.ready("performing demo")
    assert s.recv(256) == b"READY=1\nSTATUS=performing demo"
    assert n.ping() and s.recv(256) == b"WATCHDOG=1"
    assert n.stopping() and s.recv(256) == b"STOPPING=1\nSTATUS=stopping"
    n.close()


def test_an_abstract_socket_works() -> None:
    name = f"stage-agent-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(2.0)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert s.recv(256) == b"READY=1\nSTATUS=up"
    finally:
        s.close()


def test_outside_systemd_nothing_is_sent_and_nothing_raises() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_ns is None
    assert not n.ready("x") and not n.ping() and not n.stopping()


def test_an_unreachable_socket_is_logged_once_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING):
        assert not n.ready("x")
        assert not n.ping()
    assert len([r for r in caplog.records if "notify socket" in r.message]) == 1


def test_the_watchdog_is_ours_only_when_its_pid_is() -> None:
    assert Notifier({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}).watchdog_ns is None
    assert Notifier({"WATCHDOG_USEC": "500000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_ns == 500_000_000
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_ns is None


def test_a_refused_realtime_request_carries_on() -> None:
    # Priority 0 is invalid for SCHED_FIFO: the kernel refuses it (EINVAL) whoever asks.
    assert request_realtime(0) == "normal (OSError)"


def test_realtime_is_granted_or_refused_gracefully_in_a_process_of_its_own() -> None:
    out = subprocess.run([sys.executable, "-c", "from agent.io.systemd import request_realtime;"
                          "print(request_realtime(1))"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out in ("SCHED_FIFO 1", "normal (PermissionError)")
