"""Clearance (tip and shaft to danger structures) against exact closest points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from imssim.core.model.atlas import Atlas, Structure
from imssim.core.engines.traversal import FINE_WITHIN_MM, NEARBY_MM, SAMPLE_EDGE_MM, TissueIndex


def _mesh_structure(sid, m, kind="nerve", harm="nerve injury"):
    return Structure(sid, sid, kind, "midline", "test", np.asarray(m.vertices, float), np.asarray(m.faces),
                     harm=harm)


@pytest.fixture(scope="module")
def scene():
    # a coarse tube (a "nerve") and a coarse lumpy organ: big triangles, so the clearance
    # must come from the dense resampling, not the mesh vertices
    tube = trimesh.creation.cylinder(radius=4.0, height=120.0, sections=8)
    tube.apply_translation((0, 0, 60))
    organ = trimesh.creation.icosphere(subdivisions=1, radius=25.0)
    organ.apply_translation((60, 40, 60))
    meshes = {"tube": tube, "organ": organ}
    a = Atlas("clear", [_mesh_structure("tube", tube), _mesh_structure("organ", organ, "organ", "organ puncture")])
    return TissueIndex(a), meshes


def _exact_segment_distance(mesh, a, b, n=400):
    pts = a + np.outer(np.linspace(0, 1, n), b - a)
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts)
    return float(dist.min()), float(dist[-1])


def test_clearance_matches_exact_closest_points(scene):
    ix, meshes = scene
    rng = np.random.default_rng(3)
    checked = near = 0
    for _ in range(40):
        e = rng.uniform((-80, -80, 0), (120, 120, 120))
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        depth = rng.uniform(5, 70)
        tr = ix.query(e, d, depth)
        for sid, mesh in meshes.items():
            shaft, tip = _exact_segment_distance(mesh, e, e + d * tr.depth)
            c = tr.clearance_to(sid)
            if shaft > NEARBY_MM - 2 * SAMPLE_EDGE_MM:
                continue  # beyond the reporting range (or on its edge)
            assert c is not None, (sid, shaft)
            if any(b.structure == sid for b in tr.breaches):
                assert c.shaft_mm == 0.0
                continue
            # sampled surface (edges <= 2 mm): never closer than the truth, at most ~1.2 mm
            # farther; the shaft sampled every 1 mm adds at most 0.5 mm. Beyond
            # FINE_WITHIN_MM the coarse samples answer: at most their coverage rc farther.
            rc = ix._danger[ix._sidx[sid]][2]

            def tol(true):
                return 0.5 * SAMPLE_EDGE_MM + 0.1 + (rc if true > FINE_WITHIN_MM - 1e-6 else 0.0)

            # the full query measures exactly (segment to triangles, float32 triangles):
            # within 1e-4 of the truth; 400 shaft samples are never closer than it
            assert shaft - 0.01 <= c.shaft_mm <= shaft + 1e-4, (sid, c, shaft)
            if sid not in tr.at_tip:
                assert abs(c.tip_mm - tip) < 1e-4, (sid, c, tip)
            # the reference (resampled surfaces, 1 mm shaft samples): never closer than the
            # truth, at most the documented error farther
            r = ix.query_reference(e, d, depth).clearance_to(sid)
            assert shaft - 1e-4 <= r.shaft_mm <= shaft + tol(shaft) + 0.5, (sid, r, shaft)
            if sid not in tr.at_tip:
                assert tip - 1e-4 <= r.tip_mm <= tip + tol(tip), (sid, r, tip)
            near += shaft < FINE_WITHIN_MM
            checked += 1
    assert checked >= 30 and near >= 5


def test_far_structures_are_not_reported(scene):
    ix, _ = scene
    tr = ix.query((0, 0, 400), (0, 0, 1), 20)  # 280 mm above the tube
    assert tr.clearances == []


def test_batch_shaft_clearances_match_single_queries(scene):
    """``shaft_clearances`` (headless grading of thousands of needles) measures the whole
    shaft like a single query does, not only the tip."""
    ix, meshes = scene
    rng = np.random.default_rng(11)
    E = rng.uniform((-80, -80, 0), (120, 120, 120), size=(60, 3))
    D = rng.normal(size=(60, 3))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    depth = rng.uniform(5, 70, size=60)
    got = ix.shaft_clearances(E, D, depth)
    assert got.shape == (len(ix.danger_ids), 60) and set(ix.danger_ids) == set(meshes)
    compared = shaft_closer_than_tip = 0
    for k in range(60):
        tr = ix.query(E[k], D[k], depth[k], stop_at_bone=False)
        for row, sid in enumerate(ix.danger_ids):
            c = tr.clearance_to(sid)
            if c is None or any(b.structure == sid for b in tr.breaches):
                continue
            assert got[row, k] == pytest.approx(c.shaft_mm, abs=0.6), (sid, k)
            compared += 1
            shaft_closer_than_tip += c.tip_mm - c.shaft_mm > 5.0
        far = {c.structure for c in tr.clearances}
        for row, sid in enumerate(ix.danger_ids):
            if sid not in far:
                assert got[row, k] > NEARBY_MM - 2 * SAMPLE_EDGE_MM, (sid, k, got[row, k])
    assert compared >= 40 and shaft_closer_than_tip >= 5
