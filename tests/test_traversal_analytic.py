"""Tissue traversal on analytic geometry with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imssim.core.model.atlas import Atlas, Structure
from imssim.core.engines.traversal import TissueIndex, winding_number

UP = np.array([0.0, 0.0, 1.0])


def _box(sid, lo, hi, kind="muscle", harm=None, drop_faces=0):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    m = trimesh.creation.box(extents=hi - lo)
    m.apply_translation((lo + hi) / 2)
    faces = m.faces[drop_faces:] if drop_faces else m.faces
    return Structure(sid, sid.replace("_", " "), kind, "midline", "test", m.vertices, faces, harm=harm)


def _sphere(sid, centre, r, kind="organ", harm=None):
    m = trimesh.creation.icosphere(subdivisions=4, radius=r)
    m.apply_translation(centre)
    return Structure(sid, sid, kind, "midline", "test", m.vertices, m.faces, harm=harm)


@pytest.fixture(scope="module")
def nested():
    """Skin slab 0-2, fat 2-10, muscle 10-40, bone 40-60 (depths along +z from z=0)."""
    a = Atlas("nested", [
        _box("skin", (-50, -50, 0), (50, 50, 2), kind="skin"),
        _box("fat", (-50, -50, 2), (50, 50, 10), kind="subcutaneous"),
        _box("muscle_a", (-50, -50, 10), (50, 50, 40)),
        _box("bone", (-50, -50, 40), (50, 50, 60), kind="bone"),
        _sphere("lung", (30, 0, 25), 5.0, harm="pneumothorax"),
    ])
    return TissueIndex(a)


def test_nested_layers_and_depths(nested):
    tr = nested.query((0, 0, 0), UP, 25.0)
    assert [iv.structure for iv in tr.intervals] == ["skin", "fat", "muscle_a"]
    got = {iv.structure: (iv.entry_depth, iv.exit_depth, iv.exited) for iv in tr.intervals}
    assert got["skin"] == pytest.approx((0, 2, True), abs=1e-3)
    assert got["fat"][:2] == pytest.approx((2, 10), abs=1e-3)
    assert got["muscle_a"] == pytest.approx((10, 25, False), abs=1e-3)
    assert tr.at_tip == ["muscle_a"] and tr.structure_at_tip == "muscle_a"
    assert tr.bone_contact is None and tr.depth == pytest.approx(25)
    assert tr.fallbacks == []


def test_bone_stops_the_needle(nested):
    tr = nested.query((0, 0, 0), UP, 55.0)
    assert tr.bone_contact is not None and tr.bone_contact.structure == "bone"
    assert tr.depth == pytest.approx(40, abs=1e-3)
    assert tr.tip == pytest.approx([0, 0, 40], abs=1e-3)
    assert tr.layers == ["skin", "fat", "muscle_a", "bone"]
    assert "bone" not in tr.at_tip
    # without the bone stop the needle would go on into the bone
    free = nested.query((0, 0, 0), UP, 55.0, stop_at_bone=False)
    assert "bone" in free.at_tip and free.depth == pytest.approx(55)


def test_tip_exactly_on_a_surface_touches_it(nested):
    tr = nested.query((0, 0, 0), UP, 10.0)  # ends on the fat/muscle boundary
    assert set(tr.at_tip) == {"fat", "muscle_a"}
    assert tr.structure_at_tip == "muscle_a"  # the more specific kind wins


def test_danger_clearance_and_breach(nested):
    # needle at x=30 passes through the 'lung' sphere centred at z=25, radius 5
    near = nested.query((30, 0, 0), UP, 15.0)
    c = near.clearance_to("lung")
    assert c is not None and c.tip_mm == pytest.approx(5.0, abs=0.6)
    assert near.breaches == []
    deep = nested.query((30, 0, 0), UP, 25.0)
    assert [b.structure for b in deep.breaches] == ["lung"]
    assert deep.breaches[0].depth == pytest.approx(20.0, abs=0.3)
    assert deep.breaches[0].harm == "pneumothorax"
    assert deep.clearance_to("lung").shaft_mm == 0.0
    # a needle 20 mm to the side: shaft clearance about 15 mm
    side = nested.query((10, 0, 0), UP, 35.0)
    assert side.clearance_to("lung").shaft_mm == pytest.approx(15.0, abs=0.6)


def test_touching_meshes_share_a_face():
    a = Atlas("touch", [_box("a", (-5, -5, 0), (5, 5, 10)), _box("b", (-5, -5, 10), (5, 5, 20))])
    ix = TissueIndex(a)
    tr = ix.query((0, 0, -1), UP, 19.0)
    got = {iv.structure: (round(iv.entry_depth, 3), round(iv.exit_depth, 3)) for iv in tr.intervals}
    assert got == {"a": (1.0, 11.0), "b": (11.0, 19.0)}
    assert tr.at_tip == ["b"]


def test_overlapping_meshes_both_contain_the_tip():
    a = Atlas("overlap", [_box("a", (-5, -5, 0), (5, 5, 20)), _box("b", (-3, -3, 10), (3, 3, 30))])
    ix = TissueIndex(a)
    tr = ix.query((0, 0, -5), UP, 20.0)  # tip at z=15
    assert set(tr.at_tip) == {"a", "b"}
    tr2 = ix.query((0, 0, -5), UP, 30.0)  # tip at z=25: out of a, in b
    assert tr2.at_tip == ["b"]
    assert {iv.structure: iv.exited for iv in tr2.intervals} == {"a": True, "b": False}


def test_open_mesh_uses_winding_number_fallback():
    # a box with its two bottom triangles removed: parity breaks, winding number decides
    m = trimesh.creation.box(extents=(10, 10, 10))
    m.apply_translation((0, 0, 5))
    bottom = np.nonzero(m.triangles_center[:, 2] < 1e-6)[0]
    keep = np.setdiff1d(np.arange(len(m.faces)), bottom)
    s = Structure("open", "open", "muscle", "midline", "test", m.vertices, m.faces[keep])
    ix = TissueIndex(Atlas("open", [s]))
    assert not ix.watertight[0]
    tr = ix.query((0, 0, -5), UP, 10.0)  # tip at z=5, inside the open box
    assert tr.at_tip == ["open"]
    assert "open" in tr.fallbacks
    out = ix.query((0, 0, -5), UP, 3.0)  # tip at z=-2, below it
    assert out.at_tip == []
    wn = winding_number(s.vertices, s.faces, np.array([[0, 0, 5.0], [0, 0, 20.0]]))
    assert wn[0] > 0.5 > wn[1]


def test_entering_through_an_oblique_direction(nested):
    d = np.array([0.0, 1.0, 1.0]) / np.sqrt(2)
    tr = nested.query((0, 0, 0), d, 20.0)
    mus = [iv for iv in tr.intervals if iv.structure == "muscle_a"][0]
    assert mus.entry_depth == pytest.approx(10 * np.sqrt(2), abs=1e-3)


def test_batch_matches_single_queries(nested):
    rng = np.random.default_rng(1)
    n = 200
    E = np.column_stack([rng.uniform(-20, 20, n), rng.uniform(-20, 20, n), np.zeros(n)])
    D = np.column_stack([rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n), np.ones(n)])
    dep = rng.uniform(1, 58, n)
    b = nested.query_batch(E, D, dep)
    for i in range(n):
        tr = nested.query(E[i], D[i], dep[i])
        assert b.depth[i] == pytest.approx(tr.depth, abs=1e-3)
        want = nested._sidx[tr.structure_at_tip] if tr.structure_at_tip else -1
        assert b.tip_structure[i] == want, (i, tr.at_tip)
        want_bone = nested._sidx[tr.bone_contact.structure] if tr.bone_contact else -1
        assert b.bone_contact[i] == want_bone
        want_breach = nested._sidx[tr.breaches[0].structure] if tr.breaches else -1
        assert b.breach[i] == want_breach


def test_snap_to_skin(nested):
    hit = nested.snap_to_skin((5, 5, -100), UP)
    assert hit is not None and hit.on_skin and hit.structure == "skin"
    assert hit.point == pytest.approx([5, 5, 0], abs=1e-3)
    assert hit.normal == pytest.approx([0, 0, -1], abs=1e-6)
    assert nested.snap_to_skin((500, 500, -100), UP) is None


def test_bad_input_is_rejected(nested):
    with pytest.raises(ValueError, match="direction"):
        nested.query((0, 0, 0), (0, 0, 0), 10)
    with pytest.raises(ValueError, match="depth"):
        nested.query((0, 0, 0), UP, -1)
    with pytest.raises(ValueError, match="3D point"):
        nested.query((0, 0), UP, 1)


def test_batch_ignores_dangers_behind_the_entry(nested):
    # the line behind this entry passes through the 'lung' sphere (z 20-30 at x=30); the
    # needle itself starts above it and goes on up: no breach
    E = np.array([[30.0, 0, 32], [30.0, 0, 12]])
    D = np.array([[0, 0, 1.0], [0, 0, 1.0]])
    b = nested.query_batch(E, D, [5.0, 15.0])
    full = [nested.query(E[i], D[i], [5.0, 15.0][i]) for i in range(2)]
    assert full[0].breaches == [] and b.breach[0] == -1
    assert [x.structure for x in full[1].breaches] == ["lung"]
    assert nested.ids[b.breach[1]] == "lung" and b.breach_depth[1] == pytest.approx(8.0, abs=0.3)


def test_ray_through_shared_edges_counts_one_crossing():
    # rays along the face diagonals of a box hit two triangles at the same point; a far
    # structure makes the line start far away, where float32 steps are coarse
    s = _box("cube", (-5, -5, 0), (5, 5, 10))
    ix = TissueIndex(Atlas("cube", [s, _box("far", (-5, -5, -1900), (5, 5, -1890), kind="bone")]))
    E = np.array([[t, u * t, -3.0] for t in (1.0, 2.5, -1.5) for u in (1, -1)])
    D = np.tile(UP, (len(E), 1))
    b = ix.query_batch(E, D, 8.0)  # tips at z=5, inside
    for i in range(len(E)):
        tr = ix.query(E[i], D[i], 8.0)
        assert tr.at_tip == ["cube"], E[i]
        assert [(round(iv.entry_depth, 3), round(iv.exit_depth, 3)) for iv in tr.intervals] == [(3.0, 8.0)]
        assert ix.ids[b.tip_structure[i]] == "cube", E[i]


def test_non_manifold_meshes():
    # (1) two cubes touching along one edge, stored as ONE structure (a non-manifold edge);
    # (2) a cube with one face stored twice (edges shared by four triangles)
    a = trimesh.creation.box(extents=(10, 10, 10))
    a.apply_translation((5, 5, 5))
    b = trimesh.creation.box(extents=(10, 10, 10))
    b.apply_translation((-5, -5, 5))
    v = np.vstack([a.vertices, b.vertices])
    f = np.vstack([a.faces, b.faces + len(a.vertices)])
    c = trimesh.creation.box(extents=(10, 10, 10))
    c.apply_translation((40, 0, 5))
    top = np.nonzero(c.triangles_center[:, 2] > 9.99)[0]
    cf = np.vstack([c.faces, c.faces[top]])
    ix = TissueIndex(Atlas("nm", [
        Structure("pair", "pair", "muscle", "midline", "test", v, f),
        Structure("dup", "dup", "muscle", "midline", "test", c.vertices, cf),
    ]))
    for x, y, inside in [(5, 5, True), (-5, -5, True), (5, -5, False), (-2, 2, False), (0.0, 0.0, True)]:
        tr = ix.query((x, y, -5), UP, 10.0)  # tip at z=5
        assert (tr.at_tip == ["pair"]) == inside, (x, y, tr.at_tip, tr.fallbacks)
        assert ix.structures_at((x, y, 5.0)) == (["pair"] if inside else [])
    # through the doubled top face, from above and from below
    down = ix.query((40, 0, 20), -UP, 15.0)  # tip at z=5
    assert down.at_tip == ["dup"]
    assert [(round(iv.entry_depth, 3), round(iv.exit_depth, 3)) for iv in down.intervals] == [(10.0, 15.0)]
    through = ix.query((40, 0, -5), UP, 20.0)  # tip at z=15, above it
    assert through.at_tip == [] and [iv.exited for iv in through.intervals] == [True]
