"""Mesh geometry used by the atlas builders: muscle spindles, unions, clean-up.

All functions take and return plain numpy arrays (vertices in mm, int32 faces).
"""

from __future__ import annotations

import numpy as np

#: Specific tension used to turn maximum isometric force into PCSA (N/mm^2 = MPa).
#: Published values span 0.25-1.0 MPa; 0.6 MPa is a common modelling choice.
SPECIFIC_TENSION_MPA = 0.6
#: Radii of the muscle spindle are clamped to this range (mm).
MIN_RADIUS_MM = 1.5
DEFAULT_MAX_RADIUS_MM = 12.0
#: Stations along a spindle and corner-cutting passes on its path.
STATIONS = 32
SMOOTHING = 3


def chaikin(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Corner-cutting smoothing of an open polyline, keeping its end points."""
    p = np.asarray(points, dtype=float)
    for _ in range(iterations):
        if len(p) < 3:
            break
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * (len(p) - 1), 3))
        mid[0::2], mid[1::2] = q, r
        p = np.vstack([p[:1], mid[1:-1], p[-1:]])
    return p


def dedupe_polyline(points: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    keep = [0]
    for i in range(1, len(p)):
        if np.linalg.norm(p[i] - p[keep[-1]]) > tol:
            keep.append(i)
    return p[keep]


def resample_polyline(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points evenly spaced by arc length, and their arc-length parameter (0..1)."""
    p = np.asarray(points, dtype=float)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    L = s[-1]
    t = np.linspace(0.0, L, n)
    out = np.column_stack([np.interp(t, s, p[:, k]) for k in range(3)])
    return out, t / L if L > 0 else t


def polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(np.asarray(points, float), axis=0), axis=1).sum())


