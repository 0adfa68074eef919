"""Writes the shipped layouts (layouts/*.toml) from their definitions here; deterministic.

Run from the repository root: `.venv/bin/python layouts/make_layouts.py`. The files are written
with `aed` coordinates (readable, editable by hand) and load back to exactly the layouts built
here (tests/unit/test_layouts.py checks it). Choices, explained in layouts/README.md:

- Every ring is numbered clockwise seen from above (front, then right, back, left), the
  numbering of most venue rings; azimuths are ADM (positive to the LEFT), so clockwise = falling.
- stereo: L +30, R -30. quad: L +45, R -45, Ls +135, Rs -135 (the L R Ls Rs order).
- ring-8: eight speakers every 45 deg from +22.5 (a front pair, no centre speaker: the usual
  octophonic ring; stereo material sits between channels 1 and 2).
- hemisphere-16: the common 8-6-2 dome: 8 at 0 deg (from +22.5), 6 at 40 deg (from 0: a front
  speaker, staggered against the ring below), 2 at 75 deg (left and right).
- dome-93: a Satosphere-like dome, rings of 32-32-16-8-4-1 at 0, 18, 32, 45, 60 and 90 deg (the
  elevations of the public SpatGRIS template "Dome93(32-32-16-8-4-1)Subs5 Satosphere"), every
  other ring turned by half its spacing so the rings interleave; channels 1-93 bottom ring
  first, then 5 subwoofers on channels 94-98 at ear level (0, +-72, +-144 deg).
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.spatial.frame import aed_to_xyz
from agent.spatial.layout import Layout, Speaker, save_layout

HERE = Path(__file__).resolve().parent
SOURCE = "stage-agent layouts/make_layouts.py"


def _speaker(n: int, az: float, el: float, groups: tuple[str, ...],
             subwoofer: bool = False) -> Speaker:
    x, y, z = (float(c) for c in aed_to_xyz(_wrap(az), el, 1.0))
    return Speaker(id=n, channel=n, xyz=(x, y, z), groups=groups, subwoofer=subwoofer)


def _wrap(az: float) -> float:
    """Azimuth into (-180, 180]."""
    az = (az + 180.0) % 360.0 - 180.0
    return 180.0 if az == -180.0 else az + 0.0


def _ring(first: int, count: int, el: float, start: float, group: str) -> list[Speaker]:
    """`count` speakers clockwise from azimuth `start`, channels from `first`."""
    step = 360.0 / count
    return [_speaker(first + i, start - i * step, el, (group,)) for i in range(count)]


def stereo() -> Layout:
    return Layout("stereo", (_speaker(1, 30.0, 0.0, ("front",)),
                             _speaker(2, -30.0, 0.0, ("front",))), SOURCE)


def quad() -> Layout:
    azimuths = (45.0, -45.0, 135.0, -135.0)
    return Layout("quad", tuple(_speaker(i + 1, a, 0.0, ("ring",))
                                for i, a in enumerate(azimuths)), SOURCE)


def ring_8() -> Layout:
    return Layout("ring-8", tuple(_ring(1, 8, 0.0, 22.5, "ring")), SOURCE)


def hemisphere_16() -> Layout:
    speakers = (_ring(1, 8, 0.0, 22.5, "ring-0") + _ring(9, 6, 40.0, 0.0, "ring-40")
                + _ring(15, 2, 75.0, 90.0, "ring-75"))
    return Layout("hemisphere-16", tuple(speakers), SOURCE)


def dome_93() -> Layout:
    rings = ((32, 0.0), (32, 18.0), (16, 32.0), (8, 45.0), (4, 60.0))
    speakers: list[Speaker] = []
    for k, (count, el) in enumerate(rings):
        start = 0.0 if k % 2 == 0 else 180.0 / count  # odd rings turned by half a step
        speakers += _ring(len(speakers) + 1, count, el, start, f"ring-{el:g}")
    speakers.append(_speaker(len(speakers) + 1, 0.0, 90.0, ("zenith",)))
    for i, az in enumerate((0.0, -72.0, -144.0, 144.0, 72.0)):
        speakers.append(_speaker(94 + i, az, 0.0, ("subs",), subwoofer=True))
    return Layout("dome-93", tuple(speakers), SOURCE)


LAYOUTS = {"stereo": stereo, "quad": quad, "ring-8": ring_8, "hemisphere-16": hemisphere_16,
           "dome-93": dome_93}


def main(out_dir: Path = HERE) -> int:
    for name, build in LAYOUTS.items():
        path = out_dir / f"{name}.toml"
        save_layout(build(), path, coordinates="aed")
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
