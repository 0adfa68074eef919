"""Takes and captures whose disk hangs at the stop: the exit is not held, and what was not saved
is said. A real process, its slices' writes held by tests/disks.py's library (a hung USB stick
or NFS mount), never let go while the process runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.record.log import read_log
from agent.record.session import LOG_NAME
from agent.record.summary import format_summary
from tests.disks import slow_write_library

HUNG_SAVES = """
import asyncio, json, sys
from pathlib import Path
from agent import config as config_mod
from agent.clock import ManualClock
from agent.events import Heard
from agent.policy.commands import parse_command
from agent.record.session import Session
from agent.record.takes import Takes

MS = 1_000_000
out, gate, wait_s = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])


async def main() -> None:
    clock = ManualClock()
    cfg = config_mod.from_dict({
        "players": [{"name": "keys", "port": "virtual:keys"}],
        "agent": {"outputs": ["synth"], "channel": 2, "mode": "harmony"},
        "harmony": {"intervals": [7]}})
    session = Session(cfg, clock, lambda port, data: True, out, {"clock": "manual"})
    published = []
    takes = Takes(cfg, session, asyncio.get_running_loop(),
                  lambda kind, payload: published.append([kind, payload]), settle_s=0.0)
    session.actions.update(takes.actions())

    def at(ms):
        clock.advance_to(ms * MS)
        session.run_due(ms * MS)
        return ms * MS
    session.hear(Heard(at(10), "keys", bytes([0x90, 60, 80])))
    gate.touch()  # the captures' disk hangs from now on
    session.command(parse_command("capture-save", {}), at(100))
    session.command(parse_command("record", {"action": "start"}), at(200))
    session.stop(at(300))
    await takes.close(clock.now_ns(), wait_s=wait_s)
    summary = session.finish()
    print(json.dumps({"summary": summary, "published": published}), flush=True)

asyncio.run(main())
"""


def run_hung(tmp_path: Path, wait_s: float) -> subprocess.CompletedProcess[str]:
    """The script above, its captures' disk hung; killed (TimeoutExpired) if it never exits."""
    library = slow_write_library(tmp_path)
    out, gate = tmp_path.resolve() / "perf", tmp_path / "gate"
    try:
        return subprocess.run(
            [sys.executable, "-c", HUNG_SAVES, str(out), str(gate), str(wait_s)],
            env={**os.environ, "LD_PRELOAD": str(library),
                 "SLOW_WRITE_DIR": str(out / "captures"), "SLOW_WRITE_GATE": str(gate)},
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        gate.unlink(missing_ok=True)


def test_saves_held_by_a_hung_disk_at_the_stop_are_reported_and_the_process_exits(
        tmp_path: Path) -> None:
    """A capture stuck in its write, and the take running at the end queued behind it: the stop
    waits for them only so long, says neither was saved (stderr, log, summary, MQTT state), and
    the process exits although the writer thread never comes back."""
    done = run_hung(tmp_path, 0.5)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    error = "not written within 0.5 s of the stop (a hung or slow disk?): abandoned, {} may be " \
            "incomplete"
    summary = result["summary"]
    assert summary["captures"] == [{"folder": "captures/01-capture",
                                    "error": error.format("captures/01-capture")}]
    assert summary["takes"] == [{"folder": "takes/01-take",
                                 "error": error.format("takes/01-take")}]
    assert "  capture captures/01-capture NOT saved: not written within 0.5 s" in \
        format_summary(summary)
    for kind, folder in (("capture", "captures/01-capture"), ("take", "takes/01-take")):
        assert f"{kind} {folder} not saved: {error.format(folder)} (the full recording has " \
               "it)" in done.stderr
        states = [p for k, p in result["published"] if k == kind]
        assert [p["state"] for p in states][-2:] == ["saving", "failed"]  # a take: recording
        assert states[-1]["error"] == error.format(folder)
    _header, records = read_log(tmp_path / "perf" / LOG_NAME)
    assert [r["what"] for r in records if r["k"] == "note"] == ["capture-failed", "take-failed"]
    assert not (tmp_path / "perf" / "takes").exists()  # queued behind the capture: never begun
    assert "Traceback" not in done.stderr
