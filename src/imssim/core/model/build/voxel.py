"""Closed volumes from open or broken surface meshes, through a labelled voxel grid.

Real segmented anatomy comes as surfaces that are not closed: decimation leaves cracks
(T-junction seams), and fascicular muscles (multifidus, rotatores) are clouds of thin
leaves. Traversal needs closed, watertight volumes, so every source surface is turned
into a solid on a fine grid and surfaced again:

1. the surface is rasterised: every triangle is sampled more densely than the voxel size
   and each sample marks its voxel;
2. a morphological closing with a ball (``close_mm``) seals cracks and joins leaves;
3. enclosed space is filled (3-D hole filling, then a vote of slice-wise fills along the
   three axes for shells whose remaining cracks let the 3-D fill leak);
4. the solid is blurred a little (sub-voxel smoothing) and surfaced with marching cubes at
   the 0.5 level on a padded grid, which gives a closed 2-manifold by construction;
5. manifold3d simplifies it within a tolerance, keeping it a closed manifold.

The result stays within about one voxel of the source surface (0.6-1.2 mm, see
``voxel_size``); ``tests/test_atlas_bodyparts3d.py`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Grid:
    """A voxel grid: ``origin`` is the centre of voxel (0, 0, 0); ``h`` the voxel size (mm)."""

    origin: np.ndarray
    h: float
    shape: tuple[int, int, int]

    @classmethod
    def around(cls, lo: np.ndarray, hi: np.ndarray, h: float, pad_mm: float) -> "Grid":
        lo = np.asarray(lo, float) - pad_mm
        hi = np.asarray(hi, float) + pad_mm
        shape = tuple(int(n) for n in np.ceil((hi - lo) / h).astype(int) + 1)
        return cls(lo, float(h), shape)

    def index(self, p: np.ndarray) -> np.ndarray:
        return np.rint((np.asarray(p, float) - self.origin) / self.h).astype(np.int64)

    def points(self, ijk: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(ijk, float) * self.h


def voxel_size(lo: np.ndarray, hi: np.ndarray, budget: float = 6e6, finest: float = 0.6, coarsest: float = 1.2) -> float:
    """The finest voxel size (mm) that keeps a structure's box under ``budget`` voxels."""
    ext = np.maximum(np.asarray(hi, float) - np.asarray(lo, float), 1.0)
    return float(np.clip((np.prod(ext) / budget) ** (1.0 / 3.0), finest, coarsest))


def surface_samples(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> np.ndarray:
    """Points on every triangle no further than ``spacing`` apart (vertices included)."""
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return v.copy()
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    longest = np.maximum.reduce([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)])
    n = np.maximum(np.ceil(longest / spacing).astype(int), 1)
    out = [v]
    for k in np.unique(n):
        sel = n == k
        # barycentric lattice with k steps per edge
        i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = (i + j) <= k
        u = (i[keep] / k)[None, :, None]
        w = (j[keep] / k)[None, :, None]
        A, B, C = a[sel][:, None, :], b[sel][:, None, :], c[sel][:, None, :]
        out.append((A + u * (B - A) + w * (C - A)).reshape(-1, 3))
    return np.concatenate(out)


def ball(radius_vox: float) -> np.ndarray:
    r = int(np.ceil(radius_vox))
    z, y, x = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (x * x + y * y + z * z) <= radius_vox * radius_vox + 1e-9


def rasterise(vertices: np.ndarray, faces: np.ndarray, grid: Grid) -> np.ndarray:
    """Boolean grid with every voxel the surface passes through set."""
    mask = np.zeros(grid.shape, bool)
    pts = surface_samples(vertices, faces, 0.45 * grid.h)
    ijk = grid.index(pts)
    ok = np.all((ijk >= 0) & (ijk < np.array(grid.shape)), axis=1)
    ijk = ijk[ok]
    mask[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    return mask


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Vote of 2-D hole fills along the three axes (robust to a crack in one direction)."""
    votes = np.zeros(mask.shape, np.uint8)
    for axis in range(3):
        m = np.moveaxis(mask, axis, 0)
        filled = np.empty_like(m)
        for k in range(m.shape[0]):
            filled[k] = ndimage.binary_fill_holes(m[k])
        votes += np.moveaxis(filled, 0, axis)
    return votes >= 2


def solidify(shell: np.ndarray, close_vox: float) -> np.ndarray:
    """A solid from a rasterised surface: close cracks, fill what they enclose."""
    m = shell
    if close_vox > 0:
        m = ndimage.binary_closing(np.pad(m, int(np.ceil(close_vox)) + 1), structure=ball(close_vox))
        p = int(np.ceil(close_vox)) + 1
        m = m[p:-p, p:-p, p:-p]
    solid = ndimage.binary_fill_holes(m)
    # where the 3-D fill leaked through a crack it added (almost) nothing: vote slices
    if solid.sum() < 1.3 * m.sum():
        solid = _fill_slices(m) | m
    return solid


def surface(solid: np.ndarray, grid: Grid, sigma_vox: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangle surface of a boolean solid (marching cubes on a blurred, padded grid)."""
    from skimage.measure import marching_cubes

    pad = 3
    f = np.pad(solid.astype(np.float32), pad)
    if sigma_vox > 0:
        f = ndimage.gaussian_filter(f, sigma_vox)
    if f.max() <= 0.5:
        raise ValueError("solid vanished when smoothed")
    verts, faces, _n, _v = marching_cubes(f, 0.5, spacing=(grid.h,) * 3)
    verts = verts + grid.origin - pad * grid.h
    faces = faces[:, ::-1]  # skimage's winding points normals inwards for a 'high inside' field
    return np.asarray(verts, float), np.asarray(faces, np.int32)


def keep_largest_components(solid: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """Drop specks: components smaller than ``min_fraction`` of the largest one."""
    lab, n = ndimage.label(solid)
    if n <= 1:
        return solid
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_fraction * sizes.max()) + 1
    return np.isin(lab, keep)


def closed_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    close_mm: float = 1.5,
    h: float | None = None,
    simplify_mm: float = 0.25,
    sigma_vox: float = 0.7,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A watertight volume around an open/broken surface; returns (V, F, info)."""
    from .geometry import is_watertight, simplify_manifold

    v = np.asarray(vertices, float)
    lo, hi = v.min(axis=0), v.max(axis=0)
    h = h or voxel_size(lo, hi)
    grid = Grid.around(lo, hi, h, pad_mm=close_mm + 2 * h)
    shell = rasterise(v, faces, grid)
    solid = keep_largest_components(solidify(shell, close_mm / h))
    V, F = surface(solid, grid, sigma_vox)
    V, F = simplify_manifold(V, F, simplify_mm)
    info = {"voxel_mm": h, "close_mm": close_mm, "volume_voxels_mm3": float(solid.sum() * h**3),
            "watertight": bool(is_watertight(V, F))}
    return V, F, info
