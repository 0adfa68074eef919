"""The test's side of the stage: a player's port, a synth's port, and the agent as a process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import rtmidi

from agent.io.midi_in import delete_inputs

# The start of every test's performance.toml: one player on the peer's port, quick port polling.
STAGE_HEAD = """
[performance]
name = "{name}"
[midi]
poll_ports_ms = 100
[[players]]
name = "keys"
port = "{player}"
"""
STALE_WINDOW_NS = 50_000_000  # a re-delivered buffer is at most a few JACK periods old
# The messages of one JACK cycle reach the peer's callback back to back (at most 0.15 ms apart
# on a loaded 2-core machine). A later cycle's mostly come a period (10.7 ms) later, but not
# always: a server catching up after a stall runs cycles back to back.
BATCH_GAP_NS = 2_000_000
# What an agent sends each output at start, on its channel (service.py): sustain off, all notes
# off, all sound off, silencing what a crashed run left sounding.
RESET_CONTROLS = [[64, 0], [123, 0], [120, 0]]


def agent_piece(mode: str) -> str:
    """STAGE_HEAD and the agent in `mode`, playing at the peer's synth port on MIDI channel 2
    (status nibble 1). More [agent] keys may follow, then the piece's other sections."""
    return STAGE_HEAD + f"""
[agent]
mode = "{mode}"
outputs = ["{{synth}}"]
channel = 2
"""


# Each note answered at once a fifth up.
FIFTH_UP = agent_piece("harmony") + """[harmony]
intervals = [7]
"""
# Call and response: a phrase ends after 300 ms of silence, and the agent answers it.
CALL_RESPONSE = agent_piece("call-response") + """[respond]
phrase_gap_ms = 300.0
"""


def model_piece(checkpoint: str) -> str:
    """Call and response, the answers (at most 4 notes) made by the model in `checkpoint`, a
    file beside performance.toml. [model] comes last: more of its keys may follow."""
    return agent_piece("call-response") + f"""output_latency_ms = 100.0
[respond]
phrase_gap_ms = 300.0
max_notes = 4
[model]
checkpoint = "{checkpoint}"
deadline_ms = 80.0
range_semitones = 5
"""


def write_piece(folder: Path, piece: str, name: str, **fields: object) -> Path:
    """folder/performance.toml: `piece` for the peer called `name` (ports `{name}-keys` and
    `{name}-synth`), `fields` filling its other placeholders."""
    config = folder / "performance.toml"
    config.write_text(piece.format(name=name, player=f"{name}-keys", synth=f"{name}-synth",
                                   **fields))
    return config


class StaleRepeats:
    """Tells a buffer JACK delivered again from a message really sent again.

    In a cycle a client misses (an xrun), JACK may hand a receiver the previous cycle's buffer
    again: its messages arrive twice, and nothing newer comes between (a port buffer is only
    rewritten when its client runs, and each synth port here has one sender). So a message is a
    stale repeat only if it equals one of the latest batch, within STALE_WINDOW_NS of it, and
    the server's log shows an xrun. The latest batch: the messages kept since the last that came
    BATCH_GAP_NS after the one before it, or after the peer sent something (what answers it
    is of a later cycle; a server catching up runs a cycle in a millisecond). So a note played,
    released and played again as fast as the peer answers is never taken for a repeat: any
    equal message within the window was, and under load such a note-on was thrown away
    (test_perform_osc_flood, 10 in 22 runs).
    """

    def __init__(self, xrun_seen: Callable[[], bool]) -> None:
        self._xrun_seen = xrun_seen
        self._batch: list[tuple[int, list[int]]] = []  # the latest cycle's messages, kept
        self._sends: list[int] = []  # when the peer sent something, within the window
        self.count = 0  # repeats forgiven

    def sent(self, t: int) -> None:
        """The peer sent a message at `t` (ns, taken before sending)."""
        self._sends = [u for u in self._sends if t - u < STALE_WINDOW_NS] + [t]

    def is_stale(self, t: int, message: list[int]) -> bool:
        """Whether `message`, arrived at `t` (ns), is a stale repeat; if not, it is kept."""
        if any(m == message and t - u < STALE_WINDOW_NS for u, m in self._batch) and \
                self._xrun_seen():
            self.count += 1
            return True
        if self._batch and (t - self._batch[-1][0] > BATCH_GAP_NS or
                            any(self._batch[-1][0] < u < t for u in self._sends)):
            self._batch = []
        self._batch.append((t, message))
        return False


