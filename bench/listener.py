"""Input throughput: a paced stream of numbered note messages into agent.io.midi_in.MidiInputs.

A sender process (a JACK-Client client writing inside its JACK process callback, each message at
its exact frame) sends note on/off messages at a target rate; each message carries a sequence
number in its channel and data bytes. The project's
MidiInputs (on an asyncio loop) and a bare python-rtmidi MidiIn (callback: append only, in its own
process so the two never share a GIL) both listen to that port. Prints loss, order, sustained
rate, queue overflow and callback durations.

    .venv/bin/python bench/listener.py [--seconds 10] [--rate 10000] [--period 128]

JACK client xruns (a cycle a client missed) are printed with the loss: in a missed cycle the
server delivers a stale buffer, so an xrun shows up as lost plus duplicated messages at every
receiver, ours and the peer alike. On this 2-core VM the dummy driver misses cycles at 128 and
256 frames even for C-backed clients; at 512 it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
from multiprocessing.synchronize import Event
from typing import Any

import rtmidi
from _common import (
    PacedMidi,
    Summary,
    find_port,
    heading,
    jack,
    sequence_number,
    show,
    show_ratio,
)

from agent import config as config_mod
from agent.events import Heard
from agent.io.midi_in import MidiInputs, delete_inputs
from agent.io.ports import choose_backend
from agent.service import freeze_heap

PORT = "bench-seq-out"
SEQ_BITS = 18  # 4 channel bits + 7 pitch bits + 7 velocity bits
SEQ_MOD = 1 << SEQ_BITS


def encode(i: int) -> list[int]:
    v = i % SEQ_MOD
    return [(0x90 if i % 2 == 0 else 0x80) | (v >> 14), (v >> 7) & 0x7F, v & 0x7F]


def sender(rate: float, seconds: float, ready: Event, go: Event, out: Any) -> None:
    """Child process: the messages from a JACK client's own process callback, each at its
    exact frame (_common.PacedMidi)."""
    total = int(rate * seconds)
    paced = PacedMidi("bench-sender", PORT, rate, lambda i: bytes(encode(i)), total)
    paced.client.activate()
    ready.set()
    if go.wait(30):
        t0 = time.monotonic_ns()
        paced.running = True
        while paced.sent < total:
            time.sleep(0.05)
        elapsed = time.monotonic_ns() - t0
        time.sleep(0.5)  # the last cycles reach the receivers
        out.put({"sent": total, "send_errors": 0, "elapsed_ns": elapsed})
    paced.client.deactivate()
    paced.client.close()


def check_sequence(seqs: list[int]) -> tuple[int, int, int]:
    """(unique, out of order, duplicates) of 18-bit sequence numbers, unwrapped."""
    seen: set[int] = set()
    last = top = -1
    late = dupes = 0
    for v in seqs:
        d = (v - last) % SEQ_MOD
        full = last + (d - SEQ_MOD if d >= SEQ_MOD // 2 else d) if last >= 0 else v
        last = full
        if full in seen:
            dupes += 1
        seen.add(full)
        if full < top:
            late += 1
        top = max(top, full)
    return len(seen), late, dupes


def peer(ready: Event, done: Event, out: Any) -> None:
    """Child process: a bare python-rtmidi MidiIn on the same port, callback = append only."""
    seen: list[tuple[int, list[int]]] = []
    durations: list[int] = []

    def callback(event: tuple[list[int], float], _: object) -> None:
        t = time.monotonic_ns()
        seen.append((t, event[0]))
        durations.append(time.monotonic_ns() - t)

    bare = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-bare-in")
    bare.set_callback(callback)
    bare.open_port(find_port(bare.get_ports(), PORT), "bare")
    ready.set()
    done.wait(600)
    delete_inputs([bare])
    out.put({"times": [t for t, _ in seen], "seqs": [sequence_number(d) for _, d in seen],
             "callback_ns": durations})


async def receive(args: argparse.Namespace, go: Event, results: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    cfg = config_mod.from_dict({"players": [{"name": "sender", "port": PORT}],
                                "midi": {"backend": "jack", "client_name": "bench-agent-in",
                                         "queue_size": args.queue_size}}, "<bench>")
    heard: list[Heard] = []
    inputs = MidiInputs(cfg, choose_backend("jack"), heard.append, lambda *a: None)
    inputs.open(loop)
    freeze_heap()  # as `stage-agent perform` does once its ports are open
    await asyncio.sleep(0.3)  # connections settle
    go.set()
    sent = await loop.run_in_executor(None, results.get, True, args.seconds + 60)
    stable, end = 0, time.monotonic() + 10  # wait until nothing more arrives (bounded)
    while stable < 5 and time.monotonic() < end and len(heard) < sent["sent"]:
        before = len(heard)
        await asyncio.sleep(0.1)
        stable = stable + 1 if len(heard) == before else 0
    inputs.close()
    return {"sent": sent, "heard": heard, "stats": inputs.stats}


def report(args: argparse.Namespace, r: dict[str, Any], bare: dict[str, Any]) -> None:
    sent = r["sent"]["sent"]
    print(f"  sent {sent} messages in {r['sent']['elapsed_ns'] / 1e9:.2f} s "
          f"({sent / (r['sent']['elapsed_ns'] / 1e9):.0f} msg/s), "
          f"{r['sent']['send_errors']} send errors")
    for name, times, seqs in (
            ("MidiInputs", [h.time_ns for h in r["heard"]],
             [sequence_number(h.data) for h in r["heard"]]),
            ("bare MidiIn", bare["times"], bare["seqs"])):
        unique, late, dupes = check_sequence(seqs)
        span = (times[-1] - times[0]) / 1e9 if len(times) > 1 else float("nan")
        print(f"  {name:<12} received {len(seqs)}, lost {sent - unique}, out of order {late}, "
              f"duplicates {dupes}, sustained {len(seqs) / span:.0f} msg/s")
    st = r["stats"]
    print(f"  MidiInputs   stats.received {st.received}, queue overflow {st.overflow}, "
          f"malformed {st.malformed}   (target: >= {args.rate:.0f} msg/s, zero loss)")
    ms = st.callback_ns.summary_ms()  # the project's own figures (ms) from its Samples
    ours = show("MidiInputs callback", Summary(int(ms["n"]), ms["p50"] * 1e6, ms["p99"] * 1e6,
                                               ms["max"] * 1e6), "us", "p99 < 100 us")
    peer_s = show("bare MidiIn callback (append)", bare["callback_ns"], "us")
    show_ratio("callback p50 ratio", ours.p50, peer_s.p50, "MidiInputs / bare")
    show_ratio("callback p99 ratio", ours.p99, peer_s.p99, "MidiInputs / bare")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="how long to send (default 10)")
    p.add_argument("--rate", type=float, default=10_000.0, help="messages/s (default 10000)")
    p.add_argument("--queue-size", type=int, default=4096, help="midi.queue_size for the agent")
    p.add_argument("--period", type=int, default=128, help="JACK period in frames (default 128)")
    args = p.parse_args()
    heading(f"listener: {args.rate:.0f} msg/s for {args.seconds:.0f} s over JACK (dummy)")
    ctx = mp.get_context("spawn")
    with jack(f"bench-listener-{os.getpid()}", period=args.period) as server:
        ready, peer_ready, go, done = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
        results, peer_out = ctx.Queue(), ctx.Queue()
        procs = [ctx.Process(target=sender, args=(args.rate, args.seconds, ready, go, results))]
        procs[0].start()
        try:
            if not ready.wait(30):
                raise SystemExit("the sender did not open its port")
            procs.append(ctx.Process(target=peer, args=(peer_ready, done, peer_out)))
            procs[1].start()
            if not peer_ready.wait(30):
                raise SystemExit("the bare peer did not open its port")
            r = asyncio.run(receive(args, go, results))
            done.set()
            bare = peer_out.get(timeout=60)
        finally:
            done.set()
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
    report(args, r, bare)
    server.report()


if __name__ == "__main__":
    main()
