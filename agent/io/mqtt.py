"""The MQTT control plane: presence, commands in, replies and retained state out.

Every payload is a JSON object. Topics, under `stage/<performance.name>/<mqtt.agent>/`:

    status         retained, QoS1  {"state": "online", "run": "9c1e..."} once connected and
                                   subscribed, "offline" on close(), "lost" (the Will) when the
                                   connection dies without a goodbye; "run" is random per process
                                   (io/presence.py: two agents with one name)
    cmd/<verb>     in, QoS1        {"id": "c1", "sent": 1700000000.5, ...the verb's fields}
                                   (verbs, fields and "sent" (optional): policy/commands.py)
    evt/ack        QoS1            {"id": "c1", "verb": "mode", "run": ...}  applied (or a
                                   repeat of an id)
    evt/error      QoS1            {"id": "c1" | null, "verb", "error": "...", "run"}  nothing
                                   changed: bad JSON, no id, unknown verb, bad field, retained,
                                   "sent" out of bounds, another agent with this name came
                                   first, or refused by the agent
    state/<kind>   retained, QoS1  the latest publish_state(kind, payload); `ensemble` also
                                   gets "clock" (the agent's clock, ns, when sent) and "run"

With `[ensemble] members`, it also watches each other member's `status` and `state/ensemble`
(under `stage/<performance.name>/<member>/`) and hands them to `on_peer` (policy/ensemble.py).

aiomqtt 2.x leaves reconnection to the caller: run() loops around `async with Client(...)`,
backing off on MqttError, so a broker outage never reaches the music (stage-requirements 25).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError  # not re-exported by aiomqtt 2.5

from agent.config import Config, tls_context
from agent.errors import StageAgentError
from agent.io.presence import MemberRuns, Presence, new_run_id
from agent.policy.commands import Command, CommandError, check_sent, parse_command
from agent.stats import LogThrottle

log = logging.getLogger(__name__)

NO_BROKER_MESSAGE = "no MQTT broker configured: running without a control plane"
BACKOFF_S = (0.5, 10.0)  # reconnect delay: first, doubling up to the last
REMEMBERED_IDS = 256  # applied command ids kept for idempotency
CANCEL_WAIT_S = 0.5  # how long the goodbye waits for the reader and writer to stop
CLOSE_TIMEOUT_S = 5.0  # close() waits this long for the goodbye, then just stops
QOS = 1
MAX_ERROR_CHARS = 300  # an evt/error reply quotes at most this much of what was wrong
MAX_VERB_CHARS = 64
PEER_TOPICS = ("status", "state/ensemble")  # what an agent watches of the other members
STAMPED = ("ensemble",)  # states sent with the agent's clock and run (policy/ensemble.py)
# (member, "status" | "state/ensemble", the JSON object, retained by the broker from earlier):
# called on the loop, must not raise
PeerHandler = Callable[[str, str, dict[str, Any], bool], None]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


class ControlPlane:
    """One agent's connection to the broker; run() is its task, close() ends it with a goodbye.

    `on_command` is called on the event loop, in this task, with each valid new command; raising
    a StageAgentError refuses the command (an evt/error reply). `now_ns` is the wall clock in
    unix nanoseconds, read only to check a command's "sent" time (director and agent must agree
    on the time within mqtt.max_command_age_s: run NTP). `clock_ns` is the agent's own clock,
    stamped on the STAMPED states as they leave (peers measure its offset from theirs).
    """

    def __init__(self, config: Config, on_command: Callable[[Command], None],
                 now_ns: Callable[[], int] = time.time_ns, *,
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 backoff_s: tuple[float, float] = BACKOFF_S,
                 on_peer: PeerHandler | None = None,
                 on_peer_error: Callable[[str, str, str], None] | None = None,
                 on_presence: Callable[[Presence], None] | None = None) -> None:
        self._mqtt = m = config.mqtt
        self.prefix = f"stage/{config.performance.name}/{m.agent}/"
        # topic -> (member, kind): the other members' topics this agent watches
        self._peer_topics = {f"stage/{config.performance.name}/{name}/{kind}": (name, kind)
                             for name in config.ensemble.members if name != m.agent
                             for kind in PEER_TOPICS}
        self._on_peer = on_peer
        self._on_peer_error = on_peer_error
        self._member_runs = MemberRuns()
        # Random and published nowhere: a fixed id let any user of the broker (the read-only
        # monitor) take the session over by connecting with it, once a second (mosquitto drops
        # the older connection; no ACL can prevent it). The same for the whole run (_client).
        self._client_id = f"stage-agent-{m.agent}-{secrets.token_hex(8)}"
        self.presence = Presence(m.agent, new_run_id())
        # Told whenever who else is online under this name changes (the monitor, systemd).
        self._on_presence = on_presence
        self._presence_said: dict[str, Any] = self.presence.summary()
        self._announce: dict[str, Any] | None = None  # a status to say again (retained)
        self._safe_date_log = LogThrottle()
        self._sections = [s.name for s in config.sections]
        self._on_command, self._now_ns, self._clock_ns = on_command, now_ns, clock_ns
        self._max_age_s, self._backoff_s = m.max_command_age_s, backoff_s
        self._tls = tls_context(config) if m.tls else None  # checked with the config too
        self._states: dict[str, bytes] = {}  # kind -> latest payload
        self._dirty: dict[str, None] = {}  # kinds the broker may not have yet (ordered set)
        self._telemetry: dict[str, bytes] = {}  # kind -> latest figures not sent yet
        # replies not sent yet (kept over a reconnect); a flood drops the oldest
        self._replies: deque[tuple[str, bytes]] = deque(maxlen=REMEMBERED_IDS)
        self._applied: dict[str, None] = {}  # the last REMEMBERED_IDS applied ids, oldest first
        self._wake = asyncio.Event()  # something to publish
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self.connected = False
        self.online = asyncio.Event()  # set while "online" is said on the broker (READY waits)
        self.attempts = 0  # connection attempts so far (for status reports)
        self._refusal_log = LogThrottle()

    def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> None:
        """Figures for `telemetry/<kind>`: QoS 0, never retained, the latest per kind (a slow
        broker gets fewer, never a queue). The caller keeps the rate at or below 10 Hz."""
        if not kind or any(c in kind for c in "+#/"):
            raise ValueError(f"telemetry kind {kind!r} cannot end an MQTT topic")
        self._telemetry[kind] = _json(payload)
        self._wake.set()

    def publish_state(self, kind: str, payload: dict[str, Any]) -> None:
        """Keep `payload` as the latest state of `kind`; the task publishes it retained.

        Never blocks and never waits for the broker: payloads of one kind coalesce (only the
        latest is sent), and every kind is sent again after a reconnect. Encoded here, so a
        payload that is not JSON fails at the caller (ValueError/TypeError)."""
        if not kind or any(c in kind for c in "+#"):
            raise ValueError(f"state kind {kind!r} cannot end an MQTT topic")
        self._states[kind] = _json(payload)
        self._dirty[kind] = None
        self._wake.set()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff until close(). Raises nothing on broker
        trouble (it is logged once per outage); returns after close()."""
        self._task = asyncio.current_task()
        where = f"{self._mqtt.host}:{self._mqtt.port}"
        delay, down, ever = self._backoff_s[0], False, False
        try:
            while not self._stop.is_set():
                self.attempts += 1
                try:
                    async with self._client() as client:
                        self.connected = True
                        if down or not ever:
                            log.info("MQTT broker %s %s: topics %s#", where,
                                     "reachable again" if ever else "connected", self.prefix)
                        delay, down, ever = self._backoff_s[0], False, True
                        await self._serve(client)
                        return  # leaving `async with` disconnects cleanly: no Will
                except Exception as e:  # a broker outage, or a bug: never the end of the task
                    if not isinstance(e, aiomqtt.MqttError):
                        log.exception("MQTT control plane: unexpected error; reconnecting")
                    elif not down and isinstance(e, MqttConnectError):  # a config problem
                        log.error("MQTT broker %s refused the connection (%s): check "
                                  "mqtt.username and mqtt.password; retrying", where, e)
                    elif not down:
                        log.warning("MQTT broker unreachable at %s (%s): retrying", where, e)
                    down = True
                finally:
                    self.connected = False
                    self.online.clear()
                # The backoff sleep ends early on close(): shutdown never waits for it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(2 * delay, self._backoff_s[1])
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise  # cancelled by its owner; after close() the timeout did it: just end

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Publish pending state and retained "offline", then disconnect cleanly (the Will is
        not sent). Waits at most `timeout_s` (a broker that does not answer is left behind)."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        _done, pending = await asyncio.wait({task}, timeout=timeout_s)
        if pending:
            task.cancel()
            await asyncio.wait({task})

    def _client(self) -> aiomqtt.Client:
        m = self._mqtt
        # One client id for the run: when the agent reconnects while the broker still holds its
        # old, half-open connection, the broker drops the old one at once (session takeover)
        # rather than timing it out later and publishing its Will "lost" over our "online".
        # Clean session: commands sent while we were away are not queued for us (they would
        # be stale anyway); the director sees no ack and may resend.
        return aiomqtt.Client(
            m.host, m.port, username=m.username or None, password=m.password or None,
            identifier=self._client_id,
            will=aiomqtt.Will(self.prefix + "status", _json(self.presence.status("lost")),
                              qos=QOS, retain=True),
            clean_session=True, keepalive=m.keepalive_s, tls_context=self._tls,
            # Nagle's algorithm held each small reply until the broker acknowledged the last
            # one: acks took ~42 ms; with TCP_NODELAY ~1.4 ms (bench/soak.py found it).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connection: returns after close() (having said goodbye), raises MqttError when
        the connection is lost."""
        # Subscribe before announcing "online": a director that sends on seeing "online" must
        # not lose its first command to a subscription not made yet. Our own status first: its
        # retained message, then our "online", come back in the broker's order (presence.py).
        self.presence.connected()
        self._presence_changed()
        self._announce = None
        await client.subscribe(self.prefix + "status", qos=QOS)
        await client.subscribe(self.prefix + "cmd/#", qos=QOS)
        for topic in self._peer_topics:  # retained: each member's latest, at once
            await client.subscribe(topic, qos=QOS)
        self._dirty.update(dict.fromkeys(self._states))  # a restarted broker may have lost them
        await self._flush(client)
        await client.publish(self.prefix + "status", _json(self.presence.status("online")),
                             qos=QOS, retain=True)
        self.online.set()
        stopper = asyncio.create_task(self._stop.wait())
        tasks = {asyncio.create_task(self._read(client)), asyncio.create_task(self._write(client)),
                 stopper}
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            # Bounded: on a loaded machine a cancelled read of aiomqtt's message queue was
            # seen not to end before close()'s timeout, and the goodbye was never said.
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        for t in done - {stopper}:
            t.result()  # reader and writer end only by raising (a lost connection: MqttError)
        # The goodbye first: on a loaded machine at shutdown the close timeout may cut what
        # follows, and "offline" is what a stage manager's dashboard must not miss. A duplicate
        # does not take the retained status from the agent with its name that stays.
        await client.publish(self.prefix + "status", _json(self.presence.status("offline")),
                             qos=QOS, retain=self.presence.duplicate_of is None)
        await self._flush(client)  # then the latest state, retained for whoever looks next

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            if topic == self.prefix + "status":
                self._own_status(message)
            elif topic.startswith(self.prefix):
                self._handle(message)
            else:
                self._peer_message(message)

    def _own_status(self, message: aiomqtt.Message) -> None:
        """What is said under our own name: ours coming back, or another agent with it."""
        try:
            payload = _object(message.payload) if message.payload else {}
        except CommandError:
            return  # not the protocol's: nobody with our name said it (the ACL)
        outcome = self.presence.hear(payload, bool(message.retain))
        if outcome.said:
            (log.error if outcome.loud else log.warning)("MQTT: %s", outcome.said)
        if outcome.announce is not None:
            self._announce = outcome.announce
            # Our retained state too: a duplicate published its own when it connected.
            self._dirty.update(dict.fromkeys(self._states))
            self._wake.set()
        self._presence_changed()

    def _presence_changed(self) -> None:
        summary = self.presence.summary()
        if summary != self._presence_said:
            self._presence_said = summary
            if self._on_presence is not None:
                self._on_presence(self.presence)

    def _peer_message(self, message: aiomqtt.Message) -> None:
        """Another member's presence or ensemble state. A bad one is logged and ignored, and
        so is what its duplicate says (presence.MemberRuns)."""
        peer = self._peer_topics.get(message.topic.value)
        if peer is None:
            return  # not a topic this agent subscribed to
        name, kind = peer
        if not message.payload:  # a retained message cleared: nothing known any more
            payload: dict[str, Any] = {"state": "offline"} if kind == "status" else {}
        else:
            try:
                payload = _object(message.payload)
            except CommandError as e:
                if self._on_peer_error is not None:
                    self._on_peer_error(name, kind, str(e))
                return
        if self._on_peer is not None and self._member_runs.take(name, kind, payload) and payload:
            self._on_peer(name, kind, payload, bool(message.retain))

    async def _write(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        # One publish in flight at a time, each awaiting its PUBACK: a burst of publish_state
        # for a kind collapses into its latest payload instead of queueing behind a slow broker.
        # A duplicate (presence.py) keeps its state and figures until it takes over.
        while self._telemetry and self.presence.duplicate_of is None:
            kind, body = self._telemetry.popitem()  # QoS 0: no acknowledgement awaited
            await client.publish(self.prefix + "telemetry/" + kind, body, qos=0)
        while self._replies or self._announce or (
                self._dirty and self.presence.duplicate_of is None):
            if self._replies:
                topic, body = reply = self._replies.popleft()
                try:
                    await client.publish(topic, body, qos=QOS)
                except BaseException:
                    self._replies.appendleft(reply)  # sent after the reconnect
                    raise
            elif self._dirty and self.presence.duplicate_of is None:
                kind = next(iter(self._dirty))
                body = self._states[kind]
                await client.publish(self.prefix + "state/" + kind,
                                     self._stamped(body) if kind in STAMPED else body,
                                     qos=QOS, retain=True)
                if self._states[kind] is body:  # else changed meanwhile: send the newer one
                    del self._dirty[kind]
            elif self._announce is not None:  # after our state, as when connecting
                status, self._announce = self._announce, None
                await client.publish(self.prefix + "status", _json(status), qos=QOS,
                                     retain=True)

    def _stamped(self, body: bytes) -> bytes:
        """A state with the agent's clock as it leaves (not when it was made: a slow broker
        or a reconnect would make it look older) and the run that says it."""
        return _json({**json.loads(body), "clock": self._clock_ns(),
                      "run": self.presence.run})

    def _handle(self, message: aiomqtt.Message) -> None:
        """Check, apply and answer one command. Never raises: bad input is answered."""
        verb = message.topic.value.removeprefix(self.prefix + "cmd/")
        cmd_id: str | None = None
        try:
            fields = _object(message.payload)
            given = fields.pop("id", None)
            if not isinstance(given, str) or not given:
                raise CommandError('missing "id" (a non-empty string)')
            cmd_id = given
            if message.retain:
                raise CommandError("retained command ignored (commands are never retained)")
            if cmd_id in self._applied:  # QoS1 redelivery or a director's retry: apply once
                self._reply("ack", {"id": cmd_id, "verb": verb})
                return
            sent = fields.pop("sent", None)
            cmd = parse_command(verb, fields, self._sections)
            late = check_sent(verb, sent, self._now_ns() / 1e9, self._max_age_s)
            if late is not None and self._safe_date_log.due() is not None:
                log.warning("MQTT command %r (id %s): %s", verb, cmd_id, late)
            refusal = self.presence.refusal(verb)
            if refusal is not None:
                raise CommandError(refusal)
            self._on_command(cmd)
        except StageAgentError as e:  # CommandError, or the agent refusing the command
            self._refuse(shorten(verb, MAX_VERB_CHARS), cmd_id, shorten(str(e)))
            return
        except Exception as e:  # a bug in on_command: loud in the log, the control plane lives
            log.exception("MQTT command %r (id %s) failed", verb, cmd_id)
            self._reply("error", {"id": cmd_id, "verb": shorten(verb, MAX_VERB_CHARS),
                                  "error": shorten(f"internal error: {e!r}")})
            return
        self._applied[cmd_id] = None
        if len(self._applied) > REMEMBERED_IDS:
            del self._applied[next(iter(self._applied))]
        self._reply("ack", {"id": cmd_id, "verb": verb})

    def _refuse(self, verb: str, cmd_id: str | None, error: str) -> None:
        """Answer a refused command; say so on the log at most once a second (a flood of bad
        commands must not become a flood of log lines)."""
        self._reply("error", {"id": cmd_id, "verb": verb, "error": error})
        held = self._refusal_log.due()
        if held is not None:
            log.warning("MQTT command %r (id %s) not applied: %s%s", verb, cmd_id, error,
                        f" (and {held} more refused since the last report)" if held else "")

    def _reply(self, kind: str, payload: dict[str, Any]) -> None:
        """Every reply names the run: two agents with one name never answer alike."""
        self._replies.append((self.prefix + "evt/" + kind,
                              _json({**payload, "run": self.presence.run})))
        self._wake.set()


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text`, cut to `limit` characters: a reply never echoes a huge bad value whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as e:  # also not UTF-8
        raise CommandError(f"invalid JSON: {e}") from None
    except RecursionError:  # e.g. 100,000 nested arrays: the decoder recurses per level
        raise CommandError("invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise CommandError(f'expected a JSON object with an "id", got {type(value).__name__}')
    return value


def make_control_plane(config: Config, on_command: Callable[[Command], None],
                       now_ns: Callable[[], int] = time.time_ns, **options: Any
                       ) -> ControlPlane | None:
    """The control plane, or None when no broker is configured (the caller says
    NO_BROKER_MESSAGE once). `options` are ControlPlane's keyword options."""
    if not config.mqtt.host:
        return None
    return ControlPlane(config, on_command, now_ns, **options)
