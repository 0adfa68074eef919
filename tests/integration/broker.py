"""A real mosquitto broker for the tests: its own config in a test folder, a free port on
127.0.0.1, persistence off (a restart forgets every retained message), stopped afterwards."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# Debian installs the broker in sbin, which is not on every user's PATH.
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None,
                                     reason="needs mosquitto (scripts/setup.sh installs it)")
START_TIMEOUT_S = 10.0
ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "systemd" / "mosquitto-stage.conf"  # the example a stage installs
SHIPPED_ACL = ROOT / "systemd" / "mosquitto-stage.acl"
# What the shipped config says about this machine rather than about the broker's behaviour:
# replaced by the test's own listener, password file, ACL and (no) persistence.
_MACHINE_KEYS = ("listener", "bind_interface", "password_file", "acl_file", "persistence",
                 "persistence_location", "autosave_interval", "cafile", "certfile", "keyfile",
                 "tls_version")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto on 127.0.0.1:port. `users` ({name: password}) turns anonymous access off;
    `tls` (certfile, keyfile) makes the listener TLS-only; `acl` is an ACL file. `shipped`:
    every setting of the shipped example config (SHIPPED_CONF) but its machine's listener
    addresses, files and persistence (give `users` and `acl`, e.g. SHIPPED_ACL)."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None, acl: Path | None = None,
                 shipped: bool = False) -> None:
        assert MOSQUITTO is not None, "mosquitto not installed"
        self.folder, self.port = folder, free_port()
        self.log = folder / "mosquitto.log"
        # set_tcp_nodelay: without it the broker's small writes to a client wait for that
        # client's delayed ACK (Nagle): a command -> ack round trip took ~40 ms, with it ~1 ms.
        # A stage broker wants the same line (systemd/mosquitto-stage.conf).
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "set_tcp_nodelay true",
                 # As root, mosquitto would drop to the user "mosquitto", who cannot read the
                 # test's private folder; as anyone else this line is ignored.
                 f"user {getpass.getuser()}"]
        if shipped:
            lines[:0] = [line for line in SHIPPED_CONF.read_text().splitlines()
                         if line.strip() and not line.startswith("#")
                         and line.split()[0] not in _MACHINE_KEYS]
        if users:
            assert MOSQUITTO_PASSWD is not None, "mosquitto_passwd not installed"
            passwd = folder / "passwd"
            for i, (name, password) in enumerate(users.items()):
                subprocess.run([MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []),
                                str(passwd), name, password], check=True, capture_output=True)
            os.chmod(passwd, 0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if acl:
            lines.append(f"acl_file {acl}")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start, and return once the port accepts connections (the process is polled too:
        a broker that exits, e.g. on a bad config, fails at once with its log)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO or "mosquitto", "-c", str(self.conf)],
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto not listening on {self.port} after "
                                       f"{START_TIMEOUT_S} s: {self.log.read_text()[-2000:]}"
                                       ) from None
                time.sleep(0.01)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGKILL: an outage with no goodbye to anyone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
