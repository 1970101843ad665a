"""Skin and subcutaneous fat around the whole atlas, for several body habitus.

Method: a distance field ``D(x)`` to the surfaces of every bone and muscle is computed on
a voxel grid (exact distances to densely sampled surface points near the levels we need).
The body at offset ``r`` is everything that is not connected to the outside through
``D > r`` (so the thorax and abdomen do not leave cavities). Its boundary, contoured by
marching cubes, is a closed surface lying ``r`` mm from the outermost muscles and bones.

- skin: the shell between the levels ``fat + 2`` and ``fat`` (skin is ~2 mm thick);
- subcutaneous: the shell between the levels ``fat`` and ``DEEP_MM`` (just on the muscles).

Each shell is one closed mesh (outer surface plus the inverted inner one), so ray parity
gives entry and exit. The fat thickness per habitus is calibrated to ultrasound depths over
the rhomboids: skin-to-muscle 1.2 cm at normal BMI and 1.8 cm in obesity (Ann Rehabil Med
2014;38:72; see docs/atlas.md).

All habitus variants are stored in the atlas (ids ``skin@lean``, ``subcutaneous@obese``,
...); :func:`for_habitus` returns a view with one of them as ``skin`` and
``subcutaneous``.
"""

from __future__ import annotations

import numpy as np

from ..atlas import Atlas, Structure
from . import geometry as geo

HABITUS = ("lean", "average", "obese")
#: subcutaneous fat thickness (mm) over the back muscles, per habitus
FAT_MM = {"lean": 5.0, "average": 8.0, "obese": 14.0}
SKIN_MM = 2.0
DEEP_MM = 2.0  # the fat's deep surface, just on the muscles and bones
VOXEL_MM = 4.5
SAMPLE_MM = 1.6  # surface sampling for exact distances
SIMPLIFY_MM = 1.5  # surface simplification tolerance (mm)
DEEP_CLOSE_MM = 20.0  # the deep surface bridges gaps between muscles narrower than ~40 mm
DEEP_SIMPLIFY_MM = 2.5  # the deep surface follows every muscle: simplify it harder


def _variant_id(kind: str, habitus: str) -> str:
    return f"{kind}@{habitus}"


def _distance_field(atlas: Atlas, levels_max: float, exact_max: float | None = None):
    import trimesh
    from scipy import ndimage
    from scipy.spatial import cKDTree

    parts = [s for s in atlas if s.kind not in ("skin", "subcutaneous")]  # skin encloses everything
    pts = []
    for s in parts:
        m = trimesh.Trimesh(s.vertices, s.faces, process=False)
        n = int(min(max(m.area / (SAMPLE_MM**2), 50), 400_000))
        samp, _ = trimesh.sample.sample_surface(m, n, seed=0)
        pts += [s.vertices, samp]
    P = np.vstack(pts)
    margin = levels_max + 3 * VOXEL_MM
    lo = P.min(axis=0) - margin
    hi = P.max(axis=0) + margin
    shape = np.ceil((hi - lo) / VOXEL_MM).astype(int) + 1
    occ = np.zeros(shape, bool)
    idx = np.floor((P - lo) / VOXEL_MM + 0.5).astype(int)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    D = ndimage.distance_transform_edt(~occ, sampling=VOXEL_MM).astype(np.float32)
    # exact distances in the band around the levels we contour
    # exact distances only where a contour needs them (the grid margin still fits every level)
    band = D < (levels_max if exact_max is None else exact_max) + 2 * VOXEL_MM
    bi = np.nonzero(band)
    centres = lo + np.column_stack(bi) * VOXEL_MM
    tree = cKDTree(P)
    d, _ = tree.query(centres, workers=-1)
    D[bi] = d.astype(np.float32)
    return D, lo


def _outside(D: np.ndarray, level: float) -> np.ndarray:
    """Voxels with D > level connected to the grid's border (the world outside the body)."""
    from scipy import ndimage

    lab, _ = ndimage.label(D > level)
    border = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    return np.isin(lab, border[border > 0])


