"""A cross-section of the atlas in a plane containing the needle (the window's slice view).

The plane holds the needle's shaft and one body axis: ``"sagittal"`` (the needle and the
head-to-foot axis, as an ultrasound probe held along the spine) or ``"transverse"`` (the
needle and the left-right axis). Coordinates in the slice are millimetres: ``u`` along the
needle from the entry point (positive inwards), ``v`` across it, in the plane.

The cut covers the whole needle length (plus a margin), so advancing or withdrawing the
needle only moves the tip drawn on it: :class:`SliceCache` recomputes the cut only when the
entry, the direction, the plane or the atlas change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.atlas import Atlas

PLANES = ("sagittal", "transverse")
#: how far the cut reaches beyond the skin (u < 0) and beside the needle (|v|), mm
MARGIN_MM = 15.0
HALF_WIDTH_MM = 45.0
#: outlines are listed (and drawn) from the surface inwards, danger structures last (on top)
DRAW_ORDER = {"skin": 0, "subcutaneous": 1, "connective": 1.5, "muscle": 2, "bone": 3, "organ": 4, "canal": 5, "nerve": 6, "vessel": 7}


@dataclass
class SliceLine:
    """One structure's outline in the slice: polylines of (u, v) points."""

    structure: str
    kind: str
    harm: str | None
    segments: np.ndarray  # (k, 2, 2): k line segments, each two (u, v) points


@dataclass
class Slice:
    plane: str
    entry: np.ndarray
    direction: np.ndarray  # unit, along u
    across: np.ndarray  # unit, along v (in the plane, perpendicular to the needle)
    normal: np.ndarray  # the plane's normal
    length: float  # the needle length the cut covers
    lines: list[SliceLine] = field(default_factory=list)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(u_min, u_max, v_min, v_max) of the cut window."""
        return -MARGIN_MM, self.length + MARGIN_MM, -HALF_WIDTH_MM, HALF_WIDTH_MM

    def to_uv(self, points) -> np.ndarray:
        p = np.asarray(points, float) - self.entry
        return np.stack([p @ self.direction, p @ self.across], axis=-1)

    def across_ends(self) -> tuple[str, str]:
        """Anatomical names of the two ends of the ``v`` axis: (v < 0 side, v > 0 side)."""
        return direction_name(-self.across), direction_name(self.across)

    def crossings_on_needle(self, structure: str) -> list[float]:
        """Depths (u) where the needle's line crosses a structure's outline (for checks)."""
        out = []
        for ln in self.lines:
            if ln.structure != structure:
                continue
            a, b = ln.segments[:, 0], ln.segments[:, 1]
            s = (a[:, 1] < 0) != (b[:, 1] < 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = a[s, 1] / (a[s, 1] - b[s, 1])
            out += list(a[s, 0] + t * (b[s, 0] - a[s, 0]))
        return sorted(out)


#: LPS axes (see docs/coordinates.md): +x patient's left, +y posterior, +z cranial
_AXIS_NAMES = (("right", "left"), ("anterior", "posterior"), ("caudal", "cranial"))


def direction_name(v) -> str:
    """The anatomical direction a vector points to most (e.g. "cranial", "left")."""
    v = np.asarray(v, float)
    i = int(np.argmax(np.abs(v)))
    return _AXIS_NAMES[i][int(v[i] > 0)]


def plane_axes(direction, plane: str = "sagittal") -> tuple[np.ndarray, np.ndarray]:
    """(across, normal) unit vectors of the slice plane through a needle direction."""
    if plane not in PLANES:
        raise ValueError(f"unknown slice plane {plane!r}; planes are {', '.join(PLANES)}")
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    axis = np.array([0.0, 0.0, 1.0]) if plane == "sagittal" else np.array([1.0, 0.0, 0.0])
    if abs(d @ axis) > 0.95:  # the needle runs along that axis: fall back to the other one
        axis = np.array([1.0, 0.0, 0.0]) if plane == "sagittal" else np.array([0.0, 1.0, 0.0])
    n = np.cross(d, axis)
    n /= np.linalg.norm(n)
    across = np.cross(n, d)
    return across / np.linalg.norm(across), n


def needle_slice(atlas: Atlas, entry, direction, length: float, plane: str = "sagittal") -> Slice:
    """Cut every structure near the needle with the plane through it (see module doc)."""
    import trimesh

    e = np.asarray(entry, float)
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    across, n = plane_axes(d, plane)
    sl = Slice(plane, e, d, across, n, float(length))
    u0, u1, v0, v1 = sl.bounds
    corners = np.array([e + d * u + across * v for u in (u0, u1) for v in (v0, v1)])
    lo, hi = corners.min(axis=0) - 1.0, corners.max(axis=0) + 1.0
    for s in atlas:
        V = s.vertices
        slo, shi = V.min(axis=0), V.max(axis=0)
        if np.any(shi < lo) or np.any(slo > hi):
            continue
        # only the faces crossing the plane whose own box meets the window's box (a face
        # may span the window with no vertex inside it: the box is thin across the plane)
        side = ((V - e) @ n) > 0
        fs = side[s.faces]
        fmask = fs.any(axis=1) & ~fs.all(axis=1)
        if not fmask.any():
            continue
        cand = np.nonzero(fmask)[0]
        tri = V[s.faces[cand]]
        meets = np.all(tri.min(axis=1) <= hi, axis=1) & np.all(tri.max(axis=1) >= lo, axis=1)
        fmask[cand[~meets]] = False
        faces = np.nonzero(fmask)[0]
        if not len(faces):
            continue
        mesh = trimesh.Trimesh(V, s.faces, process=False)
        segs = trimesh.intersections.mesh_plane(mesh, n, e, local_faces=faces)
        if not len(segs):
            continue
        uv = sl.to_uv(segs)  # (k, 2, 2)
        inside = ((uv[..., 0] >= u0 - 5) & (uv[..., 0] <= u1 + 5) & (np.abs(uv[..., 1]) <= v1 + 5)).any(axis=1)
        if inside.any():
            sl.lines.append(SliceLine(s.id, s.kind, s.harm, uv[inside]))
    sl.lines.sort(key=lambda ln: DRAW_ORDER.get(ln.kind, len(DRAW_ORDER)))
    return sl


class SliceCache:
    """The last slice, recomputed only when what it depends on changes."""

    def __init__(self):
        self._key = None
        self.slice: Slice | None = None
        self.computed = 0  # how many cuts were made (for tests and the benchmark)

    def get(self, atlas: Atlas, entry, direction, length: float, plane: str) -> Slice:
        key = (id(atlas), tuple(np.round(np.asarray(entry, float), 3)),
               tuple(np.round(np.asarray(direction, float), 5)), round(float(length), 3), plane)
        if key != self._key or self.slice is None:
            self.slice = needle_slice(atlas, entry, direction, length, plane)
            self._key = key
            self.computed += 1
        return self.slice
