"""Helpers for tests that place needles into named structures of the built-in atlas."""

from __future__ import annotations

import numpy as np

APPROACH = {"posterior": np.array([0.0, -1.0, 0.0]), "right": np.array([1.0, 0.0, 0.0]),
            "left": np.array([-1.0, 0.0, 0.0]), "anterior": np.array([0.0, 1.0, 0.0])}


def needle_into(index, sid: str, approach: str = "posterior", max_depth: float = 75.0):
    """(entry, direction, depth) of a straight needle from the skin whose tip the traversal
    engine places in structure ``sid`` (the first of several candidate points inside it that
    works); raises AssertionError if none does."""
    s = index.atlas.structures[sid]
    c = s.centroid
    v = s.vertices
    cands = [c] + [c + f * (p - c) for f in (0.3, 0.6) for p in v[:: max(1, len(v) // 60)]]
    view = APPROACH[approach]
    for p in cands:
        hit = index.snap_to_skin(p - view * 500.0, view)
        if hit is None or not hit.on_skin:
            continue
        d = p - hit.point
        depth = float(np.linalg.norm(d))
        if depth < 3 or depth > max_depth:
            continue
        tr = index.query(hit.point, d, depth)
        if tr.structure_at_tip == sid and not tr.breaches and tr.bone_contact is None:
            return hit.point, d / depth, depth
    raise AssertionError(f"no straight needle from the {approach} skin reaches {sid}")