def _frames(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising normal/binormal frames along a curve."""
    n = len(centre)
    tang = np.gradient(centre, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    ref = np.array([0.0, 0.0, 1.0]) if abs(tang[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    nrm = np.zeros((n, 3))
    nrm[0] = np.cross(tang[0], ref)
    nrm[0] /= np.linalg.norm(nrm[0])
    for i in range(1, n):
        v = nrm[i - 1] - np.dot(nrm[i - 1], tang[i]) * tang[i]
        ln = np.linalg.norm(v)
        nrm[i] = v / ln if ln > 1e-9 else nrm[i - 1]
    bin_ = np.cross(tang, nrm)
    return nrm, bin_


def tube(
    centre: np.ndarray,
    radii: np.ndarray,
    sides: int = 12,
    aspect: np.ndarray | float = 1.0,
    flat_dir: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube along ``centre`` with per-station radius, capped by apex points.

    ``aspect`` > 1 flattens the cross-section into an ellipse ``radius*aspect`` wide and
    ``radius/aspect`` thick; the thin axis points along ``flat_dir`` (projected on the
    cross-section), e.g. toward the bone the muscle lies on.
    """
    centre = np.asarray(centre, float)
    radii = np.asarray(radii, float)
    n = len(centre)
    nrm, bin_ = _frames(centre)
    if flat_dir is not None:
        tang = np.cross(nrm, bin_)
        d = np.asarray(flat_dir, float)
        d = d - (tang @ d)[:, None] * tang if d.ndim == 1 else d - np.einsum("ij,ij->i", tang, d)[:, None] * tang
        ln = np.linalg.norm(d, axis=1, keepdims=True)
        ok = ln[:, 0] > 1e-6
        nrm = np.where(ok[:, None], d / np.maximum(ln, 1e-12), nrm)
        bin_ = np.cross(tang, nrm)
    aspect = np.broadcast_to(np.asarray(aspect, float), (n,))
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ca, sa = np.cos(ang), np.sin(ang)
    # thin along nrm, wide along bin_
    rt = (radii / aspect)[:, None]
    rw = (radii * aspect)[:, None]
    ring = centre[:, None, :] + (rt * ca)[:, :, None] * nrm[:, None, :] + (rw * sa)[:, :, None] * bin_[:, None, :]
    verts = np.vstack([centre[:1], ring.reshape(-1, 3), centre[-1:]])
    faces = []
    # start cap (apex 0)
    for j in range(sides):
        faces.append((0, 1 + (j + 1) % sides, 1 + j))
    for i in range(n - 1):
        a0 = 1 + i * sides
        b0 = 1 + (i + 1) * sides
        for j in range(sides):
            j1 = (j + 1) % sides
            faces.append((a0 + j, a0 + j1, b0 + j))
            faces.append((a0 + j1, b0 + j1, b0 + j))
    last = len(verts) - 1
    a0 = 1 + (n - 1) * sides
    for j in range(sides):
        faces.append((last, a0 + j, a0 + (j + 1) % sides))
    faces = np.asarray(faces, dtype=np.int32)
    # make outward-facing
    v = verts
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        faces = faces[:, ::-1].copy()
    return verts, faces


def spindle_radius(volume_mm3: float, belly_len_mm: float, max_radius: float) -> float:
    """Peak radius of a sin-profile spindle of the given volume and length, clamped."""
    # V = integral pi (R sin(pi u))^2 L du = pi R^2 L / 2
    r = float(np.sqrt(2.0 * max(volume_mm3, 0.0) / (np.pi * max(belly_len_mm, 1.0))))
    return float(np.clip(r, MIN_RADIUS_MM, max_radius))


def spindle(
    path_mm: np.ndarray,
    fmax_n: float,
    fibre_len_mm: float,
    max_radius: float = DEFAULT_MAX_RADIUS_MM,
    stations: int = STATIONS,
    sides: int = 12,
    tendon_fraction: float = 0.08,
    aspect: float = 1.0,
    flat_dir: np.ndarray | None = None,
    min_radius: float = MIN_RADIUS_MM,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A closed, volume-preserving spindle along a muscle path.

    Volume = PCSA x optimal fibre length, PCSA = Fmax / specific tension. The belly spans
    the whole path but the tendon ends (``tendon_fraction`` each) are thin; the radius
    follows ``sin(pi u)^0.6`` so the belly is full in its middle third. The peak radius is
    clamped to [MIN_RADIUS_MM, max_radius]; the clamped value is reported.
    """
    p = dedupe_polyline(np.asarray(path_mm, float))
    if len(p) < 2:
        raise ValueError("muscle path needs at least two distinct points")
    p = chaikin(p, SMOOTHING)
    centre, u = resample_polyline(p, stations)
    L = polyline_length(p)
    pcsa = fmax_n / SPECIFIC_TENSION_MPA  # mm^2
    volume = pcsa * fibre_len_mm
    R = spindle_radius(volume, L, max_radius * float(aspect))  # thin semi-axis R/aspect <= max_radius
    R = max(R, min_radius)
    tf = tendon_fraction
    w = np.clip((u - tf) / (1 - 2 * tf), 0.0, 1.0)
    prof = np.sin(np.pi * w) ** 0.6
    radii = np.maximum(R * prof, 0.6)
    v, f = tube(centre, radii, sides=sides, aspect=aspect, flat_dir=flat_dir)
    info = {"length_mm": L, "pcsa_mm2": pcsa, "volume_target_mm3": volume, "radius_mm": R}
    return v, f, info


def union(meshes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean union of closed meshes into one watertight mesh (manifold3d)."""
    import manifold3d as m3d

    acc = None
    for v, f in meshes:
        mesh = m3d.Mesh(vert_properties=np.asarray(v, np.float32), tri_verts=np.asarray(f, np.uint32))
        man = m3d.Manifold(mesh)
        if man.status() != m3d.Error.NoError:
            raise ValueError(f"mesh is not a valid manifold: {man.status()}")
        acc = man if acc is None else acc + man
    if acc is None:
        raise ValueError("union of no meshes")
    out = acc.to_mesh()
    return np.asarray(out.vert_properties[:, :3], dtype=np.float64), np.asarray(out.tri_verts, dtype=np.int32)


def simplify_manifold(vertices: np.ndarray, faces: np.ndarray, tolerance_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Simplify a closed mesh within ``tolerance_mm``, keeping it a closed manifold."""
    import manifold3d as m3d

    man = m3d.Manifold(m3d.Mesh(vert_properties=np.asarray(vertices, np.float32), tri_verts=np.asarray(faces, np.uint32)))
    if man.status() != m3d.Error.NoError:
        raise ValueError(f"mesh is not a valid manifold: {man.status()}")
    out = man.simplify(tolerance_mm).to_mesh()
    return np.asarray(out.vert_properties[:, :3], dtype=np.float64), np.asarray(out.tri_verts, dtype=np.int32)


def smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Taubin smoothing (no shrinkage) of a mesh's vertices; topology is unchanged, so a
    watertight mesh stays watertight. Softens the seams of fascicle unions."""
    import trimesh

    m = trimesh.Trimesh(vertices, faces, process=False)
    trimesh.smoothing.filter_taubin(m, lamb=0.5, nu=0.53, iterations=iterations)
    return np.asarray(m.vertices, dtype=np.float64)


def clean(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate vertices, drop degenerate and duplicate faces and unused vertices."""
    import trimesh

    m = trimesh.Trimesh(vertices, faces, process=True, validate=False)
    m.update_faces(m.nondegenerate_faces())
    m.update_faces(m.unique_faces())
    m.remove_unreferenced_vertices()
    return np.asarray(m.vertices, float), np.asarray(m.faces, np.int32)


def decimate(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to about ``target_faces`` triangles (no-op below the target)."""
    if len(faces) <= target_faces:
        return vertices, faces
    import fast_simplification

    ratio = 1.0 - target_faces / len(faces)
    v, f = fast_simplification.simplify(np.asarray(vertices, np.float32), np.asarray(faces, np.int32), ratio)
    return np.asarray(v, float), np.asarray(f, np.int32)


def is_watertight(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Every edge shared by exactly two faces, with consistent winding."""
    f = np.asarray(faces)
    if len(f) == 0:
        return False
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # directed edges must each appear once, and their reverse once
    key = e[:, 0].astype(np.int64) * (f.max() + 1) + e[:, 1]
    rkey = e[:, 1].astype(np.int64) * (f.max() + 1) + e[:, 0]
    uniq, counts = np.unique(key, return_counts=True)
    if (counts != 1).any():
        return False
    return bool(np.isin(rkey, uniq).all())
