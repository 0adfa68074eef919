"""soak.py's disk phase: the recording's disk fills up, then has room again.

The recordings folder is a tmpfs of DISK_KIB (mounting it needs root; where it cannot be mounted
the soak says so and runs without the phase). Every --disk-full-every s the bench fills it (a
file written until ENOSPC) for DISK_FULL_S, then deletes the file. Measured: the agent's notes at
the synth while the disk was full against the same length of time just before (the music must
not notice the disk), the records its log says it lost (its records-lost notes), and that the
recording goes on once there is room again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _common import heading

from agent import midi
from agent.record.log import records_lost
from tests.disks import fill, small_tmpfs

DISK_KIB = 64 * 1024  # the recordings' tmpfs: room for the whole soak's log when not filled
DISK_FULL_S = 5.0  # each time, the disk stays full this long


@contextlib.contextmanager
def recordings_disk(folder: Path, on: bool) -> Iterator[Path | None]:
    """The recordings folder on its own small tmpfs for the `with` block when the phase is on;
    None when it is off, or when the machine cannot mount one (the reason printed)."""
    with contextlib.ExitStack() as stack:
        mounted = None
        if on:
            try:
                mounted = stack.enter_context(small_tmpfs(folder, DISK_KIB))
            except pytest.skip.Exception as e:  # tests/disks.py: this machine cannot mount
                print(f"  the disk phase is not run: {e.msg}")
        yield mounted


@dataclass
class DiskPhase:
    folder: Path
    windows: list[tuple[int, int]] = field(default_factory=list)  # (full, room again) ns

    def full(self, _k: int) -> None:
        start = time.monotonic_ns()
        filler = fill(self.folder, "soak-filler")
        time.sleep(DISK_FULL_S)
        filler.unlink()
        self.windows.append((start, time.monotonic_ns()))

    def report(self, synth: list[tuple[int, bytes]],
               records: list[dict[str, Any]]) -> dict[str, Any]:
        """Print the phase's figures; return them. `synth`: (arrival ns, message) at the synth
        port; `records`: the agent's log (its times on the same monotonic clock)."""
        heading(f"disk phase: the recordings' disk full {len(self.windows)} times for "
                f"{DISK_FULL_S:g} s")
        ons = [t for t, data in synth if midi.is_note_on(data)]
        during = sum(a <= t < b for a, b in self.windows for t in ons)
        before = sum(2 * a - b <= t < a for a, b in self.windows for t in ons)
        lost = records_lost(records)
        after = sum(r["t"] > self.windows[-1][1] for r in records) if self.windows else 0
        print(f"  agent notes at the synth while the disk was full {during}, in as long just "
              f"before {before}")
        print(f"  records the log says it lost {lost}; records written after the last "
              f"fill {after}")
        return {"fills": len(self.windows), "notes_during": during, "notes_before": before,
                "records_lost": lost, "records_after": after}
