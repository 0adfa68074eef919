"""A child process for test_input_flood.py: MidiInputs opened and closed again and again, on
its own loop, while another client floods the port. Prints how many closes and messages."""

from __future__ import annotations

import asyncio
import sys
import time

from agent import config as config_mod
from agent.events import Heard
from agent.io.midi_in import MidiInputs
from agent.io.ports import choose_backend

# How long each opening listens before the stop; and how long the loop is then kept busy in
# Python, as a flood keeps the agent's (JACK's thread then waits for the GIL as the stop comes).
LISTEN_S = 0.04
BUSY_S = 0.003


def main(port: str, rounds: int) -> int:
    cfg = config_mod.from_dict({
        "midi": {"backend": "jack", "queue_size": 65536, "shed_after_ms": 0},
        "players": [{"name": "keys", "port": port}],
        "agent": {"outputs": ["virtual:unused"]}}, "closing.toml")
    backend = choose_backend("jack")
    heard: list[Heard] = []
    loop = asyncio.new_event_loop()
    for _ in range(rounds):
        inputs = MidiInputs(cfg, backend, heard.append, lambda *event: None)
        inputs.open(loop)

        def stop(inputs: MidiInputs = inputs) -> None:
            busy_until = time.perf_counter() + BUSY_S
            while time.perf_counter() < busy_until:
                pass
            inputs.close()
            loop.stop()
        loop.call_later(LISTEN_S, stop)
        loop.run_forever()
    loop.close()
    print(f"closed {rounds} times; heard {len(heard)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
