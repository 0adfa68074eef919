"""Panning for rigs that take per-speaker gains: VBAP (Pulkki 1997) and DBAP (Lossius 2009).

Pure numpy/scipy, no I/O, vectorised across voices (no Python loop over voices). Every vector is
in the ADM frame of `agent.spatial.frame` (x right, y front, z up; azimuth positive to the left).
Every gain row has unit power (sum of squares 1): constant power wherever a source goes.

VBAP (`Vbap`), chosen once from the layout:
- one speaker: gain 1, whatever the direction;
- planar (every speaker within +-5 degrees of the horizon: stereo, quad, rings): 2-D VBAP on the
  horizontal projection, over pairs of speakers adjacent in azimuth. A pair whose gap is 180
  degrees or more is not a pair (the arc is open there: stereo has one pair, not two), so a
  source outside an open arc goes to the nearest speaker, which is an edge speaker of the arc
  (stereo: anything left of the left speaker, and the back-left half, is all on the left one;
  two opposite speakers are no pair either: each source goes to the nearer one).
  A source's elevation is ignored (projected on the horizon);
- 3-D: triangles of the convex hull of the speaker directions (scipy.spatial.ConvexHull). A dome
  (no speaker below -10 degrees while some are above the planar band) gets an imaginary speaker
  at the nadir (0, 0, -1): its gain is discarded and the rest renormalised, so a source below the
  horizon plays on the lowest real speakers. Triangles with a near-zero determinant (slivers,
  the zero-area pieces qhull makes of coplanar faces) and faces whose plane passes near or behind
  the listener (a rig that does not surround the listener) are dropped. A source no kept triangle
  covers (e.g. behind a front-only wall) goes to the nearest real speaker.
  If the layout cannot be triangulated (fewer than 4 points, all in one plane), the planar rule
  is used on its horizontal projection.

Directions without a direction — zero length (under 1e-12), or (planar layouts) straight up or
down, or (domes) exactly at the imaginary nadir — get equal power: on every speaker for the first
two (the voice is "in the middle of the room"), on the real speakers around the nadir for the
last.
Exact zeros are kept: gains below 1e-12 (rounding noise) are set to 0 before normalising.

The full search computes every voice's gains on every triangle (one BLAS product) and picks,
per voice, the triangle whose smallest gain is largest.

Tick to tick (`Vbap.gains`, cached=True, the default), a `Vbap` remembers, per row of
`directions`, the triangle (pair) that row played on last call. Each voice tries that triangle
and the ones sharing a real speaker with it (where a voice moving smoothly goes next; about 13 on
a 256-speaker dome), in one batched product, and keeps the one whose smallest gain is largest. If
that smallest gain is >= SURE (1e-8, for the unit source) the voice is done: its source is
strictly inside that triangle's cone, and the kept triangles' cones do not overlap, so the full
search can pick no other. Only the other voices (a jump, a source on an edge or at a speaker,
without a direction or outside every triangle, a new voice) get the full search, on those voices
only. The result is thus the full search's, to rounding (1e-15): the cache only saves time, and a
wrong guess (voices reordered, another caller's directions) only costs a search. So that it saves
time, a caller passes its voices in a stable order (the spatial runtime's frames always list them
in the same order) and keeps a `Vbap` of its own (the cache is not shared between threads either).
cached=False always runs the full search and leaves the cache alone.

Paced at 50 Hz, a tick runs on cold CPU caches, and what `gains` costs is then mostly how many
distinct numpy operations it runs, not their arithmetic. The common path (every voice sure) is
kept to about 17 small ones: the source is not normalised (the tests scale with its length), its
finiteness is checked on the squared lengths already needed, nothing is clipped (every gain is
>= SURE), matmul and ufunc.reduce stand in for einsum and ndarray.min.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import ConvexHull, QhullError

PLANAR_DEG = 5.0  # all speakers within this elevation: the planar rule
DOME_FLOOR_DEG = -10.0  # no speaker below this (and some above the planar band): a dome, add nadir
DET_MIN = 1e-6  # |det| of a triangle's three unit vectors below this: a sliver, dropped
FACE_MIN = 1e-3  # a face whose plane is closer to the listener than this (or behind): dropped
EPS = 1e-6  # a triangle (pair) covers a source if its smallest unnormalised gain is >= -EPS
TINY = 1e-12  # gains below this are rounding noise: exact zero
# A voice whose smallest gain on its last triangle (pair) is >= SURE is strictly inside it: no
# other kept triangle can cover it, so the full search would pick the same one. Well above the
# gains' rounding error (< 1e-9 even for a triangle at DET_MIN: inverse entries below 1 / DET_MIN).
SURE = 1e-8
NEAR_MAX = 24  # faces tried around a voice's last one (those sharing a speaker, nearest first)


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of v (..., k) scaled to unit length, and their lengths (...). Zero rows stay zero."""
    norm = np.sqrt(np.einsum("...i,...i->...", v, v))
    safe = np.where(norm > TINY, norm, 1.0)
    return v / safe[..., None], norm


