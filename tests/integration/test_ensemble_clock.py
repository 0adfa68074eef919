"""The ensemble's times owe nothing to the wall clock: two members on a real mosquitto (the
shipped config and ACL) share a beat and a lead's end, and an NTP step of either machine's wall
clock moves neither.

The wall clock is a fake here (SteppingWallClock, given to each Remote): a test cannot step the
machine's own clock. The agents' clocks are manual clocks, as in every pipeline test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent import config
from agent.clock import ManualClock
from agent.io.remote import Remote
from agent.policy.ensemble import PeerState
from agent.record.session import Session

from .broker import MOSQUITTO, MOSQUITTO_PASSWD, SHIPPED_ACL, Broker

pytestmark = pytest.mark.skipif(MOSQUITTO is None or MOSQUITTO_PASSWD is None,
                                reason="needs mosquitto (scripts/setup.sh installs it)")

S = 1_000_000_000
USERS = {"keys": "k-pass", "bass": "b-pass"}
PERIOD = 500_000_000  # the tempo leader's beat: 120 bpm


class SteppingWallClock:
    """The machine's wall clock, stepped by `step_ns` (as NTP steps a clock that was off)."""

    def __init__(self) -> None:
        self.step_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.step_ns


@asynccontextmanager
async def member(tmp_path: Path, port: int, me: str, clock_at: int,
                 wall: SteppingWallClock) -> AsyncIterator[tuple[Remote, Session]]:
    cfg = config.from_dict({
        "performance": {"name": "duo"},
        "players": [{"name": "p", "port": f"virtual:{me}-p"}],
        "agent": {"mode": "call-response", "outputs": ["synth"]},
        "mqtt": {"host": "127.0.0.1", "port": port, "agent": me, "username": me,
                 "password": USERS[me]},
        "ensemble": {"members": ["keys", "bass"], "tempo_leader": "keys"},
    }, str(tmp_path / f"{me}.toml"))
    session = Session(cfg, ManualClock(clock_at), lambda port, data: True, tmp_path / me,
                      {"clock": "manual"})
    remote = Remote(cfg, session, wall)
    await remote.start()
    try:
        yield remote, session
    finally:
        await remote.close()
        session.stop(session.clock.now_ns())
        session.finish()


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_ntp_step_moves_neither_the_shared_beat_nor_a_lead(tmp_path: Path) -> None:
    broker = Broker(tmp_path, users=USERS, acl=SHIPPED_ACL, shipped=True)
    broker.start()
    walls = {"keys": SteppingWallClock(), "bass": SteppingWallClock()}
    try:
        # Two machines' clocks with nothing in common: keys's reads 5 s, bass's 900 s.
        async with member(tmp_path, broker.port, "keys", 5 * S, walls["keys"]) as (keys, _), \
                member(tmp_path, broker.port, "bass", 900 * S, walls["bass"]) as (_, bass):
            ensemble = bass.agent.ensemble
            assert ensemble is not None

            def heard() -> PeerState:
                return ensemble.peers["keys"]

            beat = 6 * S  # a beat on keys's clock: 1 s from its now
            keys.publish("ensemble", {"role": "lead", "until": 8 * S, "can_lead": True,
                                      "grid": [beat, PERIOD]})
            await until(lambda: heard().grid is not None)
            before = heard()
            # On bass's clock: keys's times plus the offset it measured (900 s - 5 s: the
            # manual clocks stand still while the message travels).
            assert before.grid == (beat + 895 * S, PERIOD)
            assert before.until_ns == 8 * S + 895 * S

            walls["keys"].step_ns = 10 * S  # NTP steps one machine forward 10 s...
            walls["bass"].step_ns = -7 * S  # ...and the other back 7 s
            keys.publish("ensemble", {"role": "lead", "until": 8 * S, "can_lead": True,
                                      "grid": [beat + PERIOD, PERIOD]})  # the next beat
            await until(lambda: heard().grid != before.grid)
            assert heard().grid == (beat + PERIOD + 895 * S, PERIOD)  # the same beat, one on
            assert heard().until_ns == before.until_ns  # the lead ends when it did
    finally:
        broker.stop()
