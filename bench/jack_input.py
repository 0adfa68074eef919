"""Which JACK MIDI input should the agent use: rtmidi's callback, a JACK-Client process callback,
or rtmidi polled from a thread? Each receives the same paced stream while its process's main
thread holds the GIL in chunks, as a busy event loop does.

Why: python-rtmidi 1.5.8's JACK input (`jackProcessIn`) does not check `jack_midi_event_get`, and
has crashed mid-run under missed cycles (bench/README.md). JACK-Client checks the read, but its
process callback takes the GIL every cycle, where rtmidi's takes it once per message. Polled,
rtmidi's JACK thread never waits for the GIL, and the poll adds delay. This bench measures
what each costs.

Each kind runs in a process of its own and receives from a sender of its own: a JACK-Client
client writing message i at its frame, `--rate` a second, in its process callback. There is
one JACK dummy server per `--chunks-ms` value.

Measured for each kind:
- the receiver's missed cycles: jackd's log lines naming its client;
- messages received of those sent;
- arrival lateness: each message's arrival (monotonic, where the receiver stamps it) minus the
  time of the sender's cycle that wrote it: JACK's cycle, the GIL and the poll together.

The ratios are against rtmidi's callback, the input the agent has today, measured in the same
run.

    .venv/bin/python bench/jack_input.py [--seconds 10] [--rate 200] [--period 128]
        [--chunks-ms 1,4] [--poll-ms 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import heading, jack, sequence_number, show_ratio

KINDS = ("rtmidi-callback", "jack-client", "rtmidi-polled")
SETTLE_S = 0.5  # a new connection carries data from a later cycle


def numbered(i: int) -> bytes:
    """Message i: its number in the channel and the two data bytes (18 bits)."""
    return bytes([0x90 | (i >> 14) & 0x0F, (i >> 7) & 0x7F, i & 0x7F])


def _send(name: str, env: dict[str, str], rate: float, ready: Any, stop: Any,
          out: Any) -> None:
    """A JACK-Client client writing message i at its frame (`rate` a second) inside its process
    callback, and stamping, for each, the monotonic time of the cycle that wrote it."""
    os.environ.update(env)
    import jack
    client = jack.Client(name)
    port = client.midi_outports.register("out")
    per_message = client.samplerate / rate
    sent: list[int] = []  # the monotonic ns of the cycle that wrote message i
    frame = [0]  # frames since the start
    sending = [False]  # set from the main thread: no lock is taken on JACK's thread

    def process(frames: int) -> None:
        port.clear_buffer()
        if not sending[0]:
            return
        now = time.monotonic_ns()
        while (offset := round(len(sent) * per_message) - frame[0]) < frames:
            port.write_midi_event(max(offset, 0), numbered(len(sent)))
            sent.append(now)
        frame[0] += frames
    client.set_process_callback(process)
    client.activate()
    ready.wait()
    sending[0] = True
    stop.wait()
    sending[0] = False
    time.sleep(0.1)
    client.deactivate()
    out.put(sent)


def _receive(kind: str, name: str, env: dict[str, str], seconds: float, chunk_s: float,
             poll_s: float, connected: Any, out: Any) -> None:
    """In its own process: listen as `kind`, keep the main thread busy for `seconds`."""
    os.environ.update(env)
    stamps: list[tuple[int, int]] = []  # (monotonic ns, message number)
    closing: Callable[[], None]
    if kind == "jack-client":
        import jack
        client = jack.Client(name)
        port = client.midi_inports.register("in")

        def process(frames: int) -> None:
            now = time.monotonic_ns()
            try:  # an exception out of here would make JACK drop the client
                for _, data in port.incoming_midi_events():
                    stamps.append((now, sequence_number(bytes(data))))
            except Exception:  # a bad read: those messages count as lost
                pass
        client.set_process_callback(process)
        client.activate()
        closing = client.deactivate
    else:
        import rtmidi

        from agent.io.midi_in import delete_inputs
        rt = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=65536)
        rt.open_virtual_port("in")
        if kind == "rtmidi-callback":
            rt.set_callback(lambda event, _: stamps.append(
                (time.monotonic_ns(), sequence_number(event[0]))))
            closing = lambda: delete_inputs([rt])  # noqa: E731
        else:
            stop_polling = threading.Event()

            def poll() -> None:
                while not stop_polling.is_set():
                    while (message := rt.get_message()) is not None:
                        stamps.append((time.monotonic_ns(), sequence_number(message[0])))
                    time.sleep(poll_s)
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()

            def closing() -> None:
                stop_polling.set()
                poller.join()
                rt.delete()
    connected.wait()
    began = time.monotonic()
    while time.monotonic() - began < seconds:  # the main thread holds the GIL in chunks
        until = time.perf_counter() + chunk_s
        while time.perf_counter() < until:
            pass
        time.sleep(0.0002)
    time.sleep(SETTLE_S)  # the last messages arrive
    closing()
    out.put(stamps)


def one_run(kind: str, server: Any, args: argparse.Namespace, chunk_ms: float
            ) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready, stop, connected = ctx.Event(), ctx.Event(), ctx.Event()
    sent_q: Any = ctx.Queue()
    got_q: Any = ctx.Queue()
    name = f"{kind}-{chunk_ms:g}"  # never a name a client of an earlier run may still hold
    receiver = ctx.Process(target=_receive, args=(kind, name, server.env, args.seconds,
                                                  chunk_ms / 1000, args.poll_ms / 1000,
                                                  connected, got_q))
    sender = ctx.Process(target=_send, args=(f"send-{name}", server.env, args.rate, ready,
                                             stop, sent_q))
    receiver.start()
    sender.start()
    deadline = time.monotonic() + 20
    while os.system(f"jack_connect send-{name}:out {name}:in 2>/dev/null") != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{kind}: the receiver's port never appeared")
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    log_before = len(server.server.log.read_text(errors="replace"))
    ready.set()
    connected.set()
    time.sleep(args.seconds)
    stop.set()
    sent = sent_q.get(timeout=30)
    stamps = got_q.get(timeout=60)
    sender.join(10)
    receiver.join(10)
    log = server.server.log.read_text(errors="replace")[log_before:]
    missed = len(re.findall(rf"{re.escape(name)}[^\n]*was not finished", log))
    late_ms = np.array([(t - sent[n]) / 1e6 for t, n in stamps if n < len(sent)])
    return {"sent": float(len(sent)), "received": float(len(stamps)), "missed": float(missed),
            "p50": float(np.percentile(late_ms, 50)) if len(late_ms) else float("nan"),
            "p99": float(np.percentile(late_ms, 99)) if len(late_ms) else float("nan"),
            "max": float(late_ms.max()) if len(late_ms) else float("nan"),
            }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="per run (default 10)")
    p.add_argument("--rate", type=float, default=200.0, help="messages/s (default 200)")
    p.add_argument("--period", type=int, default=128, help="JACK frames per period (128)")
    p.add_argument("--chunks-ms", default="1,4",
                   help="how long the main thread holds the GIL at a time, a run set each "
                        "(default 1,4)")
    p.add_argument("--poll-ms", type=float, default=1.0,
                   help="rtmidi-polled: the poll's period (default 1)")
    args = p.parse_args(argv)
    heading(f"jack input: {args.rate:g} msg/s for {args.seconds:g} s per run, "
            f"{args.period} frames, main thread busy in chunks of {args.chunks_ms} ms")
    rows = []
    for chunk in (float(c) for c in args.chunks_ms.split(",")):
        with jack(f"bench-jack-input-{os.getpid()}", period=args.period) as server:
            results = {kind: one_run(kind, server, args, chunk) for kind in KINDS}
            server.report()
        peer = results["rtmidi-callback"]
        for kind, r in results.items():
            rows.append((chunk, kind, r))
            print(f"  chunk {chunk:g} ms, {kind:16} missed cycles {r['missed']:5.0f}   "
                  f"received {r['received']:6.0f} of {r['sent']:6.0f}   lateness p50 "
                  f"{r['p50']:6.2f} p99 {r['p99']:6.2f} max {r['max']:6.2f} ms"
                  + ("   !! nothing arrived: the connection carried nothing (run again)"
                     if r["received"] == 0 else ""))
        for kind in KINDS[1:]:
            show_ratio(f"chunk {chunk:g} ms, lateness p99", results[kind]["p99"], peer["p99"],
                       f"{kind} / rtmidi-callback")
            show_ratio(f"chunk {chunk:g} ms, missed cycles", results[kind]["missed"],
                       max(peer["missed"], 1.0), f"{kind} / rtmidi-callback, at least 1")
    heading("side by side")
    print("  chunk ms  kind              missed  received  late p50    p99    max ms")
    for chunk, kind, r in rows:
        print(f"  {chunk:8g}  {kind:16} {r['missed']:6.0f}  {r['received']:8.0f}  "
              f"{r['p50']:8.2f} {r['p99']:6.2f} {r['max']:6.2f}")


if __name__ == "__main__":
    main()