def _unit_power(g: np.ndarray) -> np.ndarray:
    """Rows of g (V, N) scaled to unit power (rows that are all zero stay zero)."""
    power = np.sqrt(np.einsum("vn,vn->v", g, g))
    out: np.ndarray = g / np.where(power > 0.0, power, 1.0)[:, None]
    return out


class Vbap:
    """VBAP gains for one speaker layout; `gains` is the per-tick call (see the module doc).

    After construction: `mode` ("single", "planar" or "3d"), `speakers` (N, 3) unit directions,
    `triangles` (T, 3) speaker indices (index N is the imaginary nadir when `has_nadir`),
    `pairs` (P, 2) in planar mode, `nadir_ring` the real speakers that share a triangle with it.
    After each `gains` call: `searched`, how many voices needed the full search (every voice
    with cached=False), and `moved`, how many are on another face than the call before.
    """

    def __init__(self, speakers: np.ndarray) -> None:
        """`speakers` (N, 3): positions or directions in the ADM frame; only directions count."""
        s = np.asarray(speakers, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != 3 or s.shape[0] < 1 or not np.all(np.isfinite(s)):
            raise ValueError(f"speakers must be a finite (N, 3) array, not shape {s.shape}")
        unit, norm = _unit(s)
        if np.any(norm <= TINY):
            raise ValueError("a speaker at the listener's position has no direction")
        self.speakers: np.ndarray = unit  # (N, 3) unit directions
        self.n_speakers = int(s.shape[0])
        self.has_nadir = False
        self.triangles: np.ndarray = np.zeros((0, 3), dtype=np.intp)  # (T, 3); index N = nadir
        self.pairs: np.ndarray = np.zeros((0, 2), dtype=np.intp)  # (P, 2), planar mode
        self._flat: np.ndarray = np.zeros((0, 2))  # (N, 2) horizontal unit directions, planar
        self._inverse: np.ndarray = np.zeros((0, 3, 3))  # (T, 3, 3) or (P, 2, 2)
        self._stacked: np.ndarray = np.zeros((3, 0))  # (k, k*F): _inverse[f, i, j] at [j, i*F+f]
        self.nadir_ring: np.ndarray = np.zeros(0, dtype=np.intp)  # real speakers by the nadir
        self._last: np.ndarray = np.zeros(0, dtype=np.intp)  # (V,): each row's face, last call
        self._near: np.ndarray = np.zeros((0, 1), dtype=np.intp)  # (F, K): each, those around
        self._blocks: np.ndarray = np.zeros((0, 3, 3))  # (F, k, k*K): _near's inverses, stacked
        self._real: np.ndarray = np.zeros((0, 3))  # (F, k): 1, or 0 for the imaginary nadir
        self._reach = 0.0  # no face gives a gain above this to a source of length 1
        self._rows: np.ndarray = np.zeros((0, 1), dtype=np.intp)  # (V, 1): arange, kept
        self._before: np.ndarray = np.zeros(0, dtype=np.intp)  # _last before the last call
        self.searched = 0  # voices that needed the full search in the last call
        elevation = np.degrees(np.arcsin(np.clip(unit[:, 2], -1.0, 1.0)))
        if self.n_speakers == 1:
            self.mode = "single"
        elif np.all(np.abs(elevation) <= PLANAR_DEG + 1e-9) or not self._triangulate(elevation):
            self.mode = "planar"
            self._pair_up()
        else:
            self.mode = "3d"
        f, k, _ = self._inverse.shape
        stacked = np.transpose(self._inverse, (2, 1, 0)).reshape(k, k * f)
        self._stacked = np.ascontiguousarray(stacked)
        if self.mode != "single":
            self._neighbours()

    # -- construction ------------------------------------------------------------------------------
    def _triangulate(self, elevation: np.ndarray) -> bool:
        """Hull triangles and their inverses; False if the layout cannot be triangulated."""
        points = self.speakers
        dome = bool(elevation.min() >= DOME_FLOOR_DEG and elevation.max() > PLANAR_DEG)
        if dome:
            points = np.vstack([points, [0.0, 0.0, -1.0]])  # imaginary speaker, index N
        if len(points) < 4:
            return False
        try:
            hull = ConvexHull(points)
        except QhullError:  # flat or otherwise degenerate input
            return False
        tri = np.asarray(hull.simplices, dtype=np.intp)  # (T, 3) point indices
        # hull.equations rows: outward unit normal n and offset c, n.x + c <= 0 inside; the
        # plane's signed distance from the listener is -c (> 0 when the listener is inside).
        facing = -np.asarray(hull.equations)[:, 3] > FACE_MIN
        m = np.transpose(points[tri], (0, 2, 1))  # (T, 3, 3): column k = direction of vertex k
        keep = facing & (np.abs(np.linalg.det(m)) > DET_MIN)
        if not np.any(keep):
            return False
        self.triangles = tri[keep]
        self._inverse = np.linalg.inv(m[keep])  # (T, 3, 3): g = inverse @ p, p = M g
        self.has_nadir = dome
        if dome:
            ring = np.unique(self.triangles[np.any(self.triangles == self.n_speakers, axis=1)])
            self.nadir_ring = ring[ring < self.n_speakers]
        return True

    def _pair_up(self) -> None:
        """Planar mode: pairs of azimuth neighbours (gap under 180 degrees) and 2x2 inverses."""
        flat, _ = _unit(self.speakers[:, :2])  # (N, 2) horizontal unit directions (x, y)
        azimuth = np.arctan2(-flat[:, 0], flat[:, 1])  # ADM azimuth, positive left
        order = np.argsort(azimuth, kind="stable")
        pairs = np.stack([order, np.roll(order, -1)], axis=1)  # (N, 2): each with its left
        m = np.transpose(flat[pairs], (0, 2, 1))  # (N, 2, 2): column k = direction of speaker k
        # det > 0 when the second is counter-clockwise (to the left) of the first by < 180 deg
        det = np.linalg.det(m)
        keep = det > DET_MIN
        self.pairs = pairs[keep]
        self._flat = flat
        self._inverse = np.linalg.inv(m[keep]) if np.any(keep) else np.zeros((0, 2, 2))

    def _neighbours(self) -> None:
        """`_near` (F, K): each face, then its neighbours, the faces sharing a real speaker with
        it, the nearest (by the angle between the faces' centres) first, at most NEAR_MAX of them,
        padded with the face itself. `_blocks` (F, k, k*K): their inverses, stacked so that
        src @ _blocks[f] gives the gains (k, K) of src on each of them (as `_stacked` does for
        all faces). `_real` (F, k): which of each face's corners are real speakers."""
        faces = self.pairs if self.mode == "planar" else self.triangles
        n = self.n_speakers
        self._real = (faces < n).astype(np.float64)
        if len(faces):
            self._reach = float(np.abs(self._inverse).sum(axis=2).max())
        if self.mode == "planar":
            corners = self._flat
        else:
            corners = np.vstack([self.speakers, [[0.0, 0.0, -1.0]]])
        centre, _ = _unit(corners[faces].sum(axis=1))  # (F, k)
        touching: list[list[int]] = [[] for _ in range(n)]
        for f, face in enumerate(faces.tolist()):
            for speaker in face:
                if speaker < n:
                    touching[speaker].append(f)
        near = []
        for f, face in enumerate(faces.tolist()):
            around = np.array(sorted({g for s in face if s < n for g in touching[s]} - {f}),
                              dtype=np.intp)
            order = np.argsort(-(centre[around] @ centre[f]), kind="stable")
            near.append([f, *around[order][:NEAR_MAX].tolist()])
        width = max((len(row) for row in near), default=1)
        self._near = np.array([row + row[:1] * (width - len(row)) for row in near],
                              dtype=np.intp).reshape(len(faces), width)
        f, k = faces.shape
        blocks = np.transpose(self._inverse[self._near], (0, 3, 2, 1))  # (F, j, i, K)
        self._blocks = np.ascontiguousarray(blocks.reshape(f, k, k * width))

    @property
    def moved(self) -> int:
        """How many voices the last call (cached) found on another face than the call before."""
        if len(self._before) != len(self._last):
            return len(self._last)
        return int(np.count_nonzero(self._before != self._last))

    # -- per tick ----------------------------------------------------------------------------------
    def gains(self, directions: np.ndarray, *, cached: bool = True) -> np.ndarray:
        """Gains (V, N), unit power per row, for source directions (V, 3) (lengths ignored).

        cached: start from each row's triangle (pair) of the last call (see the module doc,
        "Tick to tick"); the result is the same either way, to rounding. False: the full search
        for every voice, and the cache left alone.
        """
        d = np.asarray(directions, dtype=np.float64)
        if d.size == 0:  # no voice this tick (np.array([]) included)
            d = d.reshape(0, 3)
        if d.ndim != 2 or d.shape[1] != 3:
            raise ValueError(f"directions must be (V, 3), not shape {d.shape}")
        n, v = self.n_speakers, d.shape[0]
        self.searched = 0
        self._before = self._last
        planar = self.mode == "planar"
        src = d[:, :2] if planar else d  # (V, k): k = 2 (planar) or 3
        # (V,) squared lengths (matmul and ufunc.reduce, not einsum and ndarray.max: the
        # common path's few distinct operations, module doc)
        sq = np.matmul(src[:, None, :], src[:, :, None]).reshape(v)
        top = float(np.maximum.reduce(sq)) if v else 0.0
        # Finite unless a value is not, or values near 1e154 overflow it: then the closer look
        # (rather than an isfinite pass over d every tick). z is not in sq in planar mode.
        finite = math.isfinite(top) and (self.mode == "3d" or math.isfinite(float(d.sum())))
        if not finite and not np.isfinite(d).all():
            raise ValueError("directions must be finite")
        if v == 0 or self.mode == "single":
            return np.ones((v, 1)) if self.mode == "single" else np.zeros((0, n))
        faces = self.pairs if planar else self.triangles
        if len(self._rows) != v:
            self._rows = np.arange(v)[:, None]
        follow = cached and len(faces) > 0 and math.isfinite(top)
        if follow:
            face, g = self._follow(src)  # (V,), (V, k): gains of the unnormalised source
            # Every voice strictly inside its face (smallest gain of the unit source >= SURE):
            # covered, power > 0, nothing to clip: the common path. A source shorter than TINY
            # (no direction) has no gain above _reach * TINY, so the second test keeps it out
            # without a look at each length.
            sure = SURE * math.sqrt(top)
            if float(np.minimum.reduce(g, axis=None)) >= sure > 2.0 * self._reach * TINY:
                self._last = face
                return self._spread(face, g, faces, may_be_silent=False)[0]
        length = np.sqrt(sq)
        # unit sources; those shorter than TINY have no direction (gains gives them equal power,
        # whatever p they get here)
        p = src / np.maximum(length, TINY)[:, None]
        no_direction = length <= TINY
        if follow:
            unsure = np.flatnonzero((g.min(axis=1) < SURE * length) | no_direction)  # (U,)
            covered = np.ones(v, dtype=bool)
            face[unsure], g[unsure], covered[unsure] = self._pick(p[unsure], faces)
            self._last = face
            self.searched = len(unsure)
        else:
            face, g, covered = self._pick(p, faces)  # (V,), (V, k), (V,)
            self.searched = v
        out, power = self._spread(face, g, faces)
        odd = ~covered | (power <= 0.0) | no_direction  # (V,): rare, handled apart (no loop)
        if np.any(odd):
            self._odd(out, p, no_direction, covered, odd)
        return out

    def _spread(self, face: np.ndarray, g: np.ndarray, faces: np.ndarray,
                may_be_silent: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Gains (V, N) at unit power from each voice's face (V,) and its gains (V, k) there
        (of any positive scale per voice), and the power (V,) they were divided by (0: no real
        gain). The imaginary nadir's gain is left out of the power, and lands in a column N that
        is dropped. may_be_silent: whether some voice may have no real gain (power 0; else it
        is >= TINY, as no gain between 0 and TINY is kept)."""
        real = g * self._real[face]
        power = np.sqrt(np.matmul(real[:, None, :], g[:, :, None]).reshape(len(g)))  # (V,)
        out = np.zeros((len(face), self.n_speakers + 1))
        out[self._rows, faces[face]] = g / (np.maximum(power, TINY) if may_be_silent
                                            else power)[:, None]
        return out[:, :self.n_speakers], power

    def _follow(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each voice's face and its gains there (V,), (V, k), among its face of the last call
        and those around it, for sources src (V, k) of any length: the one whose smallest gain
        is largest, as the full search picks (module doc). Trying them all at once, rather than
        the last face first and those around only for the voices that left it, takes fewer
        distinct numpy operations: faster when the caches are cold (module doc), even when
        nobody moves."""
        v, k = src.shape
        last = self._last
        if len(last) != v:  # voices came or went: rows beyond the old count start at face 0
            last = np.zeros(v, dtype=np.intp)
            m = min(v, len(self._last))
            last[:m] = self._last[:m]
        self._before = last
        gm = np.matmul(src[:, None, :], self._blocks[last]).reshape(v, k, -1)  # (V, k, K)
        best = np.minimum.reduce(gm, axis=1).argmax(axis=1)  # (V,)
        return self._near[last, best], gm[self._rows[:, 0], :, best]

    def _odd(self, out: np.ndarray, p: np.ndarray, no_direction: np.ndarray,
             covered: np.ndarray, odd: np.ndarray) -> None:
        """Rows of out (V, N) whose source has no direction, is outside, or is at the nadir."""
        n = self.n_speakers
        out[odd] = 0.0
        no_direction &= odd
        at_nadir = odd & covered & ~no_direction & self.has_nadir  # covered, but no real gain
        outside = odd & ~no_direction & ~at_nadir  # no triangle/pair covers it
        if np.any(outside):
            speakers = self._flat if self.mode == "planar" else self.speakers  # (N, k)
            out[outside, np.argmax(p[outside] @ speakers.T, axis=1)] = 1.0  # the nearest one
        if np.any(at_nadir):
            out[np.ix_(at_nadir, self.nadir_ring)] = 1.0 / np.sqrt(len(self.nadir_ring))
        out[no_direction] = 1.0 / np.sqrt(n)

    def _pick(self, p: np.ndarray,
              faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per voice, the face (triangle or pair) that covers it best, and its clipped gains.

        p (V, k) unit sources; faces (F, k) speaker indices; self._inverse (F, k, k).
        Returns the chosen face (V,), its gains (V, k), negatives clipped to 0, and `covered`
        (V,): that face covers the source (its smallest gain >= -EPS). The full search.
        """
        v, k = p.shape
        f = len(faces)
        if f == 0:  # (no face: a planar layout of two opposite speakers)
            return np.zeros(v, dtype=np.intp), np.zeros((v, k)), np.zeros(v, dtype=bool)
        # g[v, i, f] = sum_j inverse[f, i, j] p[v, j], i.e. einsum("fij,vj->vif"), done as one
        # BLAS product with the inverses stacked by row i: (V, k) @ (k, k*F) -> (V, k, F). The
        # gain index i is kept outside F so that the minimum below runs over contiguous rows
        # (numpy's min over a trailing axis of 3 is ten times slower than this).
        g = (p @ self._stacked).reshape(v, k, f)  # (V, k, F)
        worst = g[:, 0]
        for i in range(1, k):  # k is 2 or 3: a loop over gains, not over voices
            worst = np.minimum(worst, g[:, i])  # (V, F): each face's smallest gain per voice
        best = np.argmax(worst, axis=1)  # (V,): the face whose smallest gain is largest
        rows = np.arange(v)
        covered = worst[rows, best] >= -EPS  # (V,)
        gb = g[rows, :, best]  # (V, k): the chosen face's gains
        gb[gb < TINY] = 0.0  # clip tiny negatives (and rounding noise) to exact zero
        return best, gb, covered


def dbap_gains(positions: np.ndarray, speakers: np.ndarray, rolloff_db: float = 6.0,
               blur: float = 0.1) -> np.ndarray:
    """DBAP gains (V, N), unit power per row (Lossius 2009).

    positions (V, 3) and speakers (N, 3) in the same units (the normalised ADM frame: the rig's
    surface at distance 1). d_i = sqrt(|s - p_i|^2 + blur^2), g_i = k / d_i^a with
    a = rolloff_db / (20 log10 2) (6 dB per doubling of distance: a ~ 1) and
    k = 1 / sqrt(sum d_i^(-2a)). All speakers sound; the nearest is the loudest. Sources outside
    the speakers' hull are not clamped (DBAP has no notion of them). With blur 0, a source exactly
    at a speaker plays on that speaker (on each coincident one, equally). Vectorised: (V, N, 3)
    differences, no loop.
    """
    s = np.asarray(positions, dtype=np.float64)
    sp = np.asarray(speakers, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 3 or sp.ndim != 2 or sp.shape[1] != 3 or len(sp) == 0:
        raise ValueError(f"positions (V, 3) and speakers (N >= 1, 3), not {s.shape}, {sp.shape}")
    if not (rolloff_db > 0.0 and blur >= 0.0):
        raise ValueError("rolloff_db must be > 0 and blur >= 0")
    a = rolloff_db / (20.0 * np.log10(2.0))
    diff = s[:, None, :] - sp[None, :, :]  # (V, N, 3)
    d2 = np.einsum("vni,vni->vn", diff, diff) + blur * blur  # (V, N) squared distances
    coincident = d2 <= 1e-24  # within 1e-12 of a speaker (blur 0 only): that speaker alone
    with np.errstate(divide="ignore"):
        w = d2 ** (-a / 2.0)  # (V, N) d^-a, from d^2
    hit = np.any(coincident, axis=1)
    if np.any(hit):
        w[hit] = coincident[hit].astype(np.float64)
    return _unit_power(w)
