"""The agent's remote surfaces, together: MQTT control plane, OSC state out, OSC commands in.

Commands from either input go through the session (recorded, then applied, on the loop); the
agent's state goes out to both outputs. Each surface is optional (see [mqtt] and [osc] in the
config); a performance without any runs exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from agent.config import Config, host_port, monitor_address
from agent.console import say_err
from agent.errors import ConfigError
from agent.io.monitor import Monitor, monitor_for
from agent.io.mqtt import NO_BROKER_MESSAGE, ControlPlane, make_control_plane, shorten
from agent.io.osc import OscControlIn, OscOut
from agent.io.presence import Presence
from agent.policy.commands import Command
from agent.policy.ensemble import ClockOffsets, PeerMessageError, check_peer_fields
from agent.record.session import Session
from agent.stats import LogThrottle
from agent.visuals.state import KINDS as OSC_KINDS

log = logging.getLogger(__name__)


class Remote:
    """`wall_ns`: the wall clock (unix ns), read only to check the "sent" time of MQTT commands;
    the ensemble's times never use it (ClockOffsets)."""

    def __init__(self, config: Config, session: Session,
                 wall_ns: Callable[[], int] = time.time_ns,
                 on_presence: Callable[[str], None] | None = None) -> None:
        """`on_presence`: told a line for systemd's status whenever another agent with this
        agent's MQTT name comes or goes ("" when it is alone again)."""
        self.session = session
        s = config.source
        self._on_presence = on_presence
        self.mqtt: ControlPlane | None = make_control_plane(
            config, self._command, wall_ns, clock_ns=session.clock.now_ns, on_peer=self._peer,
            on_peer_error=self._peer_refused, on_presence=self._presence)
        self._offsets = ClockOffsets()  # each member's clock onto ours
        self._peer_refusal_log = LogThrottle()  # per member
        if self.mqtt is None:
            say_err(f"stage-agent: {NO_BROKER_MESSAGE}")  # stderr may be gone: plays on
        self.osc_out = OscOut([host_port(s, f"osc.visuals[{i}]", d)
                               for i, d in enumerate(config.osc.visuals)]) \
            if config.osc.visuals else None
        self.osc_in: OscControlIn | None = None
        if config.osc.control:
            host, port = host_port(s, "osc.control", config.osc.control)
            self.osc_in = OscControlIn(host, port, config.osc.allow,
                                       [sec.name for sec in config.sections], self._command)
        self._task: asyncio.Task[None] | None = None
        self.monitor: Monitor | None = monitor_for(config, session, self.mqtt)  # [monitor]
        session.agent.publish = self.publish

    def _command(self, cmd: Command) -> None:
        """Raises CommandError (the surface replies with it) if the command cannot apply."""
        self.session.command(cmd, self.session.clock.now_ns())

    def _presence(self, presence: Presence) -> None:
        """Two agents with one name (io/presence.py): on the monitor (a duplicate publishes no
        MQTT state, so the monitor and systemd's status are where its stage sees it)."""
        text = presence.describe()
        if self.monitor is not None:
            self.monitor.publish("presence", {**presence.summary(), "text": text})
        if self._on_presence is not None:
            self._on_presence(text)

    def _peer(self, name: str, kind: str, payload: dict[str, Any], retained: bool) -> None:
        """Another member's presence or ensemble state: checked, then recorded and applied
        (a `peer` control). Its times are on its own clock: they move onto ours here."""
        now = self.session.clock.now_ns()
        try:
            if kind == "status":
                fields: dict[str, Any] = {"status": payload.get("state")}
                if fields["status"] != "online":
                    self._offsets.forget(name)
            else:
                fields = self._onto_our_clock(name, payload, now, retained)
            if kind != "status" and "status" in fields:  # presence is its status topic's alone
                raise PeerMessageError("unknown field 'status'")
            fields = check_peer_fields(fields)
        except PeerMessageError as e:
            self._peer_refused(name, kind, str(e))
            return
        if "status" in fields:
            (log.info if fields["status"] == "online" else log.warning)(
                "ensemble: %s is %s", name, fields["status"])
        self.session.control("peer", now, agent=name, **fields)

    def _peer_refused(self, name: str, kind: str, error: str) -> None:
        """A member's message that cannot be taken: on the log, cut short, at most once a second
        per member (a member gone wrong must not flood the log the music's loop writes)."""
        held = self._peer_refusal_log.due(name)
        if held is not None:
            log.warning("ensemble: %s's %s ignored: %s%s", name, kind, shorten(error),
                        f" (and {held} more since the last report)" if held else "")

    def _onto_our_clock(self, name: str, payload: dict[str, Any], now: int, retained: bool
                        ) -> dict[str, Any]:
        """A member's ensemble state with its times ("until", the grid's beat) on our clock.
        Raises PeerMessageError without the sender's "clock" stamp."""
        fields = dict(payload)
        sent = fields.pop("clock", None)
        if isinstance(sent, bool) or not isinstance(sent, int):
            raise PeerMessageError('missing "clock" (the member\'s clock in ns when sent: '
                                   "every member must run this version)")
        if retained:
            fields["retained"] = True
        else:
            self._offsets.hear(name, sent, now)
        offset = self._offsets.offset(name)
        grid = fields.get("grid")
        if offset is None:
            # Kept by the broker from an unknown time ago, and no fresh message yet: taking it
            # as sent now places its end no earlier than it is; a beat that may be seconds off
            # is not followed (the leader announces the next within a bar).
            offset, grid = now - sent, None
        until = fields.get("until")
        if isinstance(until, int) and not isinstance(until, bool):
            fields["until"] = until + offset
        if isinstance(grid, list) and len(grid) == 2 and isinstance(grid[0], int) \
                and not isinstance(grid[0], bool):
            grid = [grid[0] + offset, grid[1]]
        if "grid" in fields:
            fields["grid"] = grid
        return fields

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self.mqtt is not None:  # an ensemble state's times go out on our clock, stamped
            self.mqtt.publish_state(kind, payload)
        if self.osc_out is not None and kind in OSC_KINDS:  # the others: MQTT only
            try:
                self.osc_out.send_state(kind, payload)
            except ValueError:  # a state the stream cannot encode: say so, keep playing
                log.exception("OSC state %s not sent", kind)
        if self.monitor is not None:
            self.monitor.publish(kind, payload)  # never waits: each page has a bounded mailbox

    def telemetry(self, figures: dict[str, Any]) -> None:
        """The telemetry snapshot (once a second) to MQTT and the monitor."""
        if self.mqtt is not None:
            self.mqtt.publish_telemetry("agent", figures)
        if self.monitor is not None:
            self.monitor.telemetry(figures)

    async def start(self) -> None:
        if self.monitor is not None:
            await self.monitor.start()
        if self.osc_in is not None:
            await self.osc_in.start()
        if self.mqtt is not None:
            self._task = asyncio.create_task(self.mqtt.run(), name="mqtt")
        agent = self.session.agent
        now = self.session.clock.now_ns()
        self.publish("mode", {"mode": agent.controls.mode, "section": agent.section_name()})
        self.publish("controls", agent.controls.to_dict())
        if agent.config.sections:
            self.publish("section", agent.place.to_dict(agent.config.sections))
        agent.publish_plan(now)
        agent.announce_ensemble(now)

    def refresh(self) -> None:
        """A full state every second or so: a visuals machine that restarts catches up."""
        if self.osc_out is not None:
            self.osc_out.refresh()

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.close()
        if self.osc_in is not None:
            self.osc_in.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.osc_out is not None:
            self.osc_out.close()


def check_listen_addresses(config: Config) -> None:
    """Bind, then let go, each address the run will listen on (OSC commands: UDP; the monitor:
    TCP): an address already taken or not on this machine refuses the run naming its key,
    before a port is opened or a recording begun. (Another program could still take it in the
    moment between: then the surface's own error stops the run, exit 1.)"""
    wanted = []
    if config.osc.control:
        wanted.append(("osc.control", *host_port(config.source, "osc.control",
                                                 config.osc.control), socket.SOCK_DGRAM))
    if config.monitor.listen:
        wanted.append(("monitor.listen", *monitor_address(config), socket.SOCK_STREAM))
    for key, host, port, kind in wanted:
        try:
            infos = socket.getaddrinfo(host, port, type=kind)
            with socket.socket(infos[0][0], kind) as sock:
                if kind == socket.SOCK_STREAM:  # as asyncio's server does: a port left in
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is ok
                sock.bind(infos[0][4])
        except OSError as e:
            raise ConfigError(config.source, key, f"cannot listen on {host}:{port}: "
                              f"{e.strerror or e}") from None
