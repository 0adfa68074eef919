"""Soak: the agent plays with two players for minutes, through broker restarts and port drops.

The agent runs as a process (`python -m agent.cli perform`, auto mode, the live Markov memory, or
the model worker with `--model`) on real JACK ports, with its own mosquitto. Two simulated players
("melody", "cello") play the demo rehearsal at real speed, looped, with its rests (the agent
answers, solos and comps). Faults on a schedule: the broker is killed (SIGKILL) and restarted
every --broker-every s (down 5 s); one player's port (alternately) vanishes with a note held and
returns every --port-every s (gone 3 s); a director client sends a valid command every
--command-every s over MQTT, counts the acks and records the agent's telemetry.

Measured: scheduler lateness (sent - deadline of every message in the agent's log), loop lag (the
agent's telemetry over MQTT: the log does not hold it), the agent's RSS, stuck notes at the synth
port after SIGTERM, messages at the synth vs emits logged, input sent vs logged, commands acked,
recovery after each outage and port drop. Peer in the same run, in its own process: a plain
asyncio loop waking on the same 100 ms cadence the same way, measuring its own lag. Timing
figures never fail the run; exit 1 only if the run broke (the agent died or did not exit
cleanly, or a note was left sounding).

    .venv/bin/python bench/soak.py [--minutes 10] [--broker-every 120] [--port-every 90]
        [--command-every 3] [--model CHECKPOINT] [--period 128] [--json PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import rtmidi
from _common import (
    REPO,
    AgentProcess,
    Broker,
    Jack,
    Summary,
    child_pids,
    every,
    first,
    heading,
    jack,
    proc_status,
    rss_growth,
    rss_mib,
    show,
    show_ratio,
    sleep_until_ns,
    sounding_notes,
    write_toml,
)
from paho.mqtt.enums import CallbackAPIVersion

from agent import midi
from agent.events import Heard
from agent.record.log import read_log
from agent.record.smf import read_players
from agent.record.telemetry import RECENT

S = 1_000_000_000  # ns per second
PLAYERS = ("melody", "cello")
PORTS = {p: f"bench-soak-{p}" for p in PLAYERS}
SYNTH = "bench-soak-synth"
PREFIX = "stage/bench-soak/agent/"  # stage/<performance.name>/<mqtt.agent>/
LOOP_GAP_NS = 4 * S  # a rest between two passes of the rehearsal (the agent solos in it)
LEAD_IN_NS = 1 * S
BROKER_DOWN_S = 5.0
PORT_GONE_S = 3.0
HOLD_S = 0.2  # the player stops playing this long before the port goes, holding one note
RESUME_S = 1.5  # after the port is back, the player waits out the agent's 500 ms port poll
RECOVER_S = 15.0  # no fault this close to the end: time to see the agent recover
RSS_EVERY_S = 2.0
FLUSH_S = 0.1  # the agent's housekeeping wake (record.flush_ms): the peer wakes the same way
COMMANDS = (("controls", {"density": 1.25}), ("mode", {"mode": "auto"}),
            ("controls", {"density": 1.0}))
PARTS = ("answer", "continue", "mirror", "solo", "comp")  # decisions that play


@dataclass(frozen=True)
class Step:
    """One thing the band does at `t_ns` (from the start): a message, or part of a port drop."""

    t_ns: int
    what: str  # msg | hold | drop | back | resume
    player: str
    data: bytes = b""


def looped_rehearsal(seconds: float) -> list[Heard]:
    """The demo rehearsal from time 0, repeated until `seconds` (times relative to the start)."""
    heard = read_players(REPO / "performances" / "demo" / "rehearsal.mid")
    begin, end = heard[0].time_ns, heard[-1].time_ns
    out: list[Heard] = []
    offset = 0
    while True:
        for h in heard:
            if (t := h.time_ns - begin + offset) >= seconds * S:
                return out
            out.append(Heard(t, h.player, h.data))
        offset += end - begin + LOOP_GAP_NS


def fault_times(seconds: float, period: float, down: float) -> list[float]:
    """Every `period` s, leaving time after the last to be down and to recover."""
    n = int((seconds - down - RECOVER_S) // period) if period > 0 else 0
    return [period * k for k in range(1, n + 1)]


def band_steps(inputs: list[Heard], drops: list[float]) -> list[Step]:
    steps = [Step(h.time_ns, "msg", h.player, h.data) for h in inputs]
    for k, t in enumerate(drops):
        p = PLAYERS[k % 2]
        for what, at in (("hold", t - HOLD_S), ("drop", t), ("back", t + PORT_GONE_S),
                         ("resume", t + PORT_GONE_S + RESUME_S)):
            steps.append(Step(round(at * S), what, p))
    return sorted(steps, key=lambda s: s.t_ns)


class Band:
    """The players' ports, all used from one thread. A player's messages are skipped while its
    port is away (hold .. resume); a note-off is sent only for a note it holds."""

    def __init__(self, channels: dict[str, int]) -> None:
        self.channels = channels
        self.ports = {p: self._open(p) for p in PLAYERS}
        self.held: dict[str, set[int]] = {p: set() for p in PLAYERS}
        self.muted: set[str] = set()
        self.sent: Counter[str] = Counter()
        self.drops: list[tuple[str, int, int]] = []  # (player, gone ns, back ns)
        self._gone = 0

    @staticmethod
    def _open(player: str) -> Any:
        port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"bench-soak-{player[:1]}")
        port.open_virtual_port(PORTS[player])
        return port

    def _send(self, player: str, data: bytes) -> None:
        if midi.is_note_on(data):
            self.held[player].add(data[1])
        elif midi.is_note_off(data):
            if data[1] not in self.held[player]:
                return
            self.held[player].discard(data[1])
        self.ports[player].send_message(list(data))
        self.sent[player] += 1

    def play(self, steps: list[Step], t0: int, agent: AgentProcess) -> None:
        """Play every step on time; stop early if the agent dies."""
        for s in steps:
            sleep_until_ns(t0 + s.t_ns)
            if agent.proc.poll() is not None:
                return
            p = s.player
            if s.what == "msg" and p not in self.muted:
                self._send(p, s.data)
            elif s.what == "hold":
                self.muted.add(p)
                if not self.held[p]:
                    self._send(p, midi.note_on(self.channels[p], 62, 80))
            elif s.what == "drop":  # a USB keyboard pulled, a note still down
                self._gone = time.monotonic_ns()
                self.ports[p].delete()
            elif s.what == "back":
                self.drops.append((p, self._gone, time.monotonic_ns()))
                self.ports[p] = self._open(p)
                self.held[p].clear()
            elif s.what == "resume":
                self.muted.discard(p)

    def close(self) -> None:
        for p in self.ports:
            for pitch in sorted(self.held[p]):
                self._send(p, midi.note_off(self.channels[p], pitch))
        time.sleep(0.05)  # sent in a later JACK cycle
        for port in self.ports.values():
            port.delete()


@dataclass
class Director:
    """A director's desk on MQTT (paho, reconnecting by itself): commands out, replies, status
    and telemetry in (stamped on arrival)."""

    port: int
    client: Any = None
    sent: dict[str, int] = field(default_factory=dict)  # id -> sent ns
    not_sent: int = 0  # the desk was not connected
    acked: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    status: list[tuple[int, str]] = field(default_factory=list)
    telemetry: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def start(self) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-soak-director")
        # Back soon after the broker (we time the agent's return, not ours). paho annotates
        # the delays as int; its wait loop takes any number of seconds.
        c.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        c.on_connect = lambda cl, _u, _f, _rc, _p: cl.subscribe(
            [(PREFIX + "status", 1), (PREFIX + "evt/#", 1), (PREFIX + "telemetry/agent", 0)])
        c.on_message = self._message
        c.connect_async("127.0.0.1", self.port, keepalive=5)
        c.loop_start()
        self.client = c

    def _message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now, body = time.monotonic_ns(), json.loads(m.payload)
        topic = m.topic.removeprefix(PREFIX)
        if topic == "status":
            self.status.append((now, body["state"]))
        elif topic == "evt/ack":
            self.acked.setdefault(body["id"], now)
        elif topic == "evt/error":
            self.errors[str(body["id"])] = body["error"]
        elif topic == "telemetry/agent":
            self.telemetry.append((now, body))

    def command(self, k: int) -> None:
        verb, fields = COMMANDS[k % len(COMMANDS)]
        cid = f"soak-{k}"
        if not self.client.is_connected():
            self.not_sent += 1
            return
        body = json.dumps({"id": cid, "sent": time.time(), **fields})
        t = time.monotonic_ns()  # before: the ack may arrive before publish() returns
        if self.client.publish(PREFIX + "cmd/" + verb, body, qos=1).rc == mqtt.MQTT_ERR_SUCCESS:
            self.sent[cid] = t
        else:
            self.not_sent += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def peer(start: Any, out: Any, ready: Any) -> None:
    """Child process: a plain asyncio loop waking as the agent's housekeeping does (wait_for on
    an event with a 100 ms timeout); lag = woke - expected, as the agent measures it."""
    ready.set()
    t0, seconds = start.get(timeout=300)

    async def run() -> list[int]:
        never, lags = asyncio.Event(), []
        sleep_until_ns(t0)
        while time.monotonic_ns() < t0 + seconds * S:
            expected = time.monotonic_ns() + round(FLUSH_S * S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(never.wait(), FLUSH_S)
            lags.append(max(time.monotonic_ns() - expected, 0))
        return lags

    out.put(asyncio.run(run()))


def write_config(path: Path, broker_port: int, model: Path | None) -> None:
    table: dict[str, Any] = {
        "performance": {"name": "bench-soak", "seed": 7},
        "midi": {"backend": "jack", "poll_ports_ms": 500},
        "players": [{"name": p, "port": PORTS[p], "channels": [i + 1]}
                    for i, p in enumerate(PLAYERS)],
        "agent": {"mode": "auto", "outputs": [SYNTH], "channel": 3},
        "respond": {"phrase_gap_ms": 600.0, "phrase_gap_beats": 0.5, "max_notes": 16},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "agent": "agent"},
    }
    if model is not None:
        table["model"] = {"checkpoint": str(model.resolve())}
    write_toml(path, table)


# -- figures -----------------------------------------------------------------------------------
def lag_windows(windows: list[dict[str, float]]) -> dict[str, float]:
    """Loop-lag figures (ms) over windows of RECENT wakes: median p50, median and worst p99,
    and the largest lag of all."""
    if not windows:
        return {"windows": 0, "p50": float("nan"), "p99": float("nan"),
                "p99_worst": float("nan"), "max": float("nan")}
    return {"windows": len(windows),
            "p50": float(np.median([w["p50"] for w in windows])),
            "p99": float(np.median([w["p99"] for w in windows])),
            "p99_worst": max(w["p99"] for w in windows), "max": max(w["max"] for w in windows)}


def agent_lag(telemetry: list[tuple[int, dict[str, Any]]]) -> tuple[dict[str, float], int]:
    """The agent's telemetry snapshots (each: the last RECENT wakes) chosen so their windows
    tile the run, the last one always in; and the largest count of wakes between two
    snapshots (more than RECENT: a stretch no figure covers)."""
    lags = [s["loop_lag_ms"] for _, s in telemetry if s["loop_lag_ms"]["n"]]
    chosen: list[dict[str, float]] = []
    next_n = min(RECENT, lags[-1]["n"]) if lags else 0
    for lag in lags:
        if lag["n"] >= next_n:
            chosen.append(lag)
            next_n = lag["n"] + RECENT
    if lags and chosen[-1] is not lags[-1]:
        chosen.append(lags[-1])
    figures = lag_windows(chosen)
    figures["max"] = max((lag["max"] for lag in lags), default=float("nan"))
    gap = max((b["n"] - a["n"] for a, b in itertools.pairwise(lags)), default=0)
    return figures, int(gap)


def peer_lag(lags: list[int]) -> dict[str, float]:
    windows = [Summary.of(lags[i:i + RECENT]) for i in range(0, len(lags), RECENT)
               if len(lags[i:i + RECENT]) >= RECENT // 10]
    return lag_windows([{"p50": w.p50 / 1e6, "p99": w.p99 / 1e6, "max": w.max / 1e6}
                        for w in windows])


@dataclass
class Run:
    """What the bench saw, for the report."""

    seconds: float
    t0: int = 0
    died: bool = False  # the agent exited before the SIGTERM
    exit_code: int | None = None
    synth: list[tuple[int, bytes]] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)  # (killed, restarted) ns
    rss: list[tuple[int, float]] = field(default_factory=list)
    rss_children: list[tuple[int, float]] = field(default_factory=list)
    preempted: list[tuple[int, int]] = field(default_factory=list)  # involuntary ctx switches
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end
    peer_lags: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="playing time (default 10)")
    p.add_argument("--broker-every", type=float, default=120.0, help="s between broker kills")
    p.add_argument("--port-every", type=float, default=90.0, help="s between port drops")
    p.add_argument("--command-every", type=float, default=3.0, help="s between commands")
    p.add_argument("--model", type=Path, help="a checkpoint: the agent runs its model worker")
    p.add_argument("--period", type=int, default=128, help="JACK frames per period")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--keep", type=Path, help="copy the recording and the agent's and broker's "
                   "logs into this (new) folder")
    args = p.parse_args()
    run = Run(args.minutes * 60)
    outage_at = fault_times(run.seconds, args.broker_every, BROKER_DOWN_S)
    drop_at = fault_times(run.seconds, args.port_every, PORT_GONE_S + RESUME_S)
    inputs = looped_rehearsal(run.seconds)
    channels = {h.player: h.data[0] & 0x0F for h in reversed(inputs)}
    heading(f"soak: {run.seconds / 60:g} min of the demo rehearsal through the agent (auto, "
            f"{'model ' + str(args.model) if args.model else 'Markov memory'}); "
            f"{len(outage_at)} broker outages, {len(drop_at)} port drops")
    ctx = mp.get_context("spawn")
    with (jack(f"bench-soak-{os.getpid()}", args.period) as server,
          tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp):
        broker = Broker(Path(tmp))
        broker.start()
        config = Path(tmp) / "performance.toml"
        write_config(config, broker.port, args.model)
        start, out, ready = ctx.Queue(), ctx.Queue(), ctx.Event()
        peer_proc = ctx.Process(target=peer, args=(start, out, ready), daemon=True)
        peer_proc.start()
        synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-soak-sink")
        synth.set_callback(lambda ev, _: run.synth.append((time.monotonic_ns(), bytes(ev[0]))))
        synth.open_virtual_port(SYNTH)
        band = Band(channels)
        director = Director(broker.port)
        director.start()
        agent = AgentProcess(config, server.env, Path(tmp) / "agent.err")
        stop = threading.Event()
        threads: list[threading.Thread] = []
        recording: Path | None = None
        try:
            recording = agent.wait_ready(120.0 if args.model else 30.0)
            ready.wait(30)
            run.t0 = time.monotonic_ns() + LEAD_IN_NS
            run.load = (os.getloadavg()[0], 0.0)
            start.put((run.t0, run.seconds))

            def outage(_k: int) -> None:
                down = time.monotonic_ns()
                broker.stop(signal.SIGKILL)
                time.sleep(BROKER_DOWN_S)
                broker.start()
                run.outages.append((down, time.monotonic_ns()))

            def sample(_k: int) -> None:
                now, status = time.monotonic_ns(), proc_status(agent.proc.pid)
                if status:
                    run.rss.append((now, int(status["VmRSS"].split()[0]) / 1024))
                    run.preempted.append((now, int(status["nonvoluntary_ctxt_switches"])))
                    run.rss_children.append((now, sum(rss_mib(c) or 0.0
                                                      for c in child_pids(agent.proc.pid))))

            threads = [every(run.t0, 0, outage_at, stop, outage),
                       every(run.t0, RSS_EVERY_S, None, stop, sample),
                       every(run.t0 + S // 2, args.command_every, None, stop, director.command)]
            band.play(band_steps(inputs, drop_at), run.t0, agent)
            band.close()
            time.sleep(2.0)  # the last answers play out
            run.load = (run.load[0], os.getloadavg()[0])
        finally:
            stop.set()
            for thread in threads:
                thread.join(BROKER_DOWN_S + 10)
            run.died = agent.proc.poll() is not None
            agent.stop()
            run.exit_code = agent.proc.returncode
            time.sleep(0.5)  # the panic's note-offs arrive
            synth.delete()
            director.close()
            broker.stop()
            with contextlib.suppress(queue.Empty):
                run.peer_lags = out.get(timeout=15 if run.t0 else 0.1)
            peer_proc.join(5)
            if peer_proc.is_alive():
                peer_proc.terminate()
            run.stderr = (Path(tmp) / "agent.err").read_text(errors="replace")
            if recording is not None and (recording / "log.jsonl").exists():
                run.records = read_log(recording / "log.jsonl")[1]
            if args.keep and recording is not None:
                shutil.copytree(recording, args.keep / "recording")
                (args.keep / "synth.txt").write_text(
                    "".join(f"{t} {d.hex()}\n" for t, d in run.synth), encoding="ascii")
                for log in (Path(tmp) / "agent.err", broker.log):
                    shutil.copy(log, args.keep)
    figures, broken = analyse(run, band, director, server)
    server.report()
    if args.json:
        args.json.write_text(json.dumps(no_nan(figures), indent=1, allow_nan=False) + "\n")
    if broken:
        print("\n!! THE RUN BROKE: " + "; ".join(broken))
        return 1
    return 0


def analyse(run: Run, band: Band, director: Director,
            server: Jack) -> tuple[dict[str, Any], list[str]]:
    """Print the report; return the figures and what broke (empty: the run held up)."""
    records, broken = run.records, []
    f: dict[str, Any] = {"minutes": run.seconds / 60, "died": run.died,
                         "exit_code": run.exit_code, "jack_period_ms": server.period_ms,
                         "jack_xruns": server.xruns}
    print(f"  the agent {'DIED during the run' if run.died else 'ran to the end'}; exit code "
          f"after SIGTERM {run.exit_code}")
    emits = [r for r in records if r["k"] == "emit"]
    heading("what was played")
    inputs = Counter(r["player"] for r in records if r["k"] == "in")
    f["input"] = {p: {"sent": band.sent[p], "logged": inputs[p]} for p in PLAYERS}
    print("  input sent / logged:  " + ", ".join(f"{p} {band.sent[p]} / {inputs[p]}"
                                                 for p in PLAYERS))
    parts = Counter(r["what"] for r in records if r["k"] == "decision")
    f["decisions"] = dict(parts)
    print("  the agent's parts:    " + ", ".join(f"{k} {parts[k]}" for k in (*PARTS, "yield")))
    logged = Counter(bytes.fromhex(r["data"]) for r in emits if r["ok"])
    heard = Counter(d for _, d in run.synth)
    missing, extra = sum((logged - heard).values()), sum((heard - logged).values())
    f["synth"] = {"logged_delivered": logged.total(), "heard": heard.total(),
                  "undelivered": sum(not r["ok"] for r in emits), "logged_not_heard": missing,
                  "heard_not_logged": extra}
    flag = "" if missing == extra == 0 else (
        f"\n    !! messages lost between the log and the synth ({server.xruns} JACK client xruns "
        "in the run: in a missed cycle receivers get a stale buffer)")
    print(f"  agent messages logged (delivered) {logged.total()}, heard at the synth "
          f"{heard.total()}: {missing} logged but not heard, {extra} heard but not logged "
          f"({f['synth']['undelivered']} logged as undelivered){flag}")
    unheard, left = [], Counter(heard)
    for r in emits:  # which ones (of identical messages, the last is listed)
        data = bytes.fromhex(r["data"])
        if not r["ok"]:
            continue
        if left[data] > 0:
            left[data] -= 1
        else:
            unheard.append(r)
    for r in unheard[:8]:
        print(f"    not heard: {r['data']} ({r['why']}) sent at {(r['t'] - run.t0) / S:.3f} s")
    stuck = sounding_notes(run.synth)
    f["stuck_notes"] = len(stuck)
    print(f"  stuck notes at the synth after SIGTERM: {len(stuck)}"
          + (f"   !! {stuck[:10]}" if stuck else "   (target 0)"))
    if stuck:
        broken.append(f"{len(stuck)} stuck notes")
    if run.died:
        broken.append("the agent died during the run")
    elif run.exit_code != 0:
        broken.append(f"the agent's exit code after SIGTERM was {run.exit_code}")
    if "Traceback" in run.stderr:
        print("  !! the agent's stderr holds a traceback:\n" + run.stderr[-3000:])

    heading("scheduler lateness (sent - deadline, every message in the agent's log)")
    late = [r["t"] - r["deadline"] for r in emits]
    f["lateness_ms"] = show("agent lateness", late, target="p99 <= 1 ms, max <= 5 ms").ms()
    windows = [(d - 2 * S, u + 10 * S) for d, u in run.outages]
    windows += [(g - round(HOLD_S * S), b + 5 * S) for _, g, b in band.drops]
    near = [r["t"] - r["deadline"] for r in emits if any(a <= r["t"] <= b for a, b in windows)]
    f["lateness_near_faults_ms"] = show("  within a fault's window", near).ms()
    if len(run.preempted) > 1:
        (t_a, a), (t_b, b) = run.preempted[0], run.preempted[-1]
        f["preempted_per_s"] = (b - a) / ((t_b - t_a) / S)
        print(f"  the machine: the agent was preempted {f['preempted_per_s']:.0f} times a second "
              f"(involuntary context switches); load average {run.load[0]:.2f} at the start, "
              f"{run.load[1]:.2f} at the end (2 cores)")
    for r in sorted(emits, key=lambda r: r["deadline"] - r["t"])[:3]:
        print(f"    late {(r['t'] - r['deadline']) / 1e6:7.3f} ms at {(r['t'] - run.t0) / S:7.1f} s"
              f" ({r['why']})")

    heading(f"loop lag (ms; windows of {RECENT} wakes, about {RECENT * FLUSH_S:.0f} s each)")
    ours, gap = agent_lag(director.telemetry)
    theirs = peer_lag(run.peer_lags)
    f["loop_lag_ms"] = {"agent": ours, "peer": theirs, "source": "telemetry/agent over MQTT",
                        "uncovered_wakes": max(gap - RECENT, 0)}
    for label, w in (("agent (its telemetry)", ours), ("plain asyncio loop (peer)", theirs)):
        print(f"  {label:<34} p50 {w['p50']:7.3f}  p99 median {w['p99']:7.3f}  worst "
              f"{w['p99_worst']:7.3f}  max {w['max']:7.3f} ms  windows={w['windows']:.0f}")
    show_ratio("p99 (median window) ratio", ours["p99"], theirs["p99"], "agent / plain loop")
    show_ratio("max ratio", ours["max"], theirs["max"], "agent / plain loop")
    show("peer, whole run", run.peer_lags)
    worst = first(t for t, s in director.telemetry if s["loop_lag_ms"]["max"] == ours["max"])
    if worst is not None:
        print(f"  the agent's largest lag entered its telemetry at {(worst - run.t0) / S:.1f} s")
    if gap > RECENT:
        print(f"  !! {gap - RECENT} wakes fell between two telemetry snapshots (not covered)")

    heading("memory (the agent process's RSS, after warm-up)")
    warm = run.t0 + round(min(60.0, 0.2 * run.seconds) * S)
    f["rss_mib"] = {"agent": rss_growth(run.rss, warm),
                    "children": rss_growth(run.rss_children, warm)}
    for label, g in (("agent", f["rss_mib"]["agent"]), ("its children", f["rss_mib"]["children"])):
        if g and (g["peak"] > 0):
            print(f"  {label:<13} start {g['start']:7.1f}  end {g['end']:7.1f}  peak "
                  f"{g['peak']:7.1f} MiB; growth {g['growth']:+6.1f} MiB, fit "
                  f"{g['per_hour']:+7.1f} MiB/hour (n={g['samples']:.0f})")

    heading("faults")
    online = [t for t, s in director.status if s == "online"]
    back_s = []
    for _down, up in run.outages:
        seen = first(t for t in online if t >= up)
        back_s.append(None if seen is None else (seen - up) / S)
    f["broker_outages"] = {"count": len(run.outages), "online_after_restart_s": back_s}
    print(f"  broker outages: {len(run.outages)}; agent 'online' again after each restart: "
          + ", ".join("NEVER" if b is None else f"{b:.2f} s" for b in back_s))
    f["port_drops"] = [drop_recovery(d, records) for d in band.drops]
    print(f"  port drops: {len(band.drops)}")
    for d in f["port_drops"]:
        print(f"    {d['player']:<7} lost seen after {_s(d['lost_after_s'])}, back seen after "
              f"{_s(d['back_after_s'])}, heard again after {_s(d['heard_after_s'])}, the agent "
              f"played ({d['part']}) after {_s(d['played_after_s'])} and answered "
              f"{d['player']} after {_s(d['answered_after_s'])}")
    acked = [director.acked[c] - t for c, t in director.sent.items() if c in director.acked]
    lost = [c for c in director.sent if c not in director.acked and c not in director.errors]
    in_outage = [c for c in lost
                 if any(d - 2 * S <= director.sent[c] <= u + 10 * S for d, u in run.outages)]
    f["commands"] = {"sent": len(director.sent), "acked": len(acked),
                     "errors": len(director.errors), "unanswered": len(lost),
                     "unanswered_in_outage": len(in_outage), "not_sent": director.not_sent,
                     "ack_ms": Summary.of(acked).ms()}
    print(f"  commands: {len(director.sent)} sent, {len(acked)} acked, {len(director.errors)} "
          f"refused, {len(lost)} unanswered ({len(in_outage)} around an outage); "
          f"{director.not_sent} not sent (the desk was offline)")
    if director.errors:
        print(f"    refused: {list(director.errors.items())[:3]}")
    show("  command -> ack", acked)
    return f, broken


def drop_recovery(drop: tuple[str, int, int], records: list[dict[str, Any]]) -> dict[str, Any]:
    """From the log: when the agent saw the port go and come back, heard the player again,
    and next played a part (seconds after the port went / came back)."""
    player, gone, back = drop
    ctl = [r for r in records if r["k"] == "ctl" and r.get("player") == player]
    lost = first(r["t"] for r in ctl if r["what"] == "port-lost" and r["t"] >= gone)
    seen = first(r["t"] for r in ctl if r["what"] == "port-back" and r["t"] >= back)
    since = seen if seen is not None else back
    heard = first(r["t"] for r in records
                  if r["k"] == "in" and r["player"] == player and r["t"] >= since)
    parts = [r for r in records
             if r["k"] == "decision" and r.get("what") in PARTS and r["t"] >= since]
    part = first(parts)
    answer = first(r["t"] for r in parts if r.get("caller") == player)
    return {"player": player,
            "lost_after_s": None if lost is None else (lost - gone) / S,
            "back_after_s": None if seen is None else (seen - back) / S,
            "heard_after_s": None if heard is None else (heard - back) / S,
            "played_after_s": None if part is None else (part["t"] - back) / S,
            "part": None if part is None else part["what"],
            "answered_after_s": None if answer is None else (answer - back) / S}


def no_nan(value: Any) -> Any:
    """JSON has no NaN: an empty figure is null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nan(v) for v in value]
    return value


def _s(value: float | None) -> str:
    return "NEVER" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    raise SystemExit(main())
