"""VBAP and DBAP: properties on many layouts (hypothesis) and exact small examples."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.spatial.frame import aed_to_xyz, xyz_to_aed
from agent.spatial.panning import DET_MIN, SURE, Vbap, dbap_gains

R2 = 1.0 / np.sqrt(2.0)


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    points: np.ndarray = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return points


def icosahedron() -> np.ndarray:
    g = (1.0 + np.sqrt(5.0)) / 2.0
    base = [(0.0, a, b * g) for a, b in itertools.product((-1.0, 1.0), repeat=2)]
    return unit(np.array([np.roll(p, k) for p in base for k in range(3)]))


OCTAHEDRON = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                      dtype=np.float64)
CUBE = np.array(list(itertools.product((-1.0, 1.0), repeat=3))) / np.sqrt(3.0)
SPHERES = {"octahedron": OCTAHEDRON, "icosahedron": icosahedron(), "cube": CUBE,
           "fibonacci50": fibonacci_sphere(50)}
RINGS = {"quad": aed_to_xyz(np.array([45.0, -45.0, 135.0, -135.0]), 0.0),
         "ring8": aed_to_xyz(np.arange(8) * 45.0, 0.0),
         "itu5": aed_to_xyz(np.array([0.0, 30.0, -30.0, 110.0, -110.0]), 0.0),
         "wobbly6": aed_to_xyz(np.array([0.0, 60.0, 120.0, 180.0, -120.0, -60.0]),
                               np.array([4.0, -3.0, 5.0, 0.0, -5.0, 2.0]))}
STEREO = aed_to_xyz(np.array([30.0, -30.0]), 0.0)  # index 0 is left (x < 0)
# Rings at 0, 35 and 65 degrees and a top speaker: no speaker below -10 -> imaginary nadir.
RING_DOME = np.vstack([aed_to_xyz(np.arange(8) * 45.0, 0.0),
                       aed_to_xyz(np.arange(6) * 60.0 + 30.0, 35.0),
                       aed_to_xyz(np.arange(4) * 90.0, 65.0), [[0.0, 0.0, 1.0]]])
FIB_DOME = (lambda p: p[p[:, 2] >= 0.0])(fibonacci_sphere(80))  # 40 points, lowest just above 0
CAP_DOME = np.vstack([aed_to_xyz(np.arange(8) * 45.0, 0.0),  # no top speaker: an octagonal cap
                      aed_to_xyz(np.arange(8) * 45.0 + 22.5, 60.0)])
DOMES = {"ring_dome": RING_DOME, "fibonacci_dome": FIB_DOME, "cap_dome": CAP_DOME}
VBAPS = {name: Vbap(s) for name, s in {**SPHERES, **RINGS, **DOMES, "stereo": STEREO}.items()}

coordinate = st.floats(-1.0, 1.0, allow_nan=False)
direction = st.tuples(coordinate, coordinate, coordinate).filter(
    lambda v: float(np.linalg.norm(v)) > 1e-3)
batch = st.lists(direction, min_size=1, max_size=16).map(lambda v: np.array(v, dtype=np.float64))


def velocity(vbap: Vbap, g: np.ndarray) -> np.ndarray:
    """The panned direction: normalised sum of g_i l_i, (V, 3)."""
    return unit(np.asarray(g @ vbap.speakers))


def on_batches(layouts: dict[str, np.ndarray]) -> Callable[[Callable[..., None]], Any]:
    """A property test `(name, p)`: per layout in `layouts`, 60 random batches of sources."""
    def wrap(test: Callable[..., None]) -> Any:
        return pytest.mark.parametrize("name", list(layouts))(
            settings(max_examples=60, deadline=None)(given(p=batch)(test)))
    return wrap


def check_basic(g: np.ndarray, n: int, most: int) -> None:
    assert g.shape[1] == n
    assert np.all(g >= 0.0)
    np.testing.assert_allclose(np.sum(g * g, axis=1), 1.0, atol=1e-9)
    assert np.all(np.count_nonzero(g, axis=1) <= most)


def test_modes() -> None:
    assert {n: VBAPS[n].mode for n in VBAPS} == {
        **dict.fromkeys(SPHERES, "3d"), **dict.fromkeys(RINGS, "planar"),
        **dict.fromkeys(DOMES, "3d"), "stereo": "planar"}
    assert [VBAPS[n].has_nadir for n in (*SPHERES, *DOMES)] == [False] * 4 + [True] * 3
    assert len(VBAPS["icosahedron"].triangles) == 2 * 12 - 4  # closed hull: 2V - 4
    assert len(VBAPS["octahedron"].triangles) == 8
    for vbap in VBAPS.values():
        if vbap.mode == "3d":
            corners = np.vstack([vbap.speakers, [[0.0, 0.0, -1.0]]])[vbap.triangles]
            assert np.all(np.abs(np.linalg.det(corners)) > DET_MIN)


@on_batches(SPHERES)
def test_full_sphere_reproduces_the_direction(name: str, p: np.ndarray) -> None:
    vbap = VBAPS[name]
    g = vbap.gains(p)
    check_basic(g, vbap.n_speakers, 3)
    np.testing.assert_allclose(velocity(vbap, g), unit(p), atol=1e-6)
    # vectorised across voices == one voice at a time
    np.testing.assert_allclose(g, np.vstack([vbap.gains(row[None]) for row in p]), atol=1e-12)


@on_batches(RINGS)
def test_closed_rings_reproduce_the_azimuth(name: str, p: np.ndarray) -> None:
    vbap = VBAPS[name]
    g = vbap.gains(p)
    horizontal = np.hypot(p[:, 0], p[:, 1]) > 1e-9
    check_basic(g[horizontal], vbap.n_speakers, 2)
    flat = np.column_stack([p[:, :2], np.zeros(len(p))])[horizontal]
    # the planar rule pans between the speakers' horizontal unit directions
    speakers = unit(np.column_stack([vbap.speakers[:, :2], np.zeros(vbap.n_speakers)]))
    np.testing.assert_allclose(unit(g[horizontal] @ speakers), unit(flat), atol=1e-6)


@on_batches(DOMES)
def test_domes_give_unit_power_on_real_speakers(name: str, p: np.ndarray) -> None:
    vbap = VBAPS[name]
    g = vbap.gains(p)
    u = unit(p)
    away_from_nadir = u[:, 2] > -1.0 + 1e-9
    check_basic(g[away_from_nadir], vbap.n_speakers, 3)
    np.testing.assert_allclose(np.sum(g * g, axis=1), 1.0, atol=1e-9)
    # above the speakers around the nadir, real triangles hold the source: the direction is exact
    above = u[:, 2] > vbap.speakers[vbap.nadir_ring, 2].max() + 0.01  # arcs bulge up a little
    np.testing.assert_allclose(velocity(vbap, g[above]), u[above], atol=1e-6)
    # below, the nadir's gain is dropped: that changes z only, so the azimuth is still exact
    side = np.hypot(u[:, 0], u[:, 1]) > 1e-6
    panned = velocity(vbap, g[side])[:, :2]
    np.testing.assert_allclose(unit(panned), unit(u[side, :2]), atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(azimuth=st.floats(-180.0, 180.0), elevation=st.floats(-89.9, -0.001))
def test_below_a_horizon_ring_the_azimuth_is_kept_on_real_speakers(azimuth: float,
                                                                 elevation: float) -> None:
    vbap = VBAPS["ring_dome"]
    g = vbap.gains(aed_to_xyz(azimuth, elevation)[None])
    check_basic(g, vbap.n_speakers, 2)
    assert np.all(g[0, 8:] == 0.0)  # only the horizon ring sounds
    panned = xyz_to_aed(g @ vbap.speakers)[0]
    assert panned[1] == pytest.approx(0.0, abs=1e-9)
    assert (panned[0] - azimuth + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6)


def test_the_nadir_of_a_dome_is_equal_power_on_the_ring_around_it() -> None:
    g = VBAPS["ring_dome"].gains(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -0.5]]))
    expected = np.r_[np.full(8, 1.0 / np.sqrt(8.0)), np.zeros(11)]
    np.testing.assert_allclose(g, [expected, expected], atol=1e-12)


@pytest.mark.parametrize("name", list(VBAPS))
def test_a_source_at_a_speaker_plays_only_on_that_speaker(name: str) -> None:
    vbap = VBAPS[name]
    np.testing.assert_allclose(vbap.gains(vbap.speakers * 0.7), np.eye(vbap.n_speakers),
                               atol=1e-9)


def test_stereo() -> None:
    vbap = VBAPS["stereo"]
    left = int(np.argmin(vbap.speakers[:, 0]))
    assert vbap.speakers[left, 0] < 0.0
    g = vbap.gains(aed_to_xyz(np.array([0.0, 30.0, -30.0, 15.0]), 0.0))
    np.testing.assert_allclose(g[0], [R2, R2], atol=1e-12)
    assert g[1, left] == pytest.approx(1.0) and g[1, 1 - left] == 0.0
    assert g[2, 1 - left] == pytest.approx(1.0) and g[2, left] == 0.0
    assert g[3, left] > g[3, 1 - left] > 0.0
    # outside the open arc: the nearest edge speaker, the back included
    g = vbap.gains(aed_to_xyz(np.array([31.0, 90.0, 150.0, 170.0, -100.0, -170.0]), 0.0))
    assert [int(np.argmax(row)) for row in g] == [left] * 4 + [1 - left] * 2
    np.testing.assert_allclose(g.max(axis=1), 1.0)
    # elevation is ignored on a planar rig; straight up has no horizontal direction
    g = vbap.gains(aed_to_xyz(np.array([0.0, 0.0]), np.array([60.0, 90.0])))
    np.testing.assert_allclose(g, [[R2, R2], [R2, R2]], atol=1e-12)


def test_quad_exact() -> None:
    vbap = VBAPS["quad"]  # 45 (front left), -45 (front right), 135, -135
    g = vbap.gains(aed_to_xyz(np.array([45.0, 0.0, 90.0, 180.0, -90.0]), 0.0))
    np.testing.assert_allclose(g, [[1, 0, 0, 0], [R2, R2, 0, 0], [R2, 0, R2, 0],
                                   [0, 0, R2, R2], [0, R2, 0, R2]], atol=1e-12)


def test_a_direction_of_zero_length_is_equal_power_everywhere() -> None:
    for vbap in VBAPS.values():
        assert vbap.gains(np.array([])).shape == (0, vbap.n_speakers)  # no voice this tick
        g = vbap.gains(np.zeros((2, 3)))
        np.testing.assert_allclose(g, np.full((2, vbap.n_speakers), vbap.n_speakers ** -0.5))


def test_single_speaker_and_outside_a_front_wall() -> None:
    np.testing.assert_array_equal(Vbap(np.array([[0.0, 1.0, 0.0]])).gains(np.eye(3)),
                                  np.ones((3, 1)))
    wall = aed_to_xyz(*np.meshgrid([-40.0, 0.0, 40.0], [-30.0, 0.0, 30.0]))
    vbap = Vbap(wall.reshape(-1, 3))
    assert vbap.mode == "3d" and not vbap.has_nadir
    inside = vbap.gains(aed_to_xyz(10.0, 10.0)[None])
    np.testing.assert_allclose(velocity(vbap, inside), aed_to_xyz(10.0, 10.0)[None], atol=1e-9)
    behind = aed_to_xyz(np.array([170.0, 100.0]), np.array([0.0, 25.0]))
    g = vbap.gains(behind)  # no triangle covers it: the nearest speaker
    np.testing.assert_array_equal(np.count_nonzero(g, axis=1), [1, 1])
    nearest = np.argmax(behind @ vbap.speakers.T, axis=1)
    np.testing.assert_array_equal(np.argmax(g, axis=1), nearest)


def test_untriangulable_layouts_fall_back_to_planar_and_bad_input_is_refused() -> None:
    vbap = Vbap(aed_to_xyz(np.array([30.0, -30.0]), np.array([0.0, 40.0])))
    assert vbap.mode == "planar"
    check_basic(vbap.gains(aed_to_xyz(np.arange(-180.0, 180.0, 7.0), 0.0)), 2, 2)
    with pytest.raises(ValueError):
        Vbap(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        Vbap(np.ones(3))
    with pytest.raises(ValueError):
        VBAPS["quad"].gains(np.ones(3))
    with pytest.raises(ValueError):
        VBAPS["quad"].gains(np.array([[np.nan, 0.0, 1.0]]))


# -- the tick-to-tick cache -----------------------------------------------------------------------
WALL = aed_to_xyz(*np.meshgrid([-40.0, 0.0, 40.0], [-30.0, 0.0, 30.0])).reshape(-1, 3)
TILTED_PAIR = aed_to_xyz(np.array([30.0, -30.0]), np.array([0.0, 40.0]))  # planar fallback
LAYOUTS = {**SPHERES, **RINGS, **DOMES, "stereo": STEREO, "wall": WALL,
           "tilted_pair": TILTED_PAIR, "single": np.array([[0.0, 1.0, 0.0]])}


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points (len(t), 3) on the great circle from unit a to unit b (not opposite)."""
    omega = np.arccos(np.clip(a @ b, -1.0, 1.0))
    if omega < 1e-12:
        return np.repeat(a[None], len(t), axis=0)
    out: np.ndarray = (np.sin((1.0 - t) * omega)[:, None] * a
                       + np.sin(t * omega)[:, None] * b) / np.sin(omega)
    return out