def _level_field(D: np.ndarray, level: float) -> np.ndarray:
    """Signed field, negative inside the body at offset ``level`` (no inner cavities)."""
    out_mask = _outside(D, level)
    phi = D - level
    phi[~out_mask] = np.minimum(phi[~out_mask], -0.5 * VOXEL_MM)
    return phi


def _closed_field(D: np.ndarray, level: float, close_mm: float) -> np.ndarray:
    """Like :func:`_level_field` but bridging gaps narrower than ~``2 * close_mm`` (a
    morphological closing), so the fat does not leak between muscles into the body."""
    from scipy import ndimage

    outside = _outside(D, level + close_mm)
    E = ndimage.distance_transform_edt(~outside, sampling=VOXEL_MM).astype(np.float32)
    # blurred so no grid value sits exactly on the level (marching cubes would emit
    # non-manifold pieces)
    return ndimage.gaussian_filter(close_mm - E, 0.8) + 1e-3


def _contour_field(phi: np.ndarray, lo: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed, outward-oriented surface where ``phi`` crosses 0 (phi < 0 inside)."""
    import trimesh
    from skimage import measure

    phi = np.pad(phi, 2, constant_values=float(np.max(phi)))  # closed at the grid edge
    verts, faces, _, _ = measure.marching_cubes(phi, level=0.0, spacing=(VOXEL_MM,) * 3)
    v, f = verts + lo - 2 * VOXEL_MM, faces.astype(np.int32)
    # keep the outer envelope only: the largest piece (drops cavities deep in the body)
    m = trimesh.Trimesh(v, f, process=False)
    pieces = m.split(only_watertight=False)
    if len(pieces) > 1:
        m = max(pieces, key=lambda c: c.area)
        v, f = np.asarray(m.vertices, float), np.asarray(m.faces, np.int32)
    # Taubin smoothing keeps the topology; manifold3d's simplification keeps it a closed
    # manifold (quadric decimation did not)
    v = geo.smooth(v, f, iterations=10)
    v, f = geo.simplify_manifold(v, f, tolerance)
    # simplification can pinch off slivers (a few mm^2) from thin places: drop them, or a
    # needle deep in the body would meet a fleck of "skin"
    m = trimesh.Trimesh(v, f, process=False)
    pieces = m.split(only_watertight=False)
    if len(pieces) > 1:
        m = max(pieces, key=lambda c: c.area)
        v, f = np.asarray(m.vertices, float), np.asarray(m.faces, np.int32)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        f = f[:, ::-1].copy()
    return v, f


def _offset_inwards(surface, mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The skin's inner surface: the outer one moved ``mm`` inwards along its vertex
    normals, so the skin is the same thickness everywhere (contouring both levels on the
    4.5 mm grid gave 1-3.5 mm). The smoothed envelope bends far more gently than 2 mm."""
    import trimesh

    v, f = surface
    n = trimesh.Trimesh(v, f, process=False).vertex_normals  # outward: faces are oriented
    return v - mm * n, f.copy()


def _shell(outer, inner) -> tuple[np.ndarray, np.ndarray]:
    (vo, fo), (vi, fi) = outer, inner
    return np.vstack([vo, vi]), np.vstack([fo, fi[:, ::-1] + len(vo)]).astype(np.int32)


def _refine_signed_distance(sd: np.ndarray, lo: np.ndarray, surface, band: float) -> np.ndarray:
    import trimesh
    from scipy.spatial import cKDTree

    v, f = surface
    m = trimesh.Trimesh(v, f, process=False)
    samp, _ = trimesh.sample.sample_surface(m, int(m.area / SAMPLE_MM**2), seed=0)
    tree = cKDTree(np.vstack([v, samp]))
    idx = np.nonzero(np.abs(sd) < band)
    d, _ = tree.query(lo + np.column_stack(idx) * VOXEL_MM, workers=-1)
    out = sd.copy()
    out[idx] = np.sign(sd[idx]) * d
    return out


#: The fat's deep surface stays at least this far inside the skin's inner surface.
DEEP_MARGIN_MM = 1.0


def add_skin(atlas: Atlas, progress=lambda m, f: None) -> None:
    """Build skin and subcutaneous shells for every habitus and add them to the atlas.

    The average build's surfaces are level sets of the distance to every structure.
    Lean and obese builds offset the average body surface uniformly (signed distance to
    it), so the fat gets thinner or thicker by the same amount everywhere, as the
    published depths describe, instead of filling concavities differently. The fat's deep
    surface is clipped to stay inside the skin (in thin limbs it would cross it).
    """
    from scipy import ndimage

    avg = FAT_MM["average"]
    progress("skin: distance field", 0.0)
    D, lo = _distance_field(atlas, avg + SKIN_MM + 6 * VOXEL_MM,
                            exact_max=max(avg + SKIN_MM, DEEP_MM + DEEP_CLOSE_MM) + VOXEL_MM)
    progress("skin: fields", 0.2)
    outer_avg = _level_field(D, avg + SKIN_MM)
    body = outer_avg < 0
    # signed distance to the average body surface (positive outside): the voxel EDT of
    # the body mask, refined near the surface by exact distances to the average skin mesh
    # (the voxel EDT alone is off by up to half a voxel, which made the skin's thickness vary)
    sd = (ndimage.distance_transform_edt(~body, sampling=VOXEL_MM)
          - ndimage.distance_transform_edt(body, sampling=VOXEL_MM)).astype(np.float32)
    avg_outer = _contour_field(outer_avg, lo, SIMPLIFY_MM)
    sd = _refine_signed_distance(sd, lo, avg_outer, band=max(abs(FAT_MM[h] - avg) for h in HABITUS) + 2 * VOXEL_MM)
    fields = {"average": (outer_avg, _level_field(D, avg))}
    for h in ("lean", "obese"):
        delta = FAT_MM[h] - avg
        fields[h] = (sd - delta - 1e-3, sd - (delta - SKIN_MM) - 1e-3)
    deep = _closed_field(D, DEEP_MM, DEEP_CLOSE_MM)
    for i, h in enumerate(HABITUS):
        progress(f"skin: {h} build", 0.3 + 0.23 * i)
        outer_phi, inner_phi = fields[h]
        out_s = avg_outer if h == "average" else _contour_field(outer_phi, lo, SIMPLIFY_MM)
        in_s = _offset_inwards(out_s, SKIN_MM)
        deep_s = _contour_field(np.maximum(deep, inner_phi + DEEP_MARGIN_MM), lo, DEEP_SIMPLIFY_MM)
        fat = FAT_MM[h]
        sv, sf = _shell(out_s, in_s)
        fv, ff = _shell(in_s, deep_s)
        meta = {"habitus": h, "fat_mm": fat, "skin_mm": SKIN_MM}
        atlas.add(Structure(_variant_id("skin", h), f"skin ({h} build)", "skin", "midline", "whole body", sv, sf,
                            source="imssim (distance-field envelope of the atlas)", meta=dict(meta)))
        atlas.add(Structure(_variant_id("subcutaneous", h), f"subcutaneous fat ({h} build)", "subcutaneous",
                            "midline", "whole body", fv, ff,
                            source="imssim (distance-field envelope of the atlas)", meta=dict(meta)))


def habitus_variants(atlas: Atlas) -> list[str]:
    return [h for h in HABITUS if _variant_id("skin", h) in atlas.structures]


def for_habitus(atlas: Atlas, habitus: str = "average") -> Atlas:
    """A view of the atlas with one body habitus: its skin and fat as ``skin`` and
    ``subcutaneous``, the other variants left out. Meshes are shared, not copied."""
    if habitus not in HABITUS:
        raise ValueError(f"unknown body habitus {habitus!r}; expected one of {', '.join(HABITUS)}")
    if not habitus_variants(atlas):
        return atlas
    out = Atlas(atlas.name, attributions=atlas.attributions, meta={**atlas.meta, "habitus": habitus})
    out.volumes = atlas.volumes
    for s in atlas:
        if "@" in s.id:
            kind, h = s.id.split("@", 1)
            if h != habitus:
                continue
            v = Structure(kind, "skin" if kind == "skin" else "subcutaneous fat", s.kind, s.side, s.region,
                          s.vertices, s.faces, source=s.source, aliases=(s.name,), meta=s.meta)
            out.add(v)
        else:
            out.add(s)
    for lm in atlas.landmarks.values():
        out.add_landmark(lm)
    return out
