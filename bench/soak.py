"""Soak: the agent plays with two players for minutes, through broker restarts and port drops.

The agent runs as a process (`python -m agent.cli perform`, auto mode, the live Markov memory, or
the model worker with `--model`) on real JACK ports, with its own mosquitto. Two simulated players
("melody", "cello") play the demo rehearsal at real speed, looped, with its rests (the agent
answers, solos and comps). Faults on a schedule: the broker is killed (SIGKILL) and restarted
every --broker-every s (down 5 s); one player's port (alternately) vanishes with a note held and
returns every --port-every s (gone 3 s); a director client sends a valid command every
--command-every s over MQTT, counts the acks and records the agent's telemetry; every
--takeover-every s, for 10 s, an intruder on the broker connects with each client id it could
know for the agent, again a second after each drop (the takeover phase: Takeover).

Measured: scheduler lateness (sent - deadline of every message in the agent's log), loop lag (the
agent's telemetry over MQTT: the log does not hold it), the agent's RSS, stuck notes at the synth
port after SIGTERM, messages at the synth vs emits logged, input sent vs logged, commands acked,
recovery after each outage and port drop. Peer in the same run, in its own process: a plain
asyncio loop waking on the same 100 ms cadence the same way, measuring its own lag. Timing
figures never fail the run; exit 1 only if the run broke (the agent died or did not exit
cleanly, or a note was left sounding). With --flood-s, the last seconds flood the melody port
and the SIGTERM comes during the flood (bench/_soak_flood.py). --stop-signal SIGHUP ends the run
as a closed terminal or SSH session would (SIGQUIT as Ctrl-\\): the same panic is expected.
With --disk-full-every, the recordings' disk (a tmpfs) fills up every so often for a few seconds
(bench/_soak_disk.py): the music must not notice, and the log says what it lost.

    .venv/bin/python bench/soak.py [--minutes 10] [--broker-every 120] [--port-every 90]
        [--command-every 3] [--takeover-every 0] [--model CHECKPOINT] [--period 128]
        [--json PATH] [--keep DIR] [--flood-s 0] [--flood-rate 5000] [--flood-mode harmony]
        [--stop-signal SIGTERM] [--disk-full-every 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import paho.mqtt.client as mqtt
import rtmidi
from _common import (
    REPO,
    AgentProcess,
    Broker,
    child_pids,
    every,
    heading,
    jack,
    no_nan,
    proc_status,
    rss_mib,
    sleep_until_ns,
    write_toml,
)
from _soak_disk import DISK_FULL_S, DiskPhase, recordings_disk
from _soak_flood import FloodPhase
from _soak_report import FLUSH_S, HOLD_S, PLAYERS, Run, S, analyse
from _soak_takeover import TAKEOVER_S, Takeover
from paho.mqtt.enums import CallbackAPIVersion

from agent import midi
from agent.events import Heard
from agent.io.midi_in import delete_inputs
from agent.record.log import read_log
from agent.record.smf import read_players

PORTS = {p: f"bench-soak-{p}" for p in PLAYERS}
SYNTH = "bench-soak-synth"
PREFIX = "stage/bench-soak/agent/"  # stage/<performance.name>/<mqtt.agent>/
LOOP_GAP_NS = 4 * S  # a rest between two passes of the rehearsal (the agent solos in it)
LEAD_IN_NS = 1 * S
BROKER_DOWN_S = 5.0
PORT_GONE_S = 3.0
RESUME_S = 1.5  # after the port is back, the player waits out the agent's 500 ms port poll
RECOVER_S = 15.0  # no fault this close to the end: time to see the agent recover
RSS_EVERY_S = 2.0
COMMANDS = (("controls", {"density": 1.25}), ("mode", {"mode": "auto"}),
            ("controls", {"density": 1.0}))


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
    mode: str = "auto"  # what its mode commands ask for (the flood phase changes it)

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
        fields = {"mode": self.mode} if verb == "mode" else fields
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


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="playing time (default 10)")
    p.add_argument("--broker-every", type=float, default=120.0, help="s between broker kills")
    p.add_argument("--port-every", type=float, default=90.0, help="s between port drops")
    p.add_argument("--command-every", type=float, default=3.0, help="s between commands")
    p.add_argument("--takeover-every", type=float, default=0.0,
                   help="s between takeover attempts (0: none)")
    p.add_argument("--model", type=Path, help="a checkpoint: the agent runs its model worker")
    p.add_argument("--period", type=int, default=128, help="JACK frames per period")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--keep", type=Path, help="copy the recording and the agent's and broker's "
                   "logs into this (new) folder")
    p.add_argument("--flood-s", type=float, default=0.0,
                   help="flood the melody port for the last S s and through SIGTERM (default 0)")
    p.add_argument("--flood-rate", type=float, default=5000.0, help="messages/s (default 5000)")
    p.add_argument("--flood-mode", default="harmony", help="the agent's mode in the flood")
    p.add_argument("--disk-full-every", type=float, default=0.0,
                   help="s between fills of the recordings' disk (0: none; needs root)")
    p.add_argument("--stop-signal", default="SIGTERM",
                   choices=["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"],
                   help="what ends the run (default SIGTERM; SIGHUP: its terminal closed)")
    args = p.parse_args()
    run = Run(args.minutes * 60, stop_signal=args.stop_signal)
    stop_signal = signal.Signals[args.stop_signal]
    outage_at = fault_times(run.seconds, args.broker_every, BROKER_DOWN_S)
    drop_at = fault_times(run.seconds, args.port_every, PORT_GONE_S + RESUME_S)
    takeover_at = fault_times(run.seconds, args.takeover_every, TAKEOVER_S)
    disk_at = fault_times(run.seconds, args.disk_full_every, DISK_FULL_S)
    inputs = looped_rehearsal(run.seconds)
    channels = {h.player: h.data[0] & 0x0F for h in reversed(inputs)}
    heading(f"soak: {run.seconds / 60:g} min of the demo rehearsal through the agent (auto, "
            f"{'model ' + str(args.model) if args.model else 'Markov memory'}); "
            f"{len(outage_at)} broker outages, {len(drop_at)} port drops")
    ctx = mp.get_context("spawn")
    with (jack(f"bench-soak-{os.getpid()}", args.period) as server,
          tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp,
          recordings_disk(Path(tmp) / "recordings", args.disk_full_every > 0) as disk_folder):
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
        takeover = Takeover(broker.port)
        agent = AgentProcess(config, server.env, Path(tmp) / "agent.err")
        stop = threading.Event()
        threads: list[threading.Thread] = []
        recording: Path | None = None
        flood = FloodPhase(args.flood_rate, args.flood_s, args.flood_mode) \
            if args.flood_s > 0 else None
        disk = DiskPhase(disk_folder) if disk_folder is not None else None
        try:
            recording = agent.wait_ready(120.0 if args.model else 30.0)
            ready.wait(30)
            if flood is not None:
                flood.start(ctx, channels["melody"], f"bench-soak-m:{PORTS['melody']}")
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
                       every(run.t0 + S // 2, args.command_every, None, stop, director.command),
                       every(run.t0, 0, takeover_at, stop, takeover.attempt)]
            if disk is not None:
                threads.append(every(run.t0, 0, disk_at, stop, disk.full))
            if flood is not None:
                flood.begin_at(run.t0 + round((run.seconds - args.flood_s) * S), director,
                               PREFIX)
            band.play(band_steps(inputs, drop_at), run.t0, agent)
            band.close()
            time.sleep(2.0)  # the last answers play out
            run.load = (run.load[0], os.getloadavg()[0])
        finally:
            stop.set()
            for thread in threads:
                thread.join(max(BROKER_DOWN_S, TAKEOVER_S) + 10)
            run.died = agent.proc.poll() is not None
            if flood is not None and not run.died:
                flood.end(agent, stop_signal)  # the stop signal during the flood
            agent.stop(sig=stop_signal)
            run.exit_code = agent.proc.returncode
            time.sleep(0.5)  # the panic's note-offs arrive
            delete_inputs([synth])
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
    if takeover_at:
        figures["takeover"] = takeover.report(director.sent, director.acked)
    if flood is not None:
        figures["flood"] = flood.report(director, run.records, band.sent["melody"])
    if disk is not None:
        figures["disk"] = disk.report(run.synth, run.records)
    server.report()
    if args.json:
        args.json.write_text(json.dumps(no_nan(figures), indent=1, allow_nan=False) + "\n")
    if broken:
        print("\n!! THE RUN BROKE: " + "; ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
