"""The live monitor for the stage technician: a small read-only web page served by the agent.

`GET /` is one self-contained page (agent/io/monitor_page.py). `GET /events` is a Server-Sent
Events stream: on connect the whole picture at once (status, every state published so far, the
latest telemetry and meters), so a page opened mid-show is complete at once; then every change,
as `event: <kind>` and `data: <JSON payload>`. Kinds: those of MQTT `state/<kind>` (mode,
section, controls, tempo, key, roles, plan, ensemble, model, take, capture), with the same
payloads, except that a plan sent on connect has its note times counted from then; `telemetry`
(MQTT's `telemetry/agent`) and `status` (performance, recording, recording_ok, mqtt, state,
uptime_s, clients) once a second; `meters` (per player and for the agent: notes so far, notes/s,
a velocity level that falls between notes; MIDI messages in and out) four times a second when
they change.

It runs on the agent's event loop (asyncio streams, no thread, no dependency), which plays the
music, so nothing here waits on a client:
- publishing never writes: it stores the state and drops one frame per client into that
  client's mailbox, which holds at most one frame per kind. A client that reads slowly skips
  intermediate states and gets the latest of each (counted in its `skipped`): what a client can
  hold is bounded by the mailbox and the socket's write buffer, whatever it does, and memory
  never grows with the show's length;
- a client whose socket does not drain within WRITE_TIMEOUT_S is dropped (a browser's
  EventSource reconnects by itself, and gets the whole picture again);
- at most `max_clients` event streams (the next gets 503);
- a request is read within REQUEST_TIMEOUT_S and is at most MAX_REQUEST_BYTES (request line and
  headers); only GET; otherwise 400, 404, 405, 408 or 431, and the connection is closed;
- at most MAX_WAITING connections wait on their client (still sending the request, or being let
  go after a refusal): a new connection beyond that cuts the one that has waited longest. A
  browser sends its request as soon as it connects, so clients that connect and then send
  slowly or nothing (slow loris) cannot keep a page from loading, however many they are: they
  only cut each other. In all at most `max_clients` + 2 x MAX_WAITING connections (file
  descriptors); one more is closed unanswered;
- loopback only (unless [monitor] allow_remote): a request whose Host header is not a loopback
  name is refused (403), so a web page in the technician's browser cannot read the monitor by
  DNS rebinding;
- any error closes that client only (and is logged).
Nothing comes in: the monitor changes nothing in the performance and is not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import Config, is_loopback, monitor_address
from agent.errors import StageAgentError
from agent.io.monitor_meters import Meters
from agent.io.monitor_page import PAGE

if TYPE_CHECKING:
    from agent.io.mqtt import ControlPlane
    from agent.record.session import Session

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8192  # request line and headers; a browser's GET is well under 1 KiB
REQUEST_TIMEOUT_S = 5.0  # to send the request, once connected
WRITE_TIMEOUT_S = 10.0  # a client whose socket takes longer to drain is dropped
LINGER_S, LINGER_BYTES = 1.0, 65536  # after refusing a request (see Monitor._refuse)
MAX_WAITING = 32  # connections waiting on their client at once; a newcomer cuts the oldest
METER_HZ = 4.0
MAX_KINDS = 32  # kinds of state kept (the agent has about a dozen): bounds every mailbox
RETRY_MS = 1000  # how soon a browser reconnects after losing the stream
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # safe on an SSE `event:` line
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_PAGE_HEADERS = ("Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                 "style-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n"
                 "Referrer-Policy: no-referrer\r\n")
_STREAM_HEAD = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: "
                f"nosniff\r\n\r\nretry: {RETRY_MS}\n\n").encode()


class MonitorError(StageAgentError):
    """The monitor cannot listen where it is told to."""


@dataclass(eq=False)
class _Client:
    """One event stream. `pending` is its mailbox: kind -> the latest frame not yet written."""

    pending: dict[str, bytes] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    skipped: int = 0
    closing: bool = False

    def post(self, kind: str, frame: bytes) -> None:
        if self.pending.pop(kind, None) is not None:  # re-inserted: it goes out last
            self.skipped += 1
        self.pending[kind] = frame
        self.wake.set()


def frame(kind: str, payload: dict[str, Any]) -> bytes:
    """One SSE event. Compact JSON has no raw newline (json escapes them in strings)."""
    return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def aged_plan(payload: dict[str, Any], age_ms: int) -> dict[str, Any]:
    """A plan made `age_ms` ago, its note starts counted from now (a page opened later)."""
    notes = [[n[0] - age_ms, *n[1:]] for n in payload.get("notes", ())]
    return {**payload, "notes": notes}


def loopback_host(value: str) -> bool:
    """A Host header ("name", "name:port", "[v6]:port") naming this machine's loopback."""
    host = value.strip()
    if host.startswith("["):
        host = host[1:host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host == "" or is_loopback(host.lower())


class Monitor:
    def __init__(self, host: str, port: int, status: Callable[[], dict[str, Any]],
                 players: Iterable[str], max_clients: int = 8,
                 loopback_only: bool = True) -> None:
        self._host, self._port = host, port
        self._status = status
        self.meters = Meters(players)
        self.max_clients = max_clients
        self._loopback_only = loopback_only
        # kind -> (payload, when published (ns), its frame)
        self._latest: dict[str, tuple[dict[str, Any], int, bytes]] = {}
        self._telemetry: dict[str, Any] | None = None
        self._meters: dict[str, Any] = self.meters.step(1.0)
        self.clients: set[_Client] = set()  # event streams
        # Every connection's handler, and its writer (to cut it).
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        # Those waiting on their client, oldest first (a dict keeps insertion order): the ones
        # to cut when a new connection needs the room.
        self._waiting: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started_ns = time.monotonic_ns()
        self.state = "performing"
        self.stats = {"pages": 0, "streams": 0, "refused": 0, "bad": 0, "errors": 0, "cut": 0}
        self._warned: set[str] = set()

    # -- from the agent (on the loop; never waits, never raises) ----------------------------
    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """A state changed: kept for new pages, posted to every open one."""
        try:
            if kind not in self._latest and (len(self._latest) >= MAX_KINDS
                                             or not _KIND.match(kind)):
                if kind not in self._warned:
                    self._warned.add(kind)
                    log.warning("monitor: state kind %r not shown (not a name, or too many)",
                                kind)
                return
            data = frame(kind, payload)  # first: a payload that is not JSON is not kept
            self._latest[kind] = (payload, time.monotonic_ns(), data)
            self._post(kind, data)
        except Exception:  # a payload that is not JSON: the page misses it, the music plays on
            self._warn(f"publish {kind}", f"monitor: state {kind!r} not shown")

    def telemetry(self, figures: dict[str, Any]) -> None:
        """The telemetry snapshot, once a second; the status goes with it."""
        try:
            self._telemetry = figures
            if self.clients:
                self._post("telemetry", frame("telemetry", figures))
                self._post("status", frame("status", self.status()))
        except Exception:
            self._warn("telemetry", "monitor: telemetry not shown")

    def status(self) -> dict[str, Any]:
        return {**self._status(), "state": self.state, "clients": len(self.clients),
                "uptime_s": (time.monotonic_ns() - self._started_ns) // 1_000_000_000}

    def _post(self, kind: str, data: bytes) -> None:
        for client in self.clients:
            client.post(kind, data)

    def _warn(self, what: str, text: str) -> None:
        """Log the exception being handled, once per `what`: a bug must not flood the log."""
        if what not in self._warned:
            self._warned.add(what)
            log.exception(text)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._connection, self._host, self._port, limit=MAX_REQUEST_BYTES)
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)
            raise MonitorError(f"monitor.listen: cannot listen on {self._host}:{self._port}: "
                               f"{why}") from None
        self._started_ns = time.monotonic_ns()
        self._ticker = asyncio.create_task(self._tick(), name="monitor-meters")
        log.info("monitor: http://%s:%d/", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when it was asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise MonitorError("monitor: not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        """Stop listening, tell every page the agent stopped, then close every connection."""
        if self._server is None:
            return
        self._server.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.state = "stopped"
        stopped = frame("status", self.status())
        for client in self.clients:
            client.post("status", stopped)
            client.closing = True
        if self._connections:  # streams write their last frame and end; a stuck one is cut
            _done, stuck = await asyncio.wait(self._connections, timeout=1.0)
            for task in stuck:  # its read or write ends at once, and so does its handler
                if (writer := self._connections.get(task)) is not None:
                    writer.transport.abort()
            await asyncio.gather(*stuck, return_exceptions=True)
        self._server = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(1 / METER_HZ)
            now = time.monotonic()
            meters, last = self.meters.step(now - last), now
            if meters != self._meters:
                self._meters = meters
                if self.clients:
                    self._post("meters", frame("meters", meters))

    # -- one connection ---------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        clean = False
        try:
            if len(self._connections) > self.max_clients + 2 * MAX_WAITING:
                self.stats["refused"] += 1  # answers stuck in sockets: a bound on descriptors
                return
            await self._serve(reader, writer)
            clean = True
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, stalled or was cut: only it is affected
        except Exception:
            self.stats["errors"] += 1
            log.exception("monitor: a client's connection failed; it was closed")
        finally:
            del self._connections[task]
            if clean:
                writer.close()  # after what is buffered
            else:
                writer.transport.abort()  # at once: a stuck client's buffer is let go

    def _wait_on_client(self, writer: asyncio.StreamWriter) -> asyncio.Task[Any]:
        """This connection now waits on its client: cut the longest waiting one if there is no
        room (its read ends at once, as if its client had gone)."""
        if len(self._waiting) >= MAX_WAITING:
            oldest = next(iter(self._waiting))
            self._waiting.pop(oldest).transport.abort()
            self.stats["cut"] += 1
        task = asyncio.current_task()
        assert task is not None
        self._waiting[task] = writer
        return task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        waiting = self._wait_on_client(writer)
        head, refusal = b"", None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            refusal = 431, f"request head over {MAX_REQUEST_BYTES} bytes"
        except TimeoutError:
            refusal = 408, f"no request within {REQUEST_TIMEOUT_S:g} s"
        finally:
            self._waiting.pop(waiting, None)
        if refusal is not None:
            return await self._refuse(reader, writer, *refusal)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in filter(None, lines[1:]):
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                return await self._refuse(reader, writer, 400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
            return await self._refuse(reader, writer, 400, "not an HTTP/1.x request line")
        if parts[0] != "GET":
            return await self._refuse(reader, writer, 405, "only GET", "Allow: GET\r\n")
        if self._loopback_only and not loopback_host(headers.get("host", "")):
            return await self._refuse(reader, writer, 403, "the monitor serves loopback names only "
                                      "([monitor] allow_remote is off)")
        path = parts[1].split("?", 1)[0]
        if path in ("/", "/index.html"):
            self.stats["pages"] += 1
            return await _respond(writer, 200, PAGE.encode(), "text/html; charset=utf-8",
                                  _PAGE_HEADERS)
        if path == "/events":
            if len(self.clients) >= self.max_clients:
                self.stats["refused"] += 1
                return await _respond(writer, 503, f"at most {self.max_clients} monitors at "
                                      "once".encode(), extra="Retry-After: 5\r\n")
            return await self._stream(reader, writer)
        return await self._refuse(reader, writer, 404, f"no {path} here: the page is /")

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      status: int, text: str, extra: str = "") -> None:
        """Answer a bad request, then read (and drop) what the client still sends, briefly
        and up to a bound: closing a socket with unread input resets the connection, and the
        client could lose the answer before reading it."""
        self.stats["bad"] += 1
        await _respond(writer, status, f"{status} {_REASONS[status]}: {text}\n".encode(),
                       extra=extra)
        writer.write_eof()
        waiting = self._wait_on_client(writer)  # a new connection may cut this short
        try:
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(LINGER_S):
                    dropped = 0
                    while dropped < LINGER_BYTES and (chunk := await reader.read(4096)):
                        dropped += len(chunk)
        finally:
            self._waiting.pop(waiting, None)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client()
        self.stats["streams"] += 1
        self.clients.add(client)
        # An SSE client sends nothing after its request: any byte, or EOF, ends the stream
        # (this notices a closed page at once, not at the next write).
        ended = asyncio.ensure_future(reader.read(1))
        woken: asyncio.Future[Any] | None = None
        try:
            writer.write(_STREAM_HEAD)
            self._snapshot(client)
            while True:
                woken = asyncio.ensure_future(client.wake.wait())
                await asyncio.wait((woken, ended), return_when=asyncio.FIRST_COMPLETED)
                if ended.done():
                    return
                client.wake.clear()
                if client.pending:  # one write per wake-up: at most one frame per kind
                    frames, client.pending = list(client.pending.values()), {}
                    writer.write(b"".join(frames))
                    await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
                if client.closing:
                    return
        finally:
            self.clients.discard(client)
            for future in (woken, ended):  # none left pending, no error left unretrieved
                if future is not None and not future.cancel() and not future.cancelled():
                    future.exception()

    def _snapshot(self, client: _Client) -> None:
        """Everything a page needs at once, in the order it was first published."""
        now = time.monotonic_ns()
        client.post("status", frame("status", self.status()))
        for kind, (payload, t_ns, data) in self._latest.items():
            if kind == "plan":
                data = frame(kind, aged_plan(payload, (now - t_ns) // 1_000_000))
            client.post(kind, data)
        if self._telemetry is not None:
            client.post("telemetry", frame("telemetry", self._telemetry))
        client.post("meters", frame("meters", self._meters))


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                   content_type: str = "text/plain; charset=utf-8", extra: str = "") -> None:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n"
            f"X-Content-Type-Options: nosniff\r\n{extra}\r\n")
    writer.write(head.encode() + body)
    await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)


def monitor_for(config: Config, session: Session,
                mqtt: ControlPlane | None) -> Monitor | None:
    """The performance's monitor ([monitor] listen), counting the notes of its log; None when
    it is off. Started and closed by agent/io/remote.py."""
    if not config.monitor.listen:
        return None
    host, port = monitor_address(config)

    def status() -> dict[str, Any]:
        return {"performance": config.performance.name,
                **recording_status(session.recording_state()),
                "mqtt": "off" if mqtt is None else
                "connected" if mqtt.online.is_set() else "not connected"}

    monitor = Monitor(host, port, status, [p.name for p in config.players],
                      config.monitor.max_clients, not config.monitor.allow_remote)
    session.log.taps.append(monitor.meters.tap)
    return monitor


def recording_status(state: dict[str, Any]) -> dict[str, Any]:
    """The status's recording (Session.recording_state): its folder, or what went wrong with it
    (`recording_ok` false: the page shows it in red)."""
    if state["state"] == "off":
        text = f"NOT RECORDING: {state['error']}"
    elif state["lost"] or state["state"] != "recording":
        text = (f"{state['folder']}: {state['state']}, {state['lost']} records lost "
                f"({state['error']})")
    else:
        text = state["folder"]
    return {"recording": text, "recording_ok": text == state["folder"]}
