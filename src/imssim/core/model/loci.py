"""Points on the body: where a trigger locus, tender point or taut band lies on a muscle.

A locus is given by a landmark and an offset, by coordinates, or by a fraction along a
muscle's long axis, optionally snapped inside the muscle. Geometry of the body only (the
scenario's :class:`~imssim.core.training.scenario.model.TriggerLocus` is read by its
fields), so the engines (physiology) and the training layer (scenarios, palpation) share it.
"""

from __future__ import annotations

import numpy as np

from .atlas import Atlas, Structure


def _end_direction(end: str, side: str) -> np.ndarray:
    """Unit vector pointing *away from* the named end (LPS frame)."""
    if end == "superior":
        return np.array([0.0, 0.0, -1.0])
    if end == "inferior":
        return np.array([0.0, 0.0, 1.0])
    if end == "posterior":
        return np.array([0.0, -1.0, 0.0])
    if end == "anterior":
        return np.array([0.0, 1.0, 0.0])
    lateral = np.array([1.0, 0.0, 0.0]) if side == "left" else np.array([-1.0, 0.0, 0.0])
    return lateral if end == "medial" else -lateral


def principal_axis(s: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(centre, unit axis) of the mesh vertices' largest spread."""
    v = s.vertices
    c = v.mean(axis=0)
    _, _, vt = np.linalg.svd(v - c, full_matrices=False)
    return c, vt[0]


def _inside(s: Structure, p: np.ndarray) -> bool:
    import trimesh

    m = trimesh.Trimesh(s.vertices, s.faces, process=False)
    try:
        return bool(m.contains(p[None, :])[0])
    except Exception:  # noqa: BLE001 - containment needs a watertight mesh; fall back to "no"
        return False


def snap_inside(s: Structure, p: np.ndarray, inset_mm: float = 2.0) -> np.ndarray:
    """``p`` if it is inside the mesh, else the nearest surface point moved ``inset_mm`` inwards."""
    import trimesh

    if _inside(s, p):
        return p
    m = trimesh.Trimesh(s.vertices, s.faces, process=False)
    closest, _, tri = trimesh.proximity.closest_point(m, p[None, :])
    q = closest[0]
    n = m.face_normals[tri[0]]
    for step in (inset_mm, inset_mm / 2, inset_mm / 4):
        cand = q - n * step
        if _inside(s, cand):
            return cand
    return q


def point_along(s: Structure, fraction: float, from_end: str = "superior") -> np.ndarray:
    """The point ``fraction`` of the way along the muscle's principal axis, inside the muscle.

    The axis is oriented away from ``from_end``; the point is the centre of the vertices
    in a slab across the axis at that fraction (a cross-section's centre), snapped inside.
    """
    c, axis = principal_axis(s)
    if float(axis @ _end_direction(from_end, s.side)) < 0:
        axis = -axis
    t = (s.vertices - c) @ axis
    lo, hi = float(t.min()), float(t.max())
    tt = lo + fraction * (hi - lo)
    half = max(2.0, 0.05 * (hi - lo))
    sel = np.abs(t - tt) <= half
    if sel.sum() >= 3:
        p = s.vertices[sel].mean(axis=0)
    else:
        p = c + axis * tt
    return snap_inside(s, p)


def resolve_locus(locus, atlas: Atlas, structure: str | Structure | None = None) -> np.ndarray:
    """The (3,) position in mm (LPS) of a trigger locus.

    ``structure`` is the muscle the locus lies on (needed for ``fraction``; with
    ``locus.snap`` the point is moved into it when it falls outside). Raises
    ``AtlasLookupError`` for unknown names and ``ValueError`` for a fraction without one.
    """
    s = atlas.get(structure) if isinstance(structure, str) else structure
    if locus.fraction is not None:
        if s is None:
            raise ValueError("a locus given by 'fraction' needs the structure it lies on")
        return point_along(s, locus.fraction, locus.from_end)
    if locus.landmark is not None:
        p = atlas.landmark(locus.landmark).xyz + np.asarray(locus.offset_mm, float)
    else:
        p = np.asarray(locus.xyz, float)
    if s is not None and locus.snap:
        p = snap_inside(s, p)
    return p


def distance_to(s: Structure, p: np.ndarray) -> float:
    """Distance (mm) from ``p`` to the structure (0 inside)."""
    import trimesh

    if _inside(s, p):
        return 0.0
    m = trimesh.Trimesh(s.vertices, s.faces, process=False)
    _, d, _ = trimesh.proximity.closest_point(m, p[None, :])
    return float(d[0])
