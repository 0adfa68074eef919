"""The soak's flood phase (bench/soak.py --flood-s S): a stuck controller on a player's hub.

For the last S seconds of the run, and on through the stop, another JACK client sends note-ons
and note-offs on the melody player's channel at --flood-rate messages a second into the agent's
melody input port: a second connection into it, as a MIDI merge box makes (reconnected if the
port is dropped and comes back). It runs in its own process and writes in its JACK process
callback, each message at its exact frame, so the rate does not depend on Python's timing. The
director puts the agent in --flood-mode (harmony by default: every message heard is answered)
when the flood starts. SIGTERM comes while the flood goes on; the flood stops when the agent has
exited, or FLOOD_AFTER_TERM_S after the SIGTERM if it has not.

Measured: the agent's telemetry snapshots that arrived during the flood (one a second while its
loop turns; none if the loop stood still) and their loop lag (each snapshot covers the last 500
wakes, about 50 s: a flood of 60 s or more is covered by its last snapshot alone); the time from
SIGTERM to the agent's exit, and whether it exited while the flood went on; messages sent, and
those the agent dropped on a full queue (its summary). An agent that has not exited 2 minutes
after the SIGTERM gets a SIGABRT: run with PYTHONFAULTHANDLER=1 to find its threads' stacks in
its stderr (--keep keeps it).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _common import AgentProcess, PacedMidi, heading, sleep_until_ns

if TYPE_CHECKING:
    from soak import Director

S = 1_000_000_000
FLOOD_AFTER_TERM_S = 30.0  # the flood stops then if the agent has not exited (today's code)
EXIT_WAIT_S = 90.0


def flood_sender(rate: float, channel: int, band_port: str, ready: Any, go: Any, stop: Any,
                 out: Any) -> None:
    """Child process: a JACK client (JACK-Client) whose output port is connected to every port
    `band_port` feeds (the agent's input), writing a note-on or note-off every 1/rate s while
    `go` is set and `stop` is not. Puts the count sent on `out` at the end."""
    import jack  # JACK-Client: imported here, the bench process itself never needs it

    def message(i: int) -> bytes:  # none the same within 1.8 s
        pitch, velocity = 60 + i // 2 % 36, 1 + i // 72 % 127
        return bytes(((0x90 if i % 2 == 0 else 0x80) | channel, pitch, velocity))

    paced = PacedMidi("bench-soak-flood", "flood", rate, message)
    client, port = paced.client, paced.port
    client.activate()
    ready.set()
    go.wait()
    paced.running = True
    while not stop.is_set():  # keep it plugged in: the agent reopens a dropped port
        with contextlib.suppress(jack.JackError):
            targets = [p.name for p in client.get_all_connections(band_port)]
            connected = {p.name for p in client.get_all_connections(port)}
            for target in targets:
                if target not in connected:
                    client.connect(port, target)
        stop.wait(0.2)
    paced.running = False
    out.put(paced.sent)
    client.deactivate()
    client.close()


@dataclass
class FloodPhase:
    rate: float
    seconds: float
    mode: str
    start_ns: int = 0
    term_ns: int = 0
    exit_ns: int | None = None
    exited_during_flood: bool = False
    sent: int = 0
    summary: str = ""
    _proc: Any = None
    _events: dict[str, Any] = field(default_factory=dict)
    _out: Any = None

    def start(self, ctx: Any, channel: int, band_port: str) -> None:
        """Start the sender (a JACK client takes a moment to start): it waits to be let go."""
        self._events = {k: ctx.Event() for k in ("ready", "go", "stop")}
        self._out = ctx.Queue()
        self._proc = ctx.Process(target=flood_sender, daemon=True, args=(
            self.rate, channel, band_port, self._events["ready"], self._events["go"],
            self._events["stop"], self._out))
        self._proc.start()
        if not self._events["ready"].wait(30):
            raise SystemExit("the flood's JACK client did not start")

    def begin_at(self, at_ns: int, director: Director, prefix: str) -> None:
        """Flood from `at_ns` on (a thread waits for it), the agent put in the flood's mode
        (the director's own mode commands keep it there from then on)."""
        def begin() -> None:
            sleep_until_ns(at_ns)
            director.mode = self.mode
            director.client.publish(prefix + "cmd/mode", json.dumps(
                {"id": "flood-mode", "sent": time.time(), "mode": self.mode}), qos=1)
            self.start_ns = time.monotonic_ns()
            self._events["go"].set()
        threading.Thread(target=begin, daemon=True).start()

    def end(self, agent: AgentProcess, sig: signal.Signals = signal.SIGTERM) -> None:
        """`sig` (SIGTERM) during the flood; the time to the agent's exit; then the flood
        stops."""
        self.term_ns = time.monotonic_ns()
        if agent.proc.poll() is None:
            agent.proc.send_signal(sig)
        self.exit_ns = exited(agent, self.term_ns + round(FLOOD_AFTER_TERM_S * S))
        self.exited_during_flood = self.exit_ns is not None
        self._events["stop"].set()
        if self.exit_ns is None:
            self.exit_ns = exited(agent, time.monotonic_ns() + round(EXIT_WAIT_S * S))
        if self.exit_ns is None:  # hung: its threads' stacks on its stderr (PYTHONFAULTHANDLER)
            agent.proc.send_signal(signal.SIGABRT)
        self.summary = agent.stop()
        with contextlib.suppress(Exception):
            self.sent = self._out.get(timeout=10)
        self._proc.join(10)

    def report(self, director: Director, records: list[dict[str, Any]],
               band_sent: int) -> dict[str, Any]:
        """Print the phase's figures; return them. `records`: the agent's log; `band_sent`: what
        the band itself sent on the melody port."""
        heading(f"flood: {self.rate:.0f} msg/s into the melody port, {self.mode} mode, for the "
                f"last {self.seconds:g} s and on through SIGTERM")
        during = [s for t, s in director.telemetry if self.start_ns + S <= t <= self.term_ns]
        before = [t for t, _ in director.telemetry if t < self.start_ns]
        lags = [s["loop_lag_ms"] for s in during]
        stop = next((r["t"] for r in records if r["k"] == "ctl" and r["what"] == "stop"), None)
        logged = sum(r["k"] == "in" and r["player"] == "melody" for r in records) - band_sent
        f: dict[str, Any] = {
            "rate": self.rate, "seconds": self.seconds, "mode": self.mode, "sent": self.sent,
            "telemetry_during": len(during),
            "telemetry_expected": int((self.term_ns - self.start_ns) / S) - 1,
            "loop_lag_ms_last": lags[-1] if lags else None,
            "loop_lag_ms_max": max((lag["max"] for lag in lags), default=None),
            "sigterm_to_stop_ms": None if stop is None else (stop - self.term_ns) / 1e6,
            "sigterm_to_exit_s": None if self.exit_ns is None else
            (self.exit_ns - self.term_ns) / S,
            "logged": logged,
            "exited_during_flood": self.exited_during_flood,
            "dropped": dropped(self.summary)}
        print(f"  sent {self.sent} messages, {logged} logged (the melody port's, less the "
              f"band's); the agent's telemetry during the flood: {f['telemetry_during']} "
              f"snapshots in {f['telemetry_expected']} seconds")
        if lags:
            last = lags[-1]
            print(f"  loop lag, the last snapshot before SIGTERM (its last {last['n']} wakes "
                  f"counted so far, ~50 s): p50 {last['p50']} p99 {last['p99']} max "
                  f"{last['max']} ms; max over the flood's snapshots {f['loop_lag_ms_max']} ms")
        else:
            stuck = (self.term_ns - max(before, default=self.start_ns)) / S
            print(f"  !! no telemetry during the flood: the loop did not turn (nothing for "
                  f"{stuck:.1f} s before SIGTERM)")
        term = ("NEVER" if self.exit_ns is None else
                f"{f['sigterm_to_exit_s']:.2f} s, " + ("while the flood went on"
                                                       if self.exited_during_flood else
                                                       "only after the flood stopped"))
        stopped = "never" if stop is None else f"{f['sigterm_to_stop_ms']:.1f} ms"
        print(f"  SIGTERM -> the stop's panic (its log record): {stopped}; -> exit: {term} "
              "(the exit writes performance.mid and the summary)")
        print(f"  dropped by the agent: {f['dropped']}")
        return f


def dropped(summary: str) -> dict[str, int] | None:
    """The agent's summary line "MIDI input dropped: N on a full queue, M malformed, K still
    queued at the stop, S shed ..." (absent: nothing dropped)."""
    m = re.search(r"MIDI input dropped: (\d+) on a full queue, (\d+) malformed"
                  r"(?:, (\d+) still queued)?(?: at the stop, (\d+) shed)?", summary)
    if m is None:
        return {"full_queue": 0, "malformed": 0, "unhandled": 0, "shed": 0} if summary else None
    return {"full_queue": int(m[1]), "malformed": int(m[2]), "unhandled": int(m[3] or 0),
            "shed": int(m[4] or 0)}


def exited(agent: AgentProcess, until_ns: int) -> int | None:
    """When the agent's process was seen to have exited (polled every 10 ms), or None."""
    while time.monotonic_ns() < until_ns:
        if agent.proc.poll() is not None:
            return time.monotonic_ns()
        time.sleep(0.01)
    return None
