"""The checkpoint's identity in the log's header: `perform` hashes it on a thread before the
session is made (a checkpoint may be 1 GiB: ~0.8 s of hashing, seconds from a cold disk), a
replay while it makes its session; the header is the same either way."""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent.clock import ManualClock
from agent.io.stop_signals import StopSignals
from agent.record.log import read_log
from agent.record.session import LOG_NAME, Session, model_identity
from agent.service import _model_identity
from agent.threads import in_daemon_thread
from tests.model_fixtures import save_random_checkpoint


def piece(folder: Path, check_files: bool = True) -> config_mod.Config:
    return config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"mode": "call-response", "outputs": ["synth"]},
        "model": {"checkpoint": "a.pt"}}, str(folder / "performance.toml"), check_files)


def header(config: config_mod.Config, out: Path, **given: Any) -> dict[str, Any]:
    session = Session(config, ManualClock(), lambda port, data: True, out, {"clock": "manual"},
                      **given)
    session.log.close()
    return read_log(out / LOG_NAME)[0]


def test_the_header_is_the_same_whether_the_identity_is_given_or_worked_out(
        tmp_path: Path) -> None:
    model = save_random_checkpoint(tmp_path / "a.pt")
    config = piece(tmp_path)

    async def hashed() -> dict[str, Any]:  # as perform does
        signals = StopSignals(asyncio.get_running_loop())
        return await _model_identity(config, in_daemon_thread(
            lambda: model_identity(config.model_path()), "model-hash"), signals)
    given = header(config, tmp_path / "perform", model_id=asyncio.run(hashed()))
    worked_out = header(config, tmp_path / "replay")
    assert given == worked_out
    assert list(given)[-4:] == ["config", "seed", "clock", "model"]
    assert given["model"] == {"path": str(model.resolve()),
                              "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}


def test_the_loop_turns_while_a_large_checkpoint_is_hashed(tmp_path: Path) -> None:
    with (tmp_path / "a.pt").open("wb") as f:
        f.truncate(256 * 2**20)  # sparse: no disk used, hashed all the same
    config = piece(tmp_path, check_files=False)  # (no checkpoint: only its bytes matter here)

    async def main() -> tuple[dict[str, Any], int]:
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1
        counting = asyncio.create_task(count())
        identity = await _model_identity(config, in_daemon_thread(
            lambda: model_identity(config.model_path()), "model-hash"),
            StopSignals(asyncio.get_running_loop()))
        counting.cancel()
        return identity, turns
    identity, turns = asyncio.run(main())
    assert identity["sha256"] == hashlib.sha256(bytes(256 * 2**20)).hexdigest()
    assert turns > 0  # on the loop, the hash would have held it until done


def test_a_stop_signal_ends_the_wait_for_a_hash_that_never_ends(tmp_path: Path) -> None:
    """(The checkpoint on a hung disk: the stop is not held; the sha256 is unknown.)"""
    save_random_checkpoint(tmp_path / "a.pt")
    config = piece(tmp_path)

    async def main() -> dict[str, Any]:
        signals = StopSignals(asyncio.get_running_loop())
        never: Future[dict[str, Any]] = Future()
        asyncio.get_running_loop().call_later(0.05, signals.stop.set)
        return await _model_identity(config, never, signals)
    assert asyncio.run(main()) == {"path": str((tmp_path / "a.pt").resolve()), "sha256": None}