class Peer:
    """A JACK client with a virtual output (the player) and a virtual input (the synth)."""

    def __init__(self, name: str, player_port: str, synth_port: str,
                 xruns: Callable[[], int]) -> None:
        self.name, self.player_port = name, player_port
        # A buffer JACK re-delivers in a missed cycle is forgiven (StaleRepeats) only when the
        # server's log shows an xrun since this peer started; otherwise a repeat fails the test.
        self._xruns = xruns
        self._xruns_at_start = xruns()
        self._stale = StaleRepeats(lambda: self._xruns() > self._xruns_at_start)
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{name}-player")
        self.out.open_virtual_port(player_port)
        self.inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{name}-synth")
        self.inp.ignore_types(sysex=False, timing=False, active_sense=False)
        self.inp.open_virtual_port(synth_port)
        self.received: queue.Queue[tuple[int, list[int]]] = queue.Queue()
        self.inp.set_callback(lambda ev, _: self.received.put((time.monotonic_ns(), ev[0])))

    def send(self, *data: int) -> int:
        t = time.monotonic_ns()
        self._stale.sent(t)
        self.out.send_message(list(data))
        return t

    def _next(self, timeout: float) -> tuple[int, list[int]]:
        """The next message at the synth port (queue.Empty after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            t, message = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            if not self._stale.is_stale(t, message):
                return t, message

    def expect(self, count: int, timeout: float = 5.0) -> list[tuple[int, list[int]]]:
        """Wait for `count` messages at the synth port (fails the test if they do not come)."""
        got: list[tuple[int, list[int]]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(self._next(deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"expected {count} messages, got {got}") from None
        return got

    def wait_for(self, message: list[int], timeout: float = 5.0) -> list[list[int]]:
        """Everything received until `message` arrives (fails the test if it does not)."""
        got: list[list[int]] = []
        deadline = time.monotonic() + timeout
        while message not in got:
            try:
                got.append(self._next(deadline - time.monotonic())[1])
            except queue.Empty:
                raise AssertionError(f"{message} never came; got {got}") from None
        return got

    def ask(self, note: list[int], answer: list[int], timeout: float = 5.0) -> float:
        """Play `note` (and release it) until `answer` arrives; seconds it took. A single
        message can be lost in a JACK xrun, so asking again is part of the question."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.send(*note)
            self.send(note[0] & 0x0F | 0x80, note[1], 0)
            try:
                self.wait_for(answer, timeout=0.25)
                return time.monotonic() - start
            except AssertionError:
                continue
        raise AssertionError(f"no {answer} for {note} within {timeout} s")

    def take_reset(self) -> int:
        """The reset an agent playing to this synth port sends first (RESET_CONTROLS), taken
        off the port; the agent's channel (0-15)."""
        got = [m for _, m in self.expect(3)]
        return self._check_reset(got)

    def take_reset_unless_lost(self) -> int | None:
        """As take_reset, for a start on a loaded machine (an agent's model worker importing
        torch, another agent starting): a JACK server with no real-time rights is starved, and
        a cycle it misses (an xrun, in its log) loses the MIDI sent in it. Then None; with no
        xrun since this peer started, a missing reset fails the test."""
        try:
            got = [m for _, m in self.expect(3)]
        except AssertionError:
            if self._xruns() > self._xruns_at_start:
                return None
            raise
        return self._check_reset(got)

    @staticmethod
    def _check_reset(got: list[list[int]]) -> int:
        assert [m[1:] for m in got] == RESET_CONTROLS, f"not a reset: {got}"
        assert len({m[0] for m in got}) == 1 and got[0][0] & 0xF0 == 0xB0, f"not a reset: {got}"
        return got[0][0] & 0x0F

    def drain(self, settle: float = 0.3) -> list[tuple[int, list[int]]]:
        """Everything that arrives until the port has been quiet for `settle` seconds."""
        got = []
        while True:
            try:
                got.append(self._next(settle))
            except queue.Empty:
                return got

    def unplug(self) -> None:
        """The player's port vanishes, as when a USB keyboard is pulled."""
        self.out.delete()

    def replug(self) -> None:
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{self.name}-player")
        self.out.open_virtual_port(self.player_port)

    def close(self) -> None:
        self.out.delete()
        delete_inputs([self.inp])  # the agent's way: a callback may be on its way


class RunningAgent:
    """`stage-agent perform config` in its own process, started once its ports are open and the
    reset it sends at start has reached each of `synths` (the peers it plays to)."""

    def __init__(self, config: Path, env: dict[str, str], synths: Sequence[Peer] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "perform", str(config)],
                                     env={**os.environ, **env}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed only after every port is open
        if not line.startswith("stage-agent: performing"):
            self.proc.kill()
            raise AssertionError(f"agent did not start: {line}{self.proc.communicate()}")
        self.ready_line = line
        # The recording folder ("" when its disk could not take one: "NOT RECORDING: ...").
        self.recording = line.rsplit("recording to ", 1)[1].strip() if "recording to " in line \
            else ""
        for synth in synths:  # (tests of the reset itself take it with take_reset)
            synth.take_reset_unless_lost()
        self.out = self.err = ""
        self._signalled = False

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self._signalled = True
        self.proc.send_signal(sig)

    def wait(self) -> int:
        """Stop it (SIGTERM unless a signal was sent already); returns the exit status."""
        if not self._signalled:
            self.signal()
        self.out, self.err = self.proc.communicate(timeout=10)
        return self.proc.returncode


@contextmanager
def running_agent(config: Path, env: dict[str, str], *synths: Peer) -> Iterator[RunningAgent]:
    """The agent for the length of a `with` block; always stopped (and reaped) at its end.
    `synths`: the peers it plays to (their reset is taken, RunningAgent)."""
    agent = RunningAgent(config, env, synths)
    try:
        yield agent
    finally:
        if agent.proc.returncode is None:
            agent.wait()


@contextmanager
def on_stage(name: str, xruns: Callable[[], int], folder: Path, piece: str,
             **fields: object) -> Iterator[tuple[Peer, Path]]:
    """A Peer called `name` and `piece` written for it (write_piece): (the peer, the config).
    The peer is closed at the end of the `with` block."""
    peer = Peer(name, f"{name}-keys", f"{name}-synth", xruns)
    try:
        yield peer, write_piece(folder, piece, name, **fields)
    finally:
        peer.close()


def short_name(test_name: str) -> str:
    """A name for a test's peer and performance: its own, short enough for JACK's port names."""
    return test_name.replace("_", "")[-20:]
