"""soak.py's takeover phase: someone else on the broker connects with the agent's client id.

Every --takeover-every s, for TAKEOVER_S, a client per GUESSED_IDS connects to the soak's broker
and connects again a second after each time the broker drops it. mosquitto drops the older of
two connections with one client id, so with the agent's id the agent and the intruder keep
knocking each other off; the director's commands sent meanwhile show what that costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from _common import heading
from paho.mqtt.enums import CallbackAPIVersion

TAKEOVER_S = 10.0  # each takeover attempt lasts this long
# What an intruder could know of the agent's client id: the fixed id it had before issue 14
# (stage-agent-<performance>-<agent>), and its name.
GUESSED_IDS = ("stage-agent-bench-soak-agent", "stage-agent-agent", "agent")


@dataclass
class Takeover:
    """The takeover phase: for TAKEOVER_S, a client per GUESSED_IDS connects to the broker,
    and again a second after each time the broker drops it (mosquitto drops the older of two
    connections with one client id: with the agent's id, one of the two is always off).
    Measured: the director's commands sent meanwhile, and how many the agent acked."""

    port: int
    windows: list[tuple[int, int]] = field(default_factory=list)  # (start, end) ns
    dropped: int = 0  # times the broker dropped an intruder (the agent took its id back)

    def attempt(self, _k: int) -> None:
        start, clients = time.monotonic_ns(), []
        for cid in GUESSED_IDS:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
            c.reconnect_delay_set(1, 1)
            c.on_disconnect = lambda *_args: self._drop()
            c.connect_async("127.0.0.1", self.port)
            c.loop_start()
            clients.append(c)
        time.sleep(TAKEOVER_S)
        for c in clients:
            c.on_disconnect = None
            c.disconnect()
            c.loop_stop()
        self.windows.append((start, time.monotonic_ns()))

    def _drop(self) -> None:
        self.dropped += 1

    def report(self, sent: dict[str, int], acked_ids: dict[str, int]) -> dict[str, Any]:
        """Print and return the figures, from the director's commands: id -> sent ns, and the
        ids acked."""
        during = [cid for cid, t in sent.items() if any(a <= t < b for a, b in self.windows)]
        acked = sum(cid in acked_ids for cid in during)
        heading("takeover attempts")
        print(f"  {len(self.windows)} attempts of {TAKEOVER_S:g} s with the client ids "
              f"{', '.join(GUESSED_IDS)}: {acked} of {len(during)} commands sent meanwhile "
              f"acked; the intruders were dropped {self.dropped} times")
        return {"attempts": len(self.windows), "commands": len(during), "acked": acked,
                "intruders_dropped": self.dropped}
