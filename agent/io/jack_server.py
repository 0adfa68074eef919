"""A JACK server on the dummy driver: real MIDI ports on a machine with no sound card.

Used by the tests and benchmarks (and handy for rehearsing on a headless machine). Each server
gets its own name, and clients find it through $JACK_DEFAULT_SERVER; $JACK_NO_START_SERVER stops a
client from auto-starting a default server behind our back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.errors import PortError


@dataclass(frozen=True)
class JackServer:
    name: str
    env: dict[str, str]  # what a client process needs to find this server
    log: Path  # jackd's stderr: errors, and a line for every client that missed a cycle
    pid: int  # jackd's (the tests stop it, as a starved server)

    def xruns(self) -> int:
        return self.log.read_text(errors="replace").count("was not finished")


@contextmanager
def dummy_jack(name: str, period: int = 128, rate: int = 48000,
               realtime_priority: int = 0) -> Iterator[JackServer]:
    """Start `jackd -d dummy`, yield the server (its env and log), stop it afterwards.
    `realtime_priority` (1-99): as on stage, jackd's process thread runs SCHED_FIFO at it and
    every client's just below (the benchmarks' CPU contention runs); 0, as the tests have it:
    no realtime, needing no privilege.

    The environment is also applied to this process (os.environ), so rtmidi here uses it.
    jackd's stderr goes to a file, never to an unread pipe: under load it prints a line per
    missed cycle, and a full pipe would block jackd and stop every port.
    """
    if shutil.which("jackd") is None:
        raise PortError("jackd not found: install jackd2 (scripts/setup.sh does)")
    env = {"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1",
           "STAGE_AGENT_MIDI_API": "jack"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log_dir = tempfile.TemporaryDirectory(prefix="stage-agent-jackd-")
    log = Path(log_dir.name) / "jackd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            ["jackd", *(("--realtime", "-P", str(realtime_priority)) if realtime_priority
                        else ("--no-realtime",)),
             "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
            stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        # jack_wait returns once the server accepts clients (or fails after the timeout).
        waited = subprocess.run(["jack_wait", "-w", "-s", name, "-t", "10"],
                                capture_output=True, text=True, check=False)
        if waited.returncode != 0 or proc.poll() is not None:
            raise PortError(f"jackd {name!r} did not start: {waited.stdout}{waited.stderr}"
                            f"{log.read_text(errors='replace')[-2000:]}")
        yield JackServer(name, env, log, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        log_dir.cleanup()
