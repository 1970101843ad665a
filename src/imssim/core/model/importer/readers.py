"""Reading mesh files into (vertices, faces) arrays, and cleaning them up.

OBJ, STL, PLY, OFF, GLB and GLTF are read with trimesh (scenes are flattened into one
mesh with their node transforms applied); VTK legacy and VTP files with the small
vtk-free parser in :mod:`.vtkfiles`. Errors are :class:`MeshFileError` naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class MeshFileError(ValueError):
    """A mesh file that is missing, unreadable, corrupt or empty."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) float64 and triangles (m, 3) int64 from a mesh file."""
    path = Path(path)
    if not path.is_file():
        raise MeshFileError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".vtk":
            from .vtkfiles import read_legacy_vtk

            v, f = read_legacy_vtk(path)
        elif suffix == ".vtp":
            from .vtkfiles import read_vtp

            v, f = read_vtp(path)
        else:
            import trimesh

            loaded = trimesh.load(str(path), force="mesh", process=False)
            if not isinstance(loaded, trimesh.Trimesh):
                raise ValueError("no triangle mesh in the file")
            v, f = np.asarray(loaded.vertices, float), np.asarray(loaded.faces, np.int64)
    except MeshFileError:
        raise
    except Exception as e:  # every reader error becomes one clear message
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MeshFileError(f"{path}: not a readable {suffix.lstrip('.').upper()} mesh ({msg})") from None
    v = np.asarray(v, dtype=float).reshape(-1, 3)
    f = np.asarray(f, dtype=np.int64).reshape(-1, 3)
    if len(v) < 4 or len(f) < 4:
        raise MeshFileError(f"{path}: mesh is empty or too small ({len(v)} vertices, {len(f)} triangles)")
    if not np.isfinite(v).all():
        raise MeshFileError(f"{path}: mesh has non-finite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshFileError(f"{path}: triangle refers to a vertex that does not exist")
    return v, f


@dataclass
class CleanReport:
    """What :func:`clean_mesh` did to one mesh."""

    faces_in: int
    faces_out: int = 0
    merged_vertices: int = 0
    degenerate_faces: int = 0
    duplicate_faces: int = 0
    decimated: bool = False
    watertight: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def clean_mesh(v: np.ndarray, f: np.ndarray, target_faces: int = 4000) -> tuple[np.ndarray, np.ndarray, CleanReport]:
    """Merge duplicate vertices, drop degenerate and duplicate faces, decimate, orient.

    Meshes over ``target_faces`` triangles are simplified with fast-simplification
    (quadric edge collapse) to about that many. A mesh that is still not watertight is
    kept; the report (and later ``Structure.meta['watertight']``) says so, and the
    traversal engine then uses its winding-number fallback for it.
    """
    import trimesh

    rep = CleanReport(faces_in=len(f))
    nv = len(v)
    m = trimesh.Trimesh(v, f, process=False)
    m.merge_vertices(digits_vertex=6)
    rep.merged_vertices = nv - len(m.vertices)
    nd = m.nondegenerate_faces(height=1e-9)
    rep.degenerate_faces = int((~nd).sum())
    m.update_faces(nd)
    uf = m.unique_faces()
    rep.duplicate_faces = int(len(m.faces) - uf.sum())
    m.update_faces(uf)
    m.remove_unreferenced_vertices()
    if target_faces and len(m.faces) > target_faces:
        import fast_simplification

        reduction = 1.0 - target_faces / len(m.faces)
        pts, tri = fast_simplification.simplify(np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int32),
                                                target_reduction=reduction)
        m = trimesh.Trimesh(np.asarray(pts, float), np.asarray(tri, np.int64), process=False)
        m.merge_vertices(digits_vertex=6)
        m.update_faces(m.nondegenerate_faces(height=1e-9))
        m.update_faces(m.unique_faces())
        m.remove_unreferenced_vertices()
        rep.decimated = True
    rep.watertight = bool(m.is_watertight)
    if rep.watertight:
        trimesh.repair.fix_normals(m)  # consistent outward winding, so volumes are positive
    else:
        trimesh.repair.fix_winding(m)
        rep.notes.append("not watertight: kept; needle traversal uses the winding-number fallback")
    rep.faces_out = int(len(m.faces))
    return np.asarray(m.vertices, float), np.asarray(m.faces, np.int64), rep
