"""The director's side of the control plane in the tests: a synchronous paho MQTT client that
subscribes to everything under a prefix, sends commands and waits for what comes back."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

TIMEOUT_S = 10.0


class Director:
    """A person at the desk with an MQTT client. Topics are given without `prefix`.

    Every status and reply of an agent names its run (a random id per process, io/presence.py);
    unless `keep_run`, it is taken out of the payloads handed out here, so a test of one agent
    compares what it is about."""

    def __init__(self, port: int, prefix: str, keep_run: bool = False, **login: str) -> None:
        self.prefix = prefix
        self.got: queue.Queue[tuple[str, Any, bool]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []  # every message so far (payloads cut short)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(c: Any, u: Any, m: Any) -> None:
            topic = m.topic.removeprefix(prefix)
            self.seen.append((topic, m.payload[:60]))
            # an empty payload clears a retained message: None
            payload = json.loads(m.payload) if m.payload else None
            if not keep_run and isinstance(payload, dict) and \
                    topic.rsplit("/", 1)[-1] in ("status", "ack", "error"):
                payload.pop("run", None)
            self.got.put((topic, payload, m.retain))
        self.client.on_message = on_message
        if login:  # username, password
            self.client.username_pw_set(login["username"], login["password"])
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(prefix + "#", qos=1)
        self.client.loop_start()

    def wait_until(self, topic: str, wanted: Callable[[Any], bool],
                   timeout_s: float = TIMEOUT_S) -> Any:
        """The next message on `topic` that is `wanted`; others are skipped (queue.Empty
        when none comes within `timeout_s` of the previous message)."""
        while True:
            t, p, _retained = self.got.get(timeout=timeout_s)
            if t == topic and wanted(p):
                return p

    def wait_for(self, topic: str, payload: Any = None) -> Any:
        """The next message on `topic` (with this payload, if given)."""
        return self.wait_until(topic, lambda p: payload is None or p == payload)

    def command(self, verb: str, **fields: Any) -> None:
        self.client.publish(self.prefix + f"cmd/{verb}", json.dumps(fields), qos=1)

    def ask(self, verb: str, id: str, **fields: Any) -> Any:
        """Send a command; its reply (evt/ack or evt/error, whichever names its id)."""
        self.command(verb, id=id, **fields)
        while True:
            t, p, _retained = self.got.get(timeout=TIMEOUT_S)
            if t in ("evt/ack", "evt/error") and p.get("id") == id:
                return {"reply": t, **p}

    def close(self) -> None:
        self.client.disconnect()  # first: paho's network loop then ends at once
        self.client.loop_stop()
