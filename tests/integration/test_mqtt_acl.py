"""The shipped example ACL (systemd/mosquitto-stage.acl) on a real mosquitto: each agent writes
only its own topics and reads only its own commands, plus the other members' presence and
ensemble state; the director commands everyone; a monitor only reads."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from .broker import MOSQUITTO, MOSQUITTO_PASSWD, Broker

pytestmark = pytest.mark.skipif(MOSQUITTO is None or MOSQUITTO_PASSWD is None,
                                reason="needs mosquitto (scripts/setup.sh installs it)")

ACL = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto-stage.acl"
USERS = {"keys": "k-pass", "bass": "b-pass", "director": "d-pass", "monitor": "m-pass"}
WAIT_S = 5.0
SENTINEL = ("bass", "stage/duo/bass/status")  # every reader below may read this


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("acl"), users=USERS, acl=ACL)
    b.start()
    yield b
    b.stop()


class User:
    def __init__(self, broker: Broker, name: str) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"{name}-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(name, USERS[name])
        self.subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.got.put((m.topic, m.payload))
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()  # first: the network loop then ends at once
        self.client.loop_stop()


def delivered(writer: User, reader: User, sentinel: User, topic: str) -> bool:
    """Whether a message `writer` publishes on `topic` reaches `reader` (subscribed to all).
    The broker has taken the message (PUBACK) before the sentinel is sent, so a message it
    forwards reaches the reader before the sentinel does: no waiting for what never comes."""
    payload, mark = uuid.uuid4().hex.encode(), uuid.uuid4().hex.encode()
    writer.publish(topic, payload)
    sentinel.publish(SENTINEL[1], mark)
    seen = False
    while True:
        t, p = reader.got.get(timeout=WAIT_S)
        if (t, p) == (SENTINEL[1], mark):
            return seen
        seen = seen or (t, p) == (topic, payload)


@pytest.mark.parametrize(("writer", "reader", "topic", "allowed"), [
    ("keys", "monitor", "stage/duo/keys/status", True),  # its own presence
    ("keys", "keys", "stage/duo/keys/status", True),  # read back: two agents with one name
    ("keys", "monitor", "stage/duo/keys/state/ensemble", True),
    ("keys", "monitor", "stage/duo/bass/status", False),  # never another agent's
    ("keys", "monitor", "stage/duo/bass/state/mode", False),
    ("keys", "monitor", "stage/duo/keys/cmd/mode", False),  # not even its own commands
    ("bass", "keys", "stage/duo/bass/status", True),  # the other members' presence...
    ("bass", "keys", "stage/duo/bass/state/ensemble", True),  # ...and ensemble state
    ("bass", "keys", "stage/duo/bass/state/plan", False),  # but not the rest of its state
    ("bass", "keys", "stage/duo/bass/evt/ack", False),
    ("director", "keys", "stage/duo/keys/cmd/mode", True),  # its own commands
    ("director", "keys", "stage/duo/bass/cmd/mode", False),  # not another agent's
    ("monitor", "director", "stage/duo/keys/cmd/mode", False),  # a monitor writes nothing
])
def test_the_example_acl(broker: Broker, writer: str, reader: str, topic: str,
                         allowed: bool) -> None:
    w, r, s = User(broker, writer), User(broker, reader), User(broker, SENTINEL[0])
    try:
        r.subscribe("stage/#")
        assert delivered(w, r, s, topic) is allowed
    finally:
        for user in (w, r, s):
            user.close()