def corners(vbap: Vbap) -> tuple[np.ndarray, np.ndarray]:
    """Each face's speaker directions (F, k, k) (columns) and the points it is made of."""
    if vbap.mode == "planar":
        flat = unit(vbap.speakers[:, :2])
        return np.transpose(flat[vbap.pairs], (0, 2, 1)), flat
    points = np.vstack([vbap.speakers, [[0.0, 0.0, -1.0]]]) if vbap.has_nadir else vbap.speakers
    return np.transpose(points[vbap.triangles], (0, 2, 1)), points


def face_gains(vbap: Vbap, p: np.ndarray) -> np.ndarray:
    """Every face's unnormalised gains for unit sources p (V, k): (V, F, k), by a plain solve."""
    m, _ = corners(vbap)
    out: np.ndarray = np.linalg.solve(m[None], p[:, None, :, None])[..., 0]
    return out


def cached_equals_full(vbap: Vbap, d: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The cached gains of d (V, 3) (updating the cache), checked against the full search, and
    how many voices the cached call found around their last face, and searched."""
    g = vbap.gains(d)
    moved, searched, before = vbap.moved, vbap.searched, vbap._last.copy()
    np.testing.assert_allclose(g, vbap.gains(d, cached=False), rtol=0.0, atol=1e-12)
    np.testing.assert_array_equal(vbap._last, before)  # the full search leaves the cache alone
    return g, moved, searched


@pytest.mark.parametrize("name", [n for n in LAYOUTS if n != "single"])
@settings(max_examples=40, deadline=None)
@given(p=batch)
def test_no_source_is_strictly_inside_two_faces(name: str, p: np.ndarray) -> None:
    """What the cache rests on: a source whose smallest gain on a face is >= SURE is in no
    other face (the kept faces' cones do not overlap)."""
    vbap = VBAPS.get(name) or Vbap(LAYOUTS[name])
    if vbap.mode == "planar":
        p = p[np.hypot(p[:, 0], p[:, 1]) > 1e-9]  # straight up or down: no direction
    u = unit(p[:, :2]) if vbap.mode == "planar" else unit(p)
    sure = face_gains(vbap, u).min(axis=2) >= SURE  # (V, F)
    assert np.all(sure.sum(axis=1) <= 1)


@pytest.mark.parametrize("name", list(LAYOUTS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_cached_gains_equal_the_full_search_on_smooth_paths(name: str, data: st.DataObject) -> None:
    """Voices orbit (random speeds, crossing edges), ride a great circle from one speaker to
    another (through vertices; along an edge when they are neighbours), or sit at a speaker."""
    vbap = Vbap(LAYOUTS[name])  # a fresh cache
    n, ticks = vbap.n_speakers, 24
    voices = data.draw(st.integers(1, 6))
    paths = []
    for _ in range(voices):
        kind = data.draw(st.sampled_from(["orbit", "speaker_to_speaker", "at_speaker"]))
        if kind == "orbit":
            az0, el0 = data.draw(st.floats(-180.0, 180.0)), data.draw(st.floats(-89.0, 89.0))
            daz, d_el = data.draw(st.floats(-15.0, 15.0)), data.draw(st.floats(-6.0, 6.0))
            k = np.arange(ticks)
            paths.append(aed_to_xyz(az0 + daz * k, np.clip(el0 + d_el * k, -89.9, 89.9)))
        else:
            a, b = vbap.speakers[data.draw(st.integers(0, n - 1))], vbap.speakers[
                data.draw(st.integers(0, n - 1))]
            if kind == "at_speaker" or a @ b < -0.999:
                paths.append(np.repeat(a[None], ticks, axis=0))
            else:
                path = slerp(a, b, np.linspace(0.0, 1.0, ticks))
                path[0], path[-1] = a, b  # exactly at the speakers
                paths.append(path)
    scale = data.draw(st.lists(st.floats(1e-3, 10.0), min_size=voices, max_size=voices))
    d = np.stack(paths, axis=1) * np.array(scale)[:, None]  # (ticks, V, 3), lengths ignored
    if data.draw(st.booleans()):
        d[ticks // 2, 0] = 0.0  # no direction for a tick
    for frame in d:
        cached_equals_full(vbap, frame)


@pytest.mark.parametrize("name", [n for n in LAYOUTS if n != "single"])
def test_near_an_edge_or_a_speaker_the_cache_gives_the_full_search(name: str) -> None:
    """Each face is remembered from the last tick, then the source goes to the middle of one of
    its edges (3-D) or to one of its corners, exactly or just inside or outside (1e-10, 1e-7):
    the cached gains are the full search's (a cache keeping any face that covers the source,
    smallest gain >= -EPS, would be some 1e-7 off just outside). Ties: exactly on an edge or at
    a corner, every face that covers the point gives the same gains, so whichever of them a
    search picks makes no difference."""
    vbap = Vbap(LAYOUTS[name])
    m, _ = corners(vbap)
    k = m.shape[2]
    faces = vbap.pairs if vbap.mode == "planar" else vbap.triangles
    lift = (lambda x: np.column_stack([x, np.zeros(len(x))])) if k == 2 else (lambda x: x)
    centroid = unit(m.sum(axis=2))  # (F, k): strictly inside each face
    spots = [m[:, :, i] for i in range(k)]  # (F, k) each: a corner of each face
    edges = itertools.combinations(range(k), 2) if k == 3 else ()
    spots += [unit(m[:, :, i] + m[:, :, j]) for i, j in edges]  # (3-D) an edge's middle
    for spot, offset in itertools.product(spots, [0.0, 1e-10, -1e-10, 1e-7, -1e-7]):
        target = unit(spot + offset * (centroid - spot))  # offset > 0: inside
        vbap.gains(lift(centroid))
        np.testing.assert_array_equal(vbap._last, np.arange(len(faces)))  # each on its face
        g = cached_equals_full(vbap, lift(target))[0]
        if offset != 0.0:
            continue
        fg = face_gains(vbap, target)  # (F, F', k): every face's gains for every target
        for row, f in zip(*np.nonzero(fg.min(axis=2) >= -1e-12), strict=True):
            gf = np.where(fg[row, f] < 1e-12, 0.0, fg[row, f])
            gf[faces[f] >= vbap.n_speakers] = 0.0  # the imaginary nadir's, dropped
            if np.any(gf > 0.0):  # (not the nadir itself)
                expected = np.zeros(vbap.n_speakers + 1)
                expected[faces[f]] = gf
                np.testing.assert_allclose(g[row], unit(expected[:-1]), rtol=0.0, atol=1e-12)


def test_the_cache_spares_the_search_for_voices_that_move_smoothly() -> None:
    vbap = Vbap(fibonacci_sphere(50))
    rng = np.random.default_rng(3)
    az, el = rng.uniform(-180.0, 180.0, 16), rng.uniform(-60.0, 60.0, 16)
    rate = rng.uniform(-3.0, 3.0, 16)  # degrees per tick
    cached_equals_full(vbap, aed_to_xyz(az, el))  # the first call: a guess (face 0), mostly wrong
    moved, searched = [], []
    for k in range(1, 100):
        _, m, n = cached_equals_full(vbap, aed_to_xyz(az + rate * k, el))
        moved.append(m)
        searched.append(n)
    assert sum(searched) == 0  # a voice that leaves its triangle is found on one around it
    assert sum(moved) > 20
    d = aed_to_xyz(az, el)
    vbap.gains(d)
    vbap.gains(d)
    assert vbap.moved == vbap.searched == 0  # nobody moved
    vbap.gains(d, cached=False)
    assert vbap.searched == 16
    vbap.gains(-d)  # everybody jumps to the opposite side: too far for the faces around
    assert vbap.searched == 16
    # a wrong guess only costs a search: voices reordered, some gone, some new, none at all
    for frame in (d[::-1], d[:5], d, np.vstack([d, -d]), d[:0], np.zeros((3, 3)), d):
        cached_equals_full(vbap, frame)
    # shorter than 1e-12: no direction (equal power), even right where the voice just was
    g = cached_equals_full(vbap, d * 1e-13)[0]
    np.testing.assert_array_equal(g, np.full((16, 50), 50 ** -0.5))
    # the same on a ring (pairs), elevation ignored
    ring = Vbap(RINGS["ring8"])
    for k in range(100):
        _, _, n = cached_equals_full(ring, aed_to_xyz(az + rate * k, el))
        assert n == 0 or k == 0  # (the first call guesses face 0 and those around it)


# -- DBAP ----------------------------------------------------------------------------------------
position = st.tuples(coordinate, coordinate, coordinate)


@settings(max_examples=100, deadline=None)
@given(p=st.lists(position, min_size=1, max_size=16), name=st.sampled_from(["ring_dome", "quad"]),
       rolloff=st.floats(1.0, 12.0), blur=st.floats(0.0, 0.5))
def test_dbap_unit_power_and_the_nearest_is_loudest(p: list[tuple[float, float, float]],
                                                   name: str, rolloff: float,
                                                   blur: float) -> None:
    pos = np.array(p, dtype=np.float64)
    speakers = VBAPS[name].speakers
    g = dbap_gains(pos, speakers, rolloff, blur)
    assert g.shape == (len(pos), len(speakers))
    assert np.all(g >= 0.0)
    np.testing.assert_allclose(np.sum(g * g, axis=1), 1.0, atol=1e-9)
    d = np.linalg.norm(pos[:, None] - speakers[None], axis=2)
    loudest = g[np.arange(len(pos)), np.argmin(d, axis=1)]
    np.testing.assert_allclose(loudest, g.max(axis=1), rtol=1e-12)


def test_dbap_exact() -> None:
    quad = VBAPS["quad"].speakers
    np.testing.assert_allclose(dbap_gains(np.zeros((1, 3)), quad), [[0.5] * 4])
    # a = 6 / (20 log10 2) ~ 0.9966: gains ~ 1 / distance (with the blur)
    p = np.array([[0.0, 0.5, 0.0]])
    d = np.sqrt(np.sum((quad - p) ** 2, axis=1) + 0.01)
    w = d ** -(6.0 / (20.0 * np.log10(2.0)))
    np.testing.assert_allclose(dbap_gains(p, quad), [w / np.linalg.norm(w)])
    np.testing.assert_array_equal(dbap_gains(quad[2:3], quad, blur=0.0), [[0.0, 0.0, 1.0, 0.0]])
    with pytest.raises(ValueError):
        dbap_gains(p, quad, rolloff_db=0.0)
