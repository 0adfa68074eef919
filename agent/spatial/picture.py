"""A picture of the voices' trajectories: the rig seen from above, and elevation over time.

matplotlib with its file-only backend (no display on a headless stage machine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agent.spatial.frame import xyz_to_aed
from agent.spatial.trajectory import Point

COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def draw(paths: Mapping[str, Sequence[tuple[int, Point]]], speakers: Sequence[Point],
         out: Path, title: str, sparse_s: float | None = None) -> Path:
    """Write a PNG: top view (x right, y front; speakers as squares) and elevation vs time.
    `sparse_s`: the paths were sampled this far apart, more than a tick (a long run): the top
    view shows the samples as dots, since lines between them would cut across the room where
    no voice went (an orbit sampled every second or so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, (top, side) = plt.subplots(1, 2, figsize=(12, 5.5),
                                    gridspec_kw={"width_ratios": [1, 1.6]})
    top.add_patch(Circle((0, 0), 1.0, fill=False, color="0.7", lw=0.8))
    if speakers:
        top.scatter([p[0] for p in speakers], [p[1] for p in speakers], marker="s", s=14,
                    color="0.4", label="speakers", zorder=3)
    t0 = min((path[0][0] for path in paths.values() if path), default=0)
    for i, (name, path) in enumerate(paths.items()):
        if not path:
            continue
        colour = COLOURS[i % len(COLOURS)]
        where = np.array([p for _, p in path], dtype=np.float64)
        if sparse_s is None:
            top.plot(where[:, 0], where[:, 1], color=colour, lw=0.8, alpha=0.8, label=name)
        else:
            top.plot(where[:, 0], where[:, 1], color=colour, ls="none", marker=".", ms=1.5,
                     alpha=0.5, label=name)
        times = [(t - t0) / 1e9 for t, _ in path]
        side.plot(times, xyz_to_aed(where)[:, 1], color=colour, lw=0.9, label=name)
    top.set_xlim(-1.1, 1.1)
    top.set_ylim(-1.1, 1.1)
    top.set_aspect("equal")
    top.set_xlabel("x (right)")
    top.set_ylabel("y (front)")
    top.set_title("from above (front is up)" + ("" if sparse_s is None else
                                                 f", a dot every {sparse_s:.2g} s"))
    top.legend(loc="lower right", fontsize=8)
    side.set_xlabel("time (s)")
    side.set_ylabel("elevation (deg)")
    side.set_ylim(-90, 90)
    side.set_title("elevation")
    side.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
