"""Danger structures fitted to the atlas's real skeleton.

BodyParts3D has bones and muscles but no lungs, spinal cord, nerves, vessels or kidneys.
imssim builds them here, at first start, on the real bones (every step measures the
meshes; nothing is placed by fixed coordinates). Each is a closed, watertight manifold
with the harm it stands for:

- ``lung_r`` / ``lung_l`` (organ, pneumothorax), the pleural cavity: the ribs, every
  thoracic vertebra and the external, internal and innermost intercostal muscles,
  transversus thoracis and the diaphragm are voxelised (1.5 mm); the cage is closed where
  the source has no bone (a sheet across the front where the sternum and costal cartilages
  would be, the thoracic inlet on a plane through the tops of the first ribs, a floor
  under T12); its interior is what a ball of 8 mm rolled in from outside cannot reach (so
  the gaps the source leaves between the rib necks and transverse processes do not let the
  outside in), above the diaphragm's upper surface. The lung is that interior opened by a
  6 mm ball (nothing bulges into a small gap) and kept off the wall: the parietal pleura
  lies 1.7-3.1 mm (median 2.4) inside the ribs and the intercostal muscles. A mediastinum
  the source lacks is cut out (heart, great vessels, trachea and oesophagus, descending
  aorta, sternum), each sized from the cage and the vertebrae; any other muscle that
  reaches into the cage (the reconstructed pectoralis major, the scalenes) is kept out.
  The apex rises ~30 mm above the front of the first rib, to the level of its neck.
- ``spinal_canal`` (canal, cord injury), the dural sac: an elliptical tube through the
  centre of every real vertebral foramen C1-L5 (found as the enclosed hole of each
  vertebra's axial sections; at C1, behind the dens), 1.5 mm inside the foramen, from the
  foramen magnum down into the top of the sacrum; the shipped sacrum has no open canal,
  so the sac ends at its upper surface. ``spinal_cord`` (nerve, cord injury) runs in it to
  the L1-L2 disc (cervical and lumbar enlargements, conus); ``cauda_equina`` (nerve, nerve
  injury) fills the sac's centre from the conus down.
- ``nerve_root_<C4..S1>_<r|l>`` (nerve, nerve injury): from the sac through the real
  intervertebral foramen (the free point most enclosed by bone between the pedicles of
  the two vertebrae: C4 between C3 and C4 ... C8 between C7 and T1, T1 between T1 and T2
  ... L5 between L5 and the sacrum), then down, out and forward (cervical: out and
  forward; thoracic: out under the rib), each turned within 55 degrees to the way with
  the least bone. S1 leaves the sac at the L5-S1 level and, as the shipped sacrum has no
  open canal or foramina, reaches the front of the sacrum at its S1 anterior foramen
  (22 mm lateral, 25 mm below its top) over the top of S1, then runs down and out over
  the pelvic surface toward the greater sciatic foramen.
- ``vertebral_artery_<r|l>`` (vessel, vascular injury): from the subclavian up through
  the real transverse foramina C6-C1 (found as the free point most enclosed by bone
  beside each cervical vertebral body), then back over the posterior arch of the atlas
  and into the foramen magnum.
- ``kidney_<r|l>`` (organ, organ puncture): ellipsoids of adult size (10 x 5 x 3.4 cm)
  lateral to psoas, in front of quadratus lumborum, the upper pole at T12 (the right one
  15 mm lower), the hilum turned forward and in; the position (within 12-24 mm) and turn
  that overlap the least muscle and bone and lie furthest back are chosen, then the
  kidney is cut free of every muscle, bone and the lung.
- ``sciatic_nerve_<r|l>`` (nerve, nerve injury): from the front of the sacrum (where the
  S1 root ends) along the cheapest path through the free room of the pelvis to the front
  of piriformis's medial part where the muscle crosses the greater sciatic foramen, out
  right under its lower border (a third of the way along it), on the back of the gemelli,
  obturator internus and quadratus femoris deep to gluteus maximus, a third of the way
  from the ischial tuberosity to the greater trochanter, then down the back of the thigh
  on adductor magnus under the medial half of the long head of biceps femoris (the point
  with most room at each level) to the apex of the popliteal fossa, where it divides.
- ``common_peroneal_nerve_<r|l>`` (nerve, nerve injury): from that division down and out
  behind the lateral femoral condyle, lateral to gastrocnemius's lateral head (where the
  biceps tendon would be; the source's short head of biceps lies inside the femur there),
  behind the fibular head and round the fibular neck, 28 mm below the head's top.

Every nerve and vessel tube is cut free of the bones it would touch (manifold booleans).
The shapes are simplified; their positions follow the real bones and muscles, so depths
from the skin are realistic (``tests/test_danger_fit.py`` checks placements).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..atlas import Atlas, Structure
from . import geometry as geo
from . import voxel as vx

SRC = "imssim (fitted to the BodyParts3D skeleton)"

LUNG_VOXEL_MM = 1.5
#: voxel distance kept between the pleura and the wall; the wall voxels (surfaces marked on
#: a 1.5 mm grid) stand ~1 mm proud of the real surfaces, so the measured gap is ~2 mm
PLEURA_GAP_MM = 1.0
FLOOD_BALL_MM = 8.0  # the outside cannot enter the cage through gaps narrower than 16 mm
LUNG_BALL_MM = 6.0  # the lung is the union of balls this big: no bulge through a window


# -- helpers -----------------------------------------------------------------------------


def _edt(mask: np.ndarray, h: float) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=h)


#: per-build caches (cleared by :func:`add_danger_structures`): solids on a lattice of
#: voxel size h (origins at multiples of h), and manifolds, by structure
_SOLIDS: dict = {}
_MANIFOLDS: dict = {}
_BOUNDS: dict = {}


def _grid(lo, hi, h: float) -> vx.Grid:
    """A grid covering [lo, hi] whose voxel centres lie on the lattice of multiples of h."""
    i0 = np.floor(np.asarray(lo, float) / h)
    i1 = np.ceil(np.asarray(hi, float) / h)
    return vx.Grid(i0 * h, float(h), tuple(int(n) for n in i1 - i0 + 1))


def _parity_solid(v: np.ndarray, f: np.ndarray, g: vx.Grid) -> np.ndarray:
    """Voxels of ``g`` whose centres lie inside the closed mesh (v, f): each column along z
    toggles at every triangle it crosses (column centres are offset by a hair so that no
    column meets an edge or vertex exactly)."""
    nx, ny, nz = g.shape
    eps = g.h * np.array([1.234567e-4, 2.345671e-4])
    tri = v[f]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    ok = np.abs(area) > 1e-12
    a, b, c, area = a[ok], b[ok], c[ok], area[ok]
    lo = np.minimum(np.minimum(a, b), c)[:, :2]
    hi = np.maximum(np.maximum(a, b), c)[:, :2]
    i0 = np.ceil((lo - g.origin[:2] - eps) / g.h).astype(np.int64)
    i1 = np.floor((hi - g.origin[:2] - eps) / g.h).astype(np.int64)
    ni = np.maximum(i1[:, 0] - i0[:, 0] + 1, 0)
    nj = np.maximum(i1[:, 1] - i0[:, 1] + 1, 0)
    cnt = ni * nj
    t = np.repeat(np.arange(len(a)), cnt)
    if len(t) == 0:
        return np.zeros(g.shape, bool)
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    k = np.arange(len(t)) - start
    ii = i0[t, 0] + k // nj[t]
    jj = i0[t, 1] + k % nj[t]
    px = g.origin[0] + ii * g.h + eps[0]
    py = g.origin[1] + jj * g.h + eps[1]
    A, B, C = a[t], b[t], c[t]
    w1 = ((px - A[:, 0]) * (C[:, 1] - A[:, 1]) - (C[:, 0] - A[:, 0]) * (py - A[:, 1])) / area[t]
    w2 = ((B[:, 0] - A[:, 0]) * (py - A[:, 1]) - (px - A[:, 0]) * (B[:, 1] - A[:, 1])) / area[t]
    inside = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1) & (ii >= 0) & (ii < nx) & (jj >= 0) & (jj < ny)
    z = A[:, 2] + w1 * (B[:, 2] - A[:, 2]) + w2 * (C[:, 2] - A[:, 2])
    kz = np.clip(np.ceil((z - g.origin[2]) / g.h).astype(np.int64), 0, nz)
    flat = (ii * ny + jj) * (nz + 1) + kz
    tog = np.bincount(flat[inside], minlength=nx * ny * (nz + 1)).reshape(nx, ny, nz + 1)
    return (np.cumsum(tog[:, :, :nz], axis=2) & 1).astype(bool)


def _solid(s: Structure, h: float, spacing: float, fill: bool):
    key = (s.id, id(s.vertices), h, spacing, fill)
    got = _SOLIDS.get(key)
    if got is None:
        v = np.asarray(s.vertices, float)
        sub = _grid(v.min(0) - 2 * h, v.max(0) + 2 * h, h)
        ijk = sub.index(vx.surface_samples(v, s.faces, (spacing if not fill else max(spacing, 1.0)) * h))
        ok = np.all((ijk >= 0) & (ijk < np.array(sub.shape)), axis=1)
        m = np.zeros(sub.shape, bool)
        m[tuple(ijk[ok].T)] = True
        if fill:  # the inside by ray parity (the meshes are closed), and thin parts by their surface
            m |= _parity_solid(v, np.asarray(s.faces), sub)
        got = _SOLIDS[key] = (np.rint(sub.origin / h).astype(int), m)
    return got


def solid_voxels(structs, grid: vx.Grid, spacing: float = 0.8, fill: bool = True) -> np.ndarray:
    """Voxels inside any of the (closed) structures on ``grid`` (made by :func:`_grid`):
    each surface is sampled ``spacing * h`` apart into a box around the whole structure
    and filled there (``fill=False``: only the surface voxels, enough for thin sheets)."""
    out = np.zeros(grid.shape, bool)
    shape = np.array(grid.shape)
    g0 = np.rint(grid.origin / grid.h).astype(int)
    for s in structs:
        o, m = _solid(s, grid.h, spacing, fill)
        i0 = o - g0
        i1 = i0 + np.array(m.shape)
        a, b = np.maximum(i0, 0), np.minimum(i1, shape)
        if (b <= a).any():
            continue
        out[a[0] : b[0], a[1] : b[1], a[2] : b[2]] |= m[a[0] - i0[0] : b[0] - i0[0], a[1] - i0[1] : b[1] - i0[1],
                                                       a[2] - i0[2] : b[2] - i0[2]]
    return out


def _outward(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        f = f[:, ::-1]
    return np.ascontiguousarray(f, dtype=np.int32)


def mesh_field(F: np.ndarray, grid: vx.Grid, smooth_iter: int = 8, simplify_mm: float = 0.4):
    """Closed surface of ``F > 0`` (F in mm, positive inside) on ``grid``."""
    from skimage.measure import marching_cubes

    f = np.pad(F.astype(np.float32), 2, constant_values=-grid.h)
    f = ndimage.gaussian_filter(f, 0.6)
    v, fa, _, _ = marching_cubes(f, 0.0, spacing=(grid.h,) * 3)
    v = v + grid.origin - 2 * grid.h
    fa = fa[:, ::-1].astype(np.int32)
    if smooth_iter:
        v = geo.smooth(v, fa, iterations=smooth_iter)
    v, fa = geo.simplify_manifold(v, fa, simplify_mm)
    return v, _outward(v, fa)


def _manifold(v, f):
    import manifold3d as m3d

    return m3d.Manifold(m3d.Mesh(vert_properties=np.asarray(v, np.float32), tri_verts=np.asarray(f, np.uint32)))


def _vf(man) -> tuple[np.ndarray, np.ndarray]:
    m = man.to_mesh()
    v = np.asarray(m.vert_properties[:, :3], float)
    return v, _outward(v, np.asarray(m.tri_verts, np.int32))


def _bounds(s: Structure) -> np.ndarray:
    key = (s.id, id(s.vertices))
    if key not in _BOUNDS:
        _BOUNDS[key] = s.bounds
    return _BOUNDS[key]


def _overlapping(structs, lo, hi, pad=2.0):
    out = []
    for s in structs:
        b = _bounds(s)
        if (b[0] <= hi + pad).all() and (b[1] >= lo - pad).all():
            out.append(s)
    return out


def _structure_manifold(s: Structure):
    key = (s.id, id(s.vertices))
    if key not in _MANIFOLDS:
        _MANIFOLDS[key] = _manifold(s.vertices, s.faces)
    return _MANIFOLDS[key]


def cut_free(v, f, others) -> tuple[np.ndarray, np.ndarray, float]:
    """``(v, f)`` minus the closed meshes ``others`` (the largest piece is kept); returns
    the new mesh and the fraction of the volume removed."""
    import manifold3d as m3d

    man = _manifold(v, f)
    vol0 = man.volume()
    lo, hi = v.min(0) - 3.0, v.max(0) + 3.0
    near = [s for s in _overlapping(others, lo, hi)
            if np.all((s.vertices >= lo) & (s.vertices <= hi), axis=1).any()]  # a vertex near the tube
    if not near:
        return v, f, 0.0
    res = m3d.Manifold.batch_boolean([man] + [_structure_manifold(s) for s in near], m3d.OpType.Subtract)
    parts = res.decompose()
    if not parts:
        return v, f, 1.0
    best = max(parts, key=lambda p: p.volume())
    v2, f2 = _vf(best)
    return v2, f2, float(1.0 - best.volume() / max(vol0, 1e-9))


def _tube(points, radius, sides: int = 16, aspect=1.0, flat_dir=None, step_mm: float = 3.0, smooth: int = 3):
    """A closed tube along a smoothed polyline; ``radius`` and ``aspect`` are scalars or
    values at the given points (interpolated by arc length)."""
    p = geo.dedupe_polyline(np.asarray(points, float))
    s_in = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    s_in /= max(s_in[-1], 1e-9)
    q = geo.chaikin(p, smooth)
    c, u = geo.resample_polyline(q, max(8, int(geo.polyline_length(q) / step_mm)))

    def per_station(x):
        x = np.asarray(x, float)
        if x.ndim == 0:
            return np.full(len(c), float(x))
        return np.interp(u, s_in, x)

    return geo.tube(c, per_station(radius), sides=sides, aspect=per_station(aspect), flat_dir=flat_dir)


def _enclosure(m: np.ndarray, axes: tuple[int, int], reach_vox: int, ndir: int = 16) -> np.ndarray:
    """For every voxel, how many of ``ndir`` rays in the plane of ``axes`` meet the mask
    within ``reach_vox`` voxels."""
    score = np.zeros(m.shape, np.uint8)
    pad = [(0, 0)] * 3
    for a in axes:
        pad[a] = (reach_vox + 1, reach_vox + 1)
    mp = np.pad(m, pad)
    for ang in np.linspace(0, 2 * np.pi, ndir, endpoint=False):
        hit = np.zeros(m.shape, bool)
        for t in range(1, reach_vox + 1):
            off = [0, 0, 0]
            off[axes[0]] = int(round(np.cos(ang) * t))
            off[axes[1]] = int(round(np.sin(ang) * t))
            sl = tuple(
                slice(pad[k][0] + off[k], pad[k][0] + off[k] + m.shape[k]) for k in range(3)
            )
            hit |= mp[sl]
        score += hit
    return score


def _enclosed_point(m, grid: vx.Grid, axes, region, reach_mm: float, min_score: int = 15):
    """The centre of the hole most enclosed by ``m`` in the plane of ``axes`` within the
    boolean ``region``: among free voxels that rays in 15 of 16 directions see bone around
    within ``reach_mm``, the one farthest from bone. Returns (point, free radius) or None."""
    if not region.any():
        return None
    reach = int(np.ceil(reach_mm / grid.h))
    idx = np.argwhere(region)
    lo, hi = idx.min(0), idx.max(0) + 1
    sl = []
    for k in range(3):
        a, b = int(lo[k]), int(hi[k])
        if k in axes:
            a, b = max(a - reach - 1, 0), min(b + reach + 1, m.shape[k])
        sl.append(slice(a, b))
    sl = tuple(sl)
    mc = m[sl]
    score = _enclosure(mc, axes, reach)
    cand = (score >= min_score) & ~mc & region[sl]
    if not cand.any():
        return None
    fd = np.where(cand, _edt(~mc, grid.h), 0.0)
    i = np.unravel_index(int(np.argmax(fd)), fd.shape)
    ijk = np.array([i[k] + sl[k].start for k in range(3)])
    return grid.points(ijk), float(fd[i])


# -- the spine: foramina measured on the real vertebrae --------------------------------


LEVELS = (tuple(f"C{i}" for i in range(1, 8)) + tuple(f"T{i}" for i in range(1, 13))
          + tuple(f"L{i}" for i in range(1, 6)))


@dataclass
class Foramen:
    """A vertebral foramen: centre (mm), half width (x) and half depth (y), and the
    z-range where the bony ring is closed (the pedicles)."""

    level: str
    centre: np.ndarray
    half_width: float
    half_depth: float
    z_lo: float
    z_hi: float


class Spine:
    """Foramina of the atlas's vertebrae, measured once and shared by the builders."""

    def __init__(self, atlas: Atlas):
        self.atlas = atlas
        self.vertebrae = {lv: atlas.get(f"vertebra_{lv}") for lv in LEVELS if f"vertebra_{lv}" in atlas}
        self.midline_x = float(np.median(np.concatenate([s.vertices[:, 0] for s in self.vertebrae.values()])))
        self.foramina: dict[str, Foramen] = {}
        for lv, s in self.vertebrae.items():
            fo = self._vertebral_foramen(lv, s)
            if fo is not None:
                self.foramina[lv] = fo
        self._tf: dict | None = None
        self._ivf: dict | None = None

    def levels(self) -> list[str]:
        return [lv for lv in LEVELS if lv in self.foramina]

    def _vertebral_foramen(self, lv: str, s: Structure) -> Foramen | None:
        h = 1.0
        v = s.vertices
        g = _grid(v.min(0) - 2 * h, v.max(0) + 2 * h, h)
        m = solid_voxels([s], g)
        xs = g.origin[0] + h * np.arange(g.shape[0])
        ys = g.origin[1] + h * np.arange(g.shape[1])
        rows = []
        for k in range(g.shape[2]):
            sl = m[:, :, k]
            hol = ndimage.binary_fill_holes(sl) & ~sl
            lab, n = ndimage.label(hol)
            for i in range(1, n + 1):
                pix = np.argwhere(lab == i)
                cx = xs[pix[:, 0]].mean()
                if len(pix) < 20 or abs(cx - self.midline_x) > 6:
                    continue
                px, py = xs[pix[:, 0]], ys[pix[:, 1]]
                rows.append((g.origin[2] + k * h, cx, py.mean(), len(pix) * h * h,
                             (px.max() - px.min() + h) / 2, (py.max() - py.min() + h) / 2))
        if not rows:
            return None
        r = np.array(rows)
        big = r[r[:, 3] >= 0.5 * r[:, 3].max()]
        c = np.array([np.median(big[:, 1]), np.median(big[:, 2]), np.median(big[:, 0])])
        return Foramen(lv, c, float(np.median(big[:, 4])), float(np.median(big[:, 5])),
                       float(r[:, 0].min()), float(r[:, 0].max()))

    # transverse foramina (vertebral artery), C1-C6
    def transverse_foramina(self) -> dict[tuple[str, str], tuple[np.ndarray, float]]:
        if self._tf is not None:
            return self._tf
        out = {}
        for lv in ("C1", "C2", "C3", "C4", "C5", "C6"):
            s = self.vertebrae.get(lv)
            fo = self.foramina.get(lv)
            if s is None or fo is None:
                continue
            h = 0.5
            v = s.vertices
            g = _grid(v.min(0) - 2 * h, v.max(0) + 2 * h, h)
            m = solid_voxels([s], g)
            P = g.points(np.indices(g.shape).reshape(3, -1).T).reshape(*g.shape, 3)
            z0, z1 = np.percentile(v[:, 2], [15, 85])
            for side, sx in (("r", -1.0), ("l", 1.0)):
                d = sx * (P[..., 0] - self.midline_x)
                region = ((d > 9) & (d < 35) & (P[..., 2] > z0) & (P[..., 2] < z1)
                          & (np.abs(P[..., 1] - fo.centre[1]) < 25))
                res = _enclosed_point(m, g, (0, 1), region, 8.0)
                if res is not None:
                    out[(lv, side)] = res
        self._tf = out
        return out

    # intervertebral foramina (nerve roots)
    def intervertebral_foramina(self) -> dict[tuple[str, str], tuple[np.ndarray, float]]:
        """Root name -> the centre of its foramen: C4 between C3 and C4, ..., C8 between
        C7 and T1, T1 between T1 and T2, ..., L5 between L5 and the sacrum."""
        if self._ivf is not None:
            return self._ivf
        out = {}
        pairs = []
        for i, lv in enumerate(LEVELS[:-1]):
            nxt = LEVELS[i + 1]
            if lv[0] == "C":
                root = f"C{int(lv[1:]) + 1}" if lv != "C7" else "C8"
            else:
                root = lv
            pairs.append((root, lv, nxt))
        pairs.append(("L5", "L5", "sacrum"))
        keep = {f"C{i}" for i in range(4, 9)} | {f"T{i}" for i in range(1, 13)} | {f"L{i}" for i in range(1, 6)}
        for root, up, down in pairs:
            if root not in keep or up not in self.foramina:
                continue
            su = self.vertebrae[up]
            sd = self.atlas.get("sacrum") if down == "sacrum" and "sacrum" in self.atlas else self.vertebrae.get(down)
            if sd is None:
                continue
            fo = self.foramina[up]
            lo_z = fo.z_lo - 8
            hi_z = self.foramina[down].z_hi + 8 if down in self.foramina else su.vertices[:, 2].min() - 20
            h = 1.0
            parts = [su, sd]
            vv = np.vstack([p.vertices for p in parts])
            lo = np.array([fo.centre[0] - fo.half_width - 25, fo.centre[1] - 40, min(lo_z, hi_z) - 5])
            hi = np.array([fo.centre[0] + fo.half_width + 25, fo.centre[1] + 25, max(fo.z_lo, fo.z_hi) + 5])
            lo = np.maximum(lo, vv.min(0) - 2)
            hi = np.minimum(hi, vv.max(0) + 2)
            g = _grid(lo, hi, h)
            m = solid_voxels(parts, g)
            P = g.points(np.indices(g.shape).reshape(3, -1).T).reshape(*g.shape, 3)
            zt = fo.z_lo + 0.3 * (fo.z_hi - fo.z_lo)  # below the upper pedicle's middle
            if down in self.foramina:  # above the lower pedicle's middle
                fd = self.foramina[down]
                zb = fd.z_hi - 0.3 * (fd.z_hi - fd.z_lo)
            else:
                zb = su.vertices[:, 2].min() - 12
            for side, sx in (("r", -1.0), ("l", 1.0)):
                d = sx * (P[..., 0] - fo.centre[0])
                # between the pedicles: just lateral to the canal's edge (the lateral recess,
                # medial to the pedicles, is enclosed in this plane too)
                region = ((d > fo.half_width + 2.0) & (d < fo.half_width + 6.5) & (P[..., 2] < zt) & (P[..., 2] > zb)
                          & (P[..., 1] < fo.centre[1] + 2) & (P[..., 1] > fo.centre[1] - fo.half_depth - 4))
                res = _enclosed_point(m, g, (1, 2), region, 12.0, min_score=14)
                if res is not None:
                    out[(root, side)] = res
        self._ivf = out
        return out


# -- lungs -----------------------------------------------------------------------------


def _body_front(spine: Spine) -> np.ndarray:
    """(z, y) of the front of each vertebral body, sorted by z."""
    out = []
    for s in spine.vertebrae.values():
        v = s.vertices
        near = v[np.abs(v[:, 0] - spine.midline_x) < 8]
        out.append((s.centroid[2], near[:, 1].min()))
    return np.array(sorted(out))


def _hull_mask(hull_pts: np.ndarray, shape2) -> np.ndarray:
    from skimage.draw import polygon

    m = np.zeros(shape2, bool)
    rr, cc = polygon(hull_pts[:, 0], hull_pts[:, 1], shape2)
    m[rr, cc] = True
    return m


def lungs(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    from scipy.spatial import ConvexHull
    from skimage.draw import line as draw_line

    spine = spine or Spine(atlas)
    bones = atlas.find(kind="bone")
    ribs = [s for s in bones if s.id.startswith("rib_")]
    r1 = [s.vertices for s in ribs if s.id.startswith("rib_1_")]
    if len(ribs) < 12 or not r1 or "diaphragm" not in atlas or "T12" not in spine.vertebrae:
        return []
    r1 = np.vstack(r1)
    verts = [s for lv, s in spine.vertebrae.items() if lv[0] in "TL" or lv == "C7"]
    ics = [s for s in atlas
           if s.kind == "muscle" and ("intercostal" in s.id or s.id.startswith("transversus_thoracis"))]
    dia = atlas.get("diaphragm")
    h = LUNG_VOXEL_MM
    rv = np.vstack([s.vertices for s in ribs])
    z_floor = float(spine.vertebrae["T12"].vertices[:, 2].min())  # the pleura reaches T12 at the back
    lo = np.array([rv[:, 0].min() - 12, rv[:, 1].min() - 12, z_floor - 6])
    hi = np.array([rv[:, 0].max() + 12, rv[:, 1].max() + 22, rv[:, 2].max() + 20])
    g = _grid(lo, hi, h)
    nx, ny, nz = g.shape
    xs = g.origin[0] + h * np.arange(nx)
    ys = g.origin[1] + h * np.arange(ny)
    zs = g.origin[2] + h * np.arange(nz)
    Xg, Yg, Zg = xs[:, None, None], ys[None, :, None], zs[None, None, :]
    wall = solid_voxels(ribs + verts, g) | solid_voxels(ics, g, fill=False)
    diam = solid_voxels([dia], g)
    W = wall | diam

    # the thoracic inlet: a plane z = a + b*y on the tops of the first ribs
    tops = []
    for y0 in np.arange(r1[:, 1].min(), r1[:, 1].max(), 6.0):
        sel = (r1[:, 1] >= y0) & (r1[:, 1] < y0 + 6)
        if sel.sum() > 3:
            tops.append(r1[sel][np.argmax(r1[sel][:, 2])])
    tops = np.array(tops)
    b, a = np.polyfit(tops[:, 1], tops[:, 2], 1)
    # the front of the cage where the source has no bone (sternum, costal cartilages): per
    # axial section, the edges of the section's convex hull in front of the vertebral
    # bodies; and a floor under T12
    bf = _body_front(spine)
    y_body = np.interp(zs, bf[:, 0], bf[:, 1])
    virt = np.zeros(g.shape, bool)
    kf = int(round((z_floor - g.origin[2]) / h))
    for k in range(nz):
        sl = W[:, :, k]
        if sl.sum() < 30:
            continue
        pts = np.argwhere(sl)
        try:
            hv = pts[ConvexHull(pts).vertices]
        except Exception:
            continue
        if k in (kf, kf + 1):
            virt[:, :, k] |= _hull_mask(hv, sl.shape)
        yc = (y_body[k] - g.origin[1]) / h
        for i in range(len(hv)):
            p, q = hv[i], hv[(i + 1) % len(hv)]
            if max(p[1], q[1]) < yc:
                rr, cc = draw_line(p[0], p[1], q[0], q[1])
                virt[rr, cc, k] = True
    cap = np.broadcast_to((Zg > a + b * Yg - 2.0) | (Zg < z_floor), g.shape)
    block = W | virt | cap

    # the outside: everything a ball of FLOOD_BALL_MM reaches from the grid's edge (found
    # on a 2x coarser grid; only gaps in the wall depend on it)
    c2 = block[: nx // 2 * 2, : ny // 2 * 2, : nz // 2 * 2]
    c2 = c2.reshape(nx // 2, 2, ny // 2, 2, nz // 2, 2).any(axis=(1, 3, 5))
    free = _edt(~c2, 2 * h) >= FLOOD_BALL_MM
    lab, _n = ndimage.label(free)
    edge = np.unique(np.concatenate([lab[[0, -1]].ravel(), lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()]))
    reach = np.isin(lab, edge[edge > 0])
    outside2 = _edt(~reach, 2 * h) <= FLOOD_BALL_MM + h
    outside = np.ones(g.shape, bool)
    outside[: nx // 2 * 2, : ny // 2 * 2, : nz // 2 * 2] = outside2.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    interior = ~outside & ~block
    del lab, free, reach, outside2, outside
    # above the diaphragm's upper surface
    kk = np.arange(nz)[None, None, :]
    top = np.where(diam, kk, -1).max(axis=2)
    miss = top < 0
    if miss.any() and (~miss).any():
        idx = ndimage.distance_transform_edt(miss, return_distances=False, return_indices=True)
        top = top[idx[0], idx[1]]
    interior &= kk > top[:, :, None]

    # the mediastinum (heart, great vessels, trachea, oesophagus, aorta, sternum): not in
    # the source; sized from the cage and the vertebrae
    x0 = spine.midline_x
    midband = np.abs(xs - x0) < 25
    front = np.full(nz, np.nan)
    wfront = np.full(nz, np.nan)
    for k in range(nz):
        col = interior[midband, :, k].any(axis=0)
        if col.any():
            front[k] = ys[np.argmax(col)]
        col = (W[midband, :, k] | virt[midband, :, k]).any(axis=0)
        if col.any():
            wfront[k] = ys[np.argmax(col)]
    for arr in (front, wfront):
        ok = ~np.isnan(arr)
        arr[:] = np.interp(zs, zs[ok], arr[ok])
    dv = dia.vertices
    z_dome = float(dv[np.abs(dv[:, 0] - x0) < 25][:, 2].max())  # central tendon
    width = float(rv[:, 0].max() - rv[:, 0].min())
    zc = {lv: s.centroid[2] for lv, s in spine.vertebrae.items()}
    z_heart_top = zc.get("T5", z_dome + 90)
    hz = (z_dome - 10 + z_heart_top) / 2
    kz = int(np.clip(round((hz - g.origin[2]) / h), 0, nz - 1))
    hy = (front[kz] + y_body[kz]) / 2 - 5
    ax_, ay_, az_ = 0.24 * width, (y_body[kz] - front[kz]) / 2 - 5, (z_heart_top - z_dome + 10) / 2 + 5
    heart = ((Xg - (x0 + 0.08 * width)) / ax_) ** 2 + ((Yg - hy) / ay_) ** 2 + ((Zg - hz) / az_) ** 2 <= 1
    vb = y_body[None, None, :]
    superior = (Zg > hz) & (np.abs(Xg - x0 - 4) < 24) & (Yg > front[None, None, :] - 5) & (Yg < vb + 12)
    posterior = (np.abs(Xg - x0) < 14) & (Yg > vb - 30) & (Yg < vb + 12) & (Zg > z_dome - 20)
    za, zb = zc.get("T4", hz + 60), zc.get("T12", z_dome - 80)
    t = np.clip((zs - zb) / (za - zb), 0, 1)
    ax_c, ay_c = (x0 + 3 + 13 * t)[None, None, :], (y_body + 4 - 4 * (1 - t))[None, None, :]
    aorta = (((Xg - ax_c) ** 2 + (Yg - ay_c) ** 2 <= 144.0)
             & (Zg < za + 10) & (Zg > zb))
    r7 = [s.vertices for s in ribs if s.id.startswith("rib_7_")]
    r7 = np.vstack(r7) if r7 else rv
    z_xiphoid = float(r7[r7[:, 1] < np.percentile(r7[:, 1], 5)][:, 2].mean())
    sternum = (np.abs(Xg - x0) < 14) & (Yg < wfront[None, None, :] + 14) & (Zg > z_xiphoid - 10)
    anterior = (np.abs(Xg - x0) < 5) & (Yg < vb)
    med = heart | superior | posterior | aorta | sternum | anterior

    # the lung: the interior opened by a ball of LUNG_BALL_MM, PLEURA_GAP_MM inside it
    centres = _edt(interior & ~med, h) >= LUNG_BALL_MM + PLEURA_GAP_MM
    F = LUNG_BALL_MM - _edt(~centres, h)
    del centres
    # any other muscle or bone that reaches in (the reconstructed pectoralis major, the
    # scalenes at the apex) stays outside too
    wall_ids = {s.id for s in ribs + verts + ics} | {dia.id}
    near = F > -3.0
    others = []
    for s in _overlapping([s for s in atlas if s.kind in ("bone", "muscle") and s.id not in wall_ids], lo, hi):
        ijk = g.index(s.vertices)
        ok = np.all((ijk >= 0) & (ijk < np.array(g.shape)), axis=1)
        if ok.any() and near[tuple(ijk[ok].T)].any():
            others.append(s)
    if others:
        F = np.minimum(F, _edt(~solid_voxels(others, g), h) - PLEURA_GAP_MM)
    lab, _n = ndimage.label(F > 0)
    out = []
    for side, sfx, sel in (("right", "r", xs < x0), ("left", "l", xs > x0)):
        L = np.where(sel[:, None, None], lab, 0)
        sizes = np.bincount(L.ravel())
        sizes[0] = 0
        if sizes.max() == 0:
            continue
        # the other side's voxels out (the components are apart by voxels with F <= 0)
        v, f = mesh_field(np.where((lab == 0) | (L == np.argmax(sizes)), F, -h), g)
        out.append(Structure(f"lung_{sfx}", f"{side} lung and pleura", "organ", side, "thoracic", v, f,
                             harm="pneumothorax", source=SRC, aliases=(f"{side} pleura", f"{side} lung"),
                             meta={"method": "rib cage interior, opened, kept off the wall"}))
    return out


# -- spinal canal, cord, cauda equina ---------------------------------------------------


def _spine_bones(atlas: Atlas) -> list[Structure]:
    return [s for s in atlas.find(kind="bone") if s.id.startswith("vertebra_") or s.id in ("sacrum", "skull")]


def _canal_stations(spine: Spine):
    """(points, half widths, half depths) of the dural sac from the foramen magnum down
    to below L5, one station per real vertebral foramen."""
    lv = spine.levels()
    fo = spine.foramina
    pts, hw, hd = [], [], []
    for level in lv:
        f = fo[level]
        c, w, d = f.centre.copy(), f.half_width, f.half_depth
        if level == "C1" and "C2" in fo:
            # the front of the atlas's ring holds the dens: the canal is C2's, behind it
            c[1], d, w = fo["C2"].centre[1], fo["C2"].half_depth, min(w, fo["C2"].half_width + 2)
        pts.append(c)
        hd.append(max(d - 1.5, 3.0))
        hw.append(max(min(w - 1.5, 1.5 * (d - 1.5)), 3.0))
    pts, hw, hd = np.array(pts), np.array(hw), np.array(hd)
    # up into the foramen magnum, down past L5 (the sacrum cuts it)
    top = pts[0] + np.array([0.0, 0.0, 14.0])
    dn = pts[-1] - pts[-2]
    dn /= np.linalg.norm(dn)
    bottom = pts[-1] + dn * 28.0
    pts = np.vstack([top, pts, bottom])
    hw = np.concatenate([[hw[0]], hw, [hw[-1]]])
    hd = np.concatenate([[hd[0]], hd, [hd[-1]]])
    return pts, hw, hd


def _elliptic_tube(pts, hw, hd, scale=1.0, step_mm=2.0):
    r = np.sqrt(hw * hd) * scale
    aspect = np.sqrt(hw / hd)
    return _tube(pts, r, sides=20, aspect=aspect, flat_dir=np.array([0.0, 1.0, 0.0]), step_mm=step_mm, smooth=3)


def spinal_canal(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    spine = spine or Spine(atlas)
    lv = spine.levels()
    if len(lv) < 6:
        return []
    bones = _spine_bones(atlas)
    pts, hw, hd = _canal_stations(spine)
    v, f = _elliptic_tube(pts, hw, hd)
    v, f, cut = cut_free(v, f, bones)
    out = [Structure("spinal_canal", "spinal canal (dural sac)", "canal", "midline", "spine", v, f,
                     harm="cord injury", source=SRC, aliases=("vertebral canal", "dural sac", "thecal sac"),
                     meta={"levels": lv, "cut_by_bone": round(cut, 4)})]
    fo = spine.foramina
    # the cord: to the L1-L2 disc, with the cervical and lumbar enlargements and the conus
    if "L1" in fo and "L2" in fo:
        z_end = (fo["L1"].z_lo + fo["L2"].z_hi) / 2
    else:
        z_end = pts[-1, 2]
    keep = pts[:, 2] > z_end
    cp = pts[keep]
    k_last = int(np.flatnonzero(keep).max())
    nxt = pts[k_last + 1]
    tt = (cp[-1, 2] - z_end) / max(cp[-1, 2] - nxt[2], 1e-6)
    cp = np.vstack([cp, cp[-1] + tt * (nxt - cp[-1])])
    names = ["top"] + lv + ["end"]
    cw, cd = [], []
    for i in range(len(cp)):
        name = names[i] if i < len(names) - 1 else "end"
        if name in ("top", "C1", "C2", "C3"):
            w, d = 5.5, 4.0
        elif name in ("C4", "C5", "C6", "C7", "T1"):
            w, d = 6.5, 4.2  # cervical enlargement
        elif name in ("T11", "T12"):
            w, d = 4.5, 4.0  # lumbar enlargement
        elif name == "L1":
            w, d = 3.0, 3.0  # the conus
        elif name == "end":
            w, d = 1.0, 1.0
        else:
            w, d = 4.2, 3.6
        j = min(i, len(hw) - 1)
        cw.append(min(w, hw[j] - 1.5))
        cd.append(min(d, hd[j] - 1.5))
    v, f = _elliptic_tube(cp, np.maximum(cw, 0.8), np.maximum(cd, 0.8))
    v, f, cut = cut_free(v, f, bones)
    out.append(Structure("spinal_cord", "spinal cord", "nerve", "midline", "spine", v, f, harm="cord injury",
                         source=SRC, meta={"ends_at": "L1-L2", "cut_by_bone": round(cut, 4)}))
    # the cauda equina: the sac's centre from the conus down
    low = pts[:, 2] < z_end + 4
    if low.sum() >= 2:
        k0 = int(np.flatnonzero(low).min())
        qp = np.vstack([cp[-1], pts[k0:]])
        qw = np.concatenate([[hw[k0]], hw[k0:]]) * 0.6
        qd = np.concatenate([[hd[k0]], hd[k0:]]) * 0.6
        v, f = _elliptic_tube(qp, qw, qd)
        v, f, cut = cut_free(v, f, bones)
        out.append(Structure("cauda_equina", "cauda equina", "nerve", "midline", "spine", v, f, harm="nerve injury",
                             source=SRC, aliases=("lumbosacral nerve roots in the dural sac",),
                             meta={"from": "L1-L2", "cut_by_bone": round(cut, 4)}))
    return out


# -- nerve roots --------------------------------------------------------------------------


def _root_region(root: str) -> str:
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[root[0]]


class _BoneField:
    """Signed distance to the bones (mm, negative inside) on a 1.5 mm grid, for choosing
    paths that stay clear of bone."""

    def __init__(self, bones, lo, hi, h: float = 1.5):
        self.g = _grid(lo, hi, h)
        m = solid_voxels(_overlapping(bones, lo, hi), self.g)
        self.sd = (_edt(~m, h) - _edt(m, h)).astype(np.float32)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        ijk = np.clip(self.g.index(pts), 0, np.array(self.g.shape) - 1)
        return self.sd[ijk[:, 0], ijk[:, 1], ijk[:, 2]]


def _free_direction(field: _BoneField, p: np.ndarray, d0: np.ndarray, r: float, length: float,
                    max_deg: float = 55.0) -> np.ndarray:
    """The direction within ``max_deg`` of ``d0`` along which a tube of radius ``r`` from
    ``p`` runs ``length`` mm with the least bone in its way (ties: closest to ``d0``)."""
    n = 600
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    th = np.pi * (1 + 5**0.5) * k
    dirs = np.column_stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)])
    cosang = dirs @ d0
    dirs = dirs[cosang > np.cos(np.radians(max_deg))]
    t = np.arange(3.0, length, 1.0)
    pts = p[None, None, :] + dirs[:, None, :] * t[None, :, None]
    clear = field(pts.reshape(-1, 3)).reshape(len(dirs), len(t))
    score = np.minimum(clear - r, 0.0).mean(axis=1) - 0.02 * np.degrees(np.arccos(np.clip(dirs @ d0, -1, 1))) / max_deg
    return dirs[int(np.argmax(score))]


def nerve_roots(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    spine = spine or Spine(atlas)
    ivf = spine.intervertebral_foramina()
    if not ivf:
        return []
    bones = _spine_bones(atlas) + [s for s in atlas.find(kind="bone") if s.id.startswith(("rib_", "hip_bone"))]
    pts, hw, hd = _canal_stations(spine)
    P = np.array([p for p, _r in ivf.values()])
    field = _BoneField(bones, P.min(0) - 50, P.max(0) + 50)

    def sac_at(z):
        order = np.argsort(pts[:, 2])
        c = np.array([np.interp(z, pts[order, 2], pts[order, k]) for k in range(3)])
        return c, float(np.interp(z, pts[order, 2], hw[order])), float(np.interp(z, pts[order, 2], hd[order]))

    out = []
    for (root, side), (p_ivf, free_r) in sorted(ivf.items(), key=lambda kv: (-kv[1][0][2], kv[0][1])):
        sx = -1.0 if side == "r" else 1.0
        reg = _root_region(root)
        dz0, r, d0, length = {
            # cervical: out and forward in the gutter of the transverse process (behind
            # the vertebral artery); thoracic: out under the rib; lumbar: down, out, forward
            "cervical": (3.0, 2.2, np.array([0.75 * sx, -0.55, -0.35]), 30.0),
            "thoracic": (6.0, 1.8, np.array([0.9 * sx, -0.2, -0.35]), 30.0),
            "lumbar": (14.0, 2.8 if root in ("L1", "L2", "L3") else 3.2, np.array([0.55 * sx, -0.45, -0.7]), 40.0),
        }[reg]
        d0 = d0 / np.linalg.norm(d0)
        rr = min(r, max(free_r - 0.3, 1.2))
        d_out = _free_direction(field, p_ivf, d0, rr, length)
        c, w, d = sac_at(p_ivf[2] + dz0)
        p0 = c + np.array([sx * (w - 1.0), -0.3 * d, 0.0])
        p_in = p_ivf + np.array([-sx * 3.0, 0.0, 0.3 * dz0])
        v, f = _tube([p0, p_in, p_ivf, p_ivf + d_out * 12.0, p_ivf + d_out * length], rr, sides=12, step_mm=2.0)
        v, f, cut = cut_free(v, f, bones)
        name = "right" if side == "r" else "left"
        out.append(Structure(f"nerve_root_{root}_{side}", f"{name} {root} nerve root", "nerve", name, reg, v, f,
                             level=root, harm="nerve injury", source=SRC, aliases=(f"{name} {root} spinal nerve",),
                             meta={"foramen": [round(float(x), 1) for x in p_ivf], "cut_by_bone": round(cut, 4)}))
    out += _s1_roots(atlas, spine, bones, sac_at)
    return out


def _s1_course(atlas: Atlas, spine: Spine, sx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The S1 root's course over the pelvic surface of the sacrum: its anterior foramen
    (22 mm lateral, 25 mm below the top of the sacrum, on the front surface), then down
    and out toward the greater sciatic foramen, where the sciatic nerve gathers."""
    sac = atlas.get("sacrum").vertices
    x1, z1 = spine.midline_x + sx * 22.0, float(sac[:, 2].max()) - 25.0
    near = sac[(np.abs(sac[:, 0] - x1) < 5) & (np.abs(sac[:, 2] - z1) < 5)]
    y1 = (near[:, 1].min() if len(near) else float(sac[:, 1].min())) - 3.5
    p1 = np.array([x1, y1, z1])
    return p1, p1 + np.array([sx * 18.0, -4.0, -22.0]), p1 + np.array([sx * 35.0, 2.0, -45.0])


def _s1_roots(atlas, spine, bones, sac_at) -> list[Structure]:
    """S1: out of the sac at the L5-S1 level, forward over the top of S1 to the sacrum's
    S1 anterior foramen (the shipped sacrum has no open canal or foramina), then over its
    pelvic surface toward the greater sciatic foramen."""
    if "sacrum" not in atlas or "L5" not in spine.foramina:
        return []
    out = []
    for side, sx in (("r", -1.0), ("l", 1.0)):
        c, w, d = sac_at(spine.foramina["L5"].z_lo - 4)
        p0 = c + np.array([sx * (w - 1.0), -0.3 * d, 0.0])
        p1, p2, p3 = _s1_course(atlas, spine, sx)
        x1, z1 = p1[0], p1[2]
        mid = np.array([x1 - sx * 4, c[1] - 0.5 * d, (p0[2] + z1) / 2])
        v, f = _tube([p0, mid, p1, p2, p3], 3.2, sides=12, step_mm=2.0)
        v, f, cut = cut_free(v, f, bones)
        name = "right" if side == "r" else "left"
        out.append(Structure(f"nerve_root_S1_{side}", f"{name} S1 nerve root", "nerve", name, "sacral", v, f,
                             level="S1", harm="nerve injury", source=SRC, aliases=(f"{name} S1 spinal nerve",),
                             meta={"foramen": [round(float(x), 1) for x in p1], "cut_by_bone": round(cut, 4)}))
    return out


def _floor_above(v: np.ndarray, x: float, y: float, z: float, r: float = 4.0) -> float:
    """Lowest z of the vertices ``v`` near (x, y) above ``z`` (``z + 30`` if none)."""
    near = v[(np.abs(v[:, 0] - x) < r) & (np.abs(v[:, 1] - y) < r) & (v[:, 2] > z)] if len(v) else v
    return float(near[:, 2].min()) if len(near) else z + 30.0


# -- vertebral arteries ---------------------------------------------------------------------


def vertebral_arteries(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    spine = spine or Spine(atlas)
    tf = spine.transverse_foramina()
    c1 = spine.vertebrae.get("C1")
    if c1 is None or "C1" not in spine.foramina:
        return []
    bones = _spine_bones(atlas)
    cv = c1.vertices
    skull = atlas.get("skull").vertices if "skull" in atlas else np.zeros((0, 3))
    canal = spine.foramina["C2"].centre if "C2" in spine.foramina else spine.foramina["C1"].centre
    out = []
    for side, sx in (("r", -1.0), ("l", 1.0)):
        holes = [(lv, tf[(lv, side)]) for lv in ("C6", "C5", "C4", "C3", "C2", "C1") if (lv, side) in tf]
        if len(holes) < 4 or holes[-1][0] != "C1":
            continue
        pts = [p for _, (p, _r) in holes]
        p6 = pts[0]
        start = p6 + np.array([sx * 6.0, -10.0, -38.0])  # from the subclavian artery
        # over the posterior arch of the atlas, in the gap between its upper surface and
        # the occipital bone, then up into the foramen magnum
        arch = []
        for dx, dy in ((26.0, 8.0), (18.0, 15.0), (11.0, 12.0)):
            x, y = spine.midline_x + sx * dx, canal[1] + dy
            lo_z = cv[(np.abs(cv[:, 0] - x) < 4) & (np.abs(cv[:, 1] - y) < 4)]
            lo_z = lo_z[:, 2].max() if len(lo_z) else cv[:, 2].max()
            hi_z = _floor_above(skull, x, y, lo_z)
            arch.append([x, y, (lo_z + min(hi_z, lo_z + 12)) / 2])
        p_c1 = pts[-1]
        up = p_c1 + np.array([0.0, 2.0, 5.0])
        x, y = spine.midline_x + sx * 8.0, canal[1] - 2.0
        fm = np.array([x, y, cv[:, 2].max() + 14.0])  # through the foramen magnum
        path = [start] + pts + [up] + arch + [fm]
        radii = [2.0] + [min(2.0, max(r - 0.4, 1.2)) for _, (_p, r) in holes] + [2.0] + [1.8] * len(arch) + [2.0]
        v, f = _tube(path, radii, sides=12, step_mm=1.5, smooth=2)
        v, f, cut = cut_free(v, f, bones)
        name = "right" if side == "r" else "left"
        out.append(Structure(f"vertebral_artery_{side}", f"{name} vertebral artery", "vessel", name, "cervical", v, f,
                             harm="vascular injury", source=SRC,
                             meta={"transverse_foramina": {lv: [round(float(x), 1) for x in p]
                                                           for lv, (p, _r) in holes},
                                   "cut_by_bone": round(cut, 4)}))
    return out


# -- kidneys -------------------------------------------------------------------------------

#: adult kidney half-axes (mm): length, width, thickness (11 x 5.5 x 3.5 cm on this 1.64 m body: 10 x 5 x 3.4)
KIDNEY_HALF_MM = (50.0, 25.0, 17.0)


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def kidneys(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    """On quadratus lumborum, lateral to psoas, the upper pole at the 12th rib (left at
    the T11-T12 disc, right 15 mm lower); the position (within 20 mm) and turn that
    overlap the least muscle and bone are chosen, then the kidney is cut free of them."""
    spine = spine or Spine(atlas)
    need = ("T11", "T12", "L1", "L2")
    if not all(lv in spine.vertebrae for lv in need):
        return []
    L, W, T = KIDNEY_HALF_MM
    out = []
    for side, sfx, sx, dz in (("right", "r", -1.0, -15.0), ("left", "l", 1.0, 0.0)):
        ql, ps = atlas.structures.get(f"quadratus_lumborum_{sfx}"), atlas.structures.get(f"psoas_major_{sfx}")
        if ql is None or ps is None:
            continue
        t11, t12 = spine.vertebrae["T11"].vertices, spine.vertebrae["T12"].vertices
        z_top = (t11[:, 2].min() + t12[:, 2].max()) / 2 - 5.0 + dz
        zc = z_top - L * 0.97
        band = lambda v: v[np.abs(v[:, 2] - zc) < 12]  # noqa: E731
        qv, pv = band(ql.vertices), band(ps.vertices)
        x_ps = (pv[:, 0] * sx).max() * sx  # psoas's lateral edge
        xc = x_ps + sx * (W + 4.0)
        near = qv[np.abs(qv[:, 0] - xc) < 12]
        y_ql = (near if len(near) else qv)[:, 1].min()  # quadratus lumborum's front under the kidney
        c0 = np.array([xc, y_ql - T - 1.0, zc])
        lo, hi = c0 - np.array([L + 35, L + 35, L + 35]), c0 + np.array([L + 35, L + 35, L + 35])
        h = 1.5
        g = _grid(lo, hi, h)
        obst_s = _overlapping([s for s in atlas if s.kind in ("bone", "muscle") or s.id.startswith("lung_")], lo, hi)
        obst = solid_voxels(obst_s, g)
        best = None
        for yaw in (25.0, 40.0, 55.0):  # the hilum faces forward and in
            # upper pole medial (coronal tilt) and back (sagittal tilt)
            R = _rot("z", -sx * yaw) @ _rot("y", sx * 12.0) @ _rot("x", 15.0)
            ax = R @ np.diag([W, T, L])
            r = int(np.ceil(L / h)) + 1
            off = np.indices((2 * r + 1,) * 3).reshape(3, -1).T - r
            q = np.linalg.solve(ax, (off * h).T).T
            off = off[(q**2).sum(1) <= 1]
            for ddx in (-12.0, -6.0, 0.0, 6.0, 12.0):
                for ddy in (-24.0, -18.0, -12.0, -6.0, 0.0, 4.0):
                    for ddz in (-6.0, 0.0, 6.0):
                        c = c0 + np.array([sx * ddx, ddy, ddz])
                        ijk = g.index(c) + off
                        ok = np.all((ijk >= 0) & (ijk < np.array(g.shape)), axis=1)
                        hit = obst[tuple(ijk[ok].T)].sum() + (~ok).sum()
                        # the least overlap; then as far back (on quadratus lumborum) as it goes
                        cost = float(hit) + 0.3 * abs(ddy) + 0.02 * (abs(ddx) + abs(ddz))
                        if best is None or cost < best[0]:
                            best = (cost, c, R, yaw)
        _cost, c, R, yaw = best
        # the kidney, cut free of the obstacles (1 mm from them)
        P = g.points(np.indices(g.shape).reshape(3, -1).T)
        q = (P - c) @ R  # kidney frame: x width, y thickness, z length
        rho = np.sqrt((q[:, 0] / W) ** 2 + (q[:, 1] / T) ** 2 + (q[:, 2] / L) ** 2)
        F_ell = ((1.0 - rho) * T).reshape(g.shape)
        ob = obst
        F = np.minimum(F_ell, _edt(~ob, h) - 1.0)
        lab, n = ndimage.label(F > 0)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        F = np.where((lab == 0) | (lab == np.argmax(sizes)), F, -h)
        v, f = mesh_field(F, g, smooth_iter=6, simplify_mm=0.3)
        out.append(Structure(f"kidney_{sfx}", f"{side} kidney", "organ", side, "lumbar", v, f, harm="organ puncture",
                             source=SRC, meta={"centre": [round(float(x), 1) for x in c], "yaw_deg": yaw,
                                               "overlap_removed_voxels": int((F_ell > 0).sum() - (F > 0).sum())}))
    return out


# -- sciatic and common peroneal nerves ------------------------------------------------------


class _Region:
    """Bones and muscles of a region on a grid: where a nerve can run between them
    (distance from them, mm) and routes through that room."""

    def __init__(self, atlas: Atlas, lo, hi, h: float = 1.5):
        self.g = _grid(lo, hi, h)
        near = _overlapping([s for s in atlas if s.kind in ("bone", "muscle")], lo, hi)
        self.bone = solid_voxels([s for s in near if s.kind == "bone"], self.g)
        self.solid = self.bone | solid_voxels([s for s in near if s.kind == "muscle"], self.g)
        self.d = _edt(~self.solid, h).astype(np.float32)

    def at(self, pts) -> np.ndarray:
        ijk = np.clip(self.g.index(np.atleast_2d(pts)), 0, np.array(self.g.shape) - 1)
        return self.d[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    def spot(self, expected, r: float, window=(16.0, 16.0, 0.0), pull: float = 0.12) -> np.ndarray:
        """The point near ``expected`` (within ``window`` mm along x, y, z) with room for a
        nerve of radius ``r``: free distance (up to r + 2 mm) minus ``pull`` per mm away."""
        e = np.asarray(expected, float)
        ax = [np.arange(-w, w + 1e-9, self.g.h) if w > 0 else np.zeros(1) for w in window]
        off = np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)
        p = e + off
        score = np.minimum(self.at(p), r + 2.0) - pull * np.linalg.norm(off, axis=1)
        return p[int(np.argmax(score))]

    def route(self, anchors, r: float) -> np.ndarray:
        """The cheapest path through the anchors: free room costs little (less the more
        room up to ``r`` + 2 mm), muscle much, bone is all but closed."""
        from skimage.graph import MCP_Geometric

        cost = 1.0 + 6.0 / np.clip(self.d, 0.5, r + 2.0)
        cost[self.solid] = 40.0
        cost[self.bone] = 1e5
        mcp = MCP_Geometric(cost)
        shape = np.array(self.g.shape)
        out = []
        for a, b in zip(anchors[:-1], anchors[1:]):
            ia = tuple(np.clip(self.g.index(a), 0, shape - 1))
            ib = tuple(np.clip(self.g.index(b), 0, shape - 1))
            mcp.find_costs([ia], [ib])
            path = self.g.points(np.array(mcp.traceback(ib)))
            out.append(path if not out else path[1:])
        pts = np.vstack(out)
        keep = np.concatenate([[0], np.arange(3, len(pts) - 1, 3), [len(pts) - 1]])  # ~4.5 mm apart
        return pts[np.unique(keep)]


def _band(v: np.ndarray, axis: int, value: float, half: float) -> np.ndarray:
    return v[np.abs(v[:, axis] - value) < half]


def sciatic_nerves(atlas: Atlas, spine: Spine | None = None) -> list[Structure]:
    spine = spine or Spine(atlas)
    out = []
    for side, sfx, sx in (("right", "r", -1.0), ("left", "l", 1.0)):
        keys = ("piriformis", "femur", "hip_bone", "gemellus_superior", "quadratus_femoris", "adductor_magnus",
                "biceps_femoris_long_head")
        if not all(f"{k}_{sfx}" in atlas for k in keys) or f"ischial_tuberosity_{sfx}" not in atlas.landmarks \
                or "sacrum" not in atlas:
            continue
        S = {k: atlas.get(f"{k}_{sfx}") for k in keys}
        pv, fem, sac = S["piriformis"].vertices, S["femur"].vertices, atlas.get("sacrum").vertices
        it = atlas.landmark(f"ischial_tuberosity_{sfx}").xyz
        gt = atlas.landmark(f"greater_trochanter_{sfx}").xyz
        # the piriformis from its origin (medial) to the trochanter: t in 0..1
        lat = pv[:, 0] * sx
        a_med = pv[lat < np.percentile(lat, 5)].mean(0)
        a_lat = pv[lat > np.percentile(lat, 95)].mean(0)
        axis = (a_lat - a_med) / np.linalg.norm(a_lat - a_med)
        span = float(np.linalg.norm(a_lat - a_med))

        def pir_section(t, half=6.0):
            return pv[np.abs((pv - a_med) @ axis - t * span) < half]

        r_g = 4.9  # a 16 x 6 mm band in the buttock; 12 x 8 mm in the thigh
        # the buttock: from the pelvis (in front of the sacrum's lateral part, where the
        # sacral plexus gathers) out under piriformis's lower border in its medial part,
        # then on the back of gemellus superior/obturator internus and quadratus femoris, a
        # third of the way from the ischial tuberosity to the trochanter
        qf = S["quadratus_femoris"].vertices
        s1_end = _s1_course(atlas, spine, sx)[2]
        xs_ = np.array([a_med[0], gt[0], s1_end[0]])
        lo = np.array([xs_.min() - 20, -150.0, qf[:, 2].min() - 25])
        hi = np.array([xs_.max() + 20, 25.0, max(pv[:, 2].max(), s1_end[2]) + 20])
        reg = _Region(atlas, lo, hi)
        # in front of the sacrum, where the S1 root ends and the plexus gathers
        start = reg.spot(s1_end, 4.0, window=(6.0, 6.0, 6.0))
        # in the greater sciatic foramen on the front of the medial piriformis (where it
        # crosses the foramen, nothing but the nerve lies in front of it), then out right
        # under its lower border, deep against the bone
        front = []
        for t, frac in ((0.2, 0.35), (0.27, 0.15)):
            sec = pir_section(t)
            z = sec[:, 2].min() + frac * (sec[:, 2].max() - sec[:, 2].min())
            fr = _band(sec, 2, z, 5.0)
            front.append(reg.spot([fr[:, 0].mean(), (fr if len(fr) else sec)[:, 1].min() - 3.5, z], 3.0,
                                  window=(3.0, 3.0, 3.0), pull=0.5))
        sec = pir_section(0.33)
        below = sec[sec[:, 2] < np.percentile(sec[:, 2], 12)]
        exit_ = reg.spot([below[:, 0].mean(), below[:, 1].min() + 4.0, below[:, 2].mean() - r_g - 0.5], r_g,
                         window=(4.0, 4.0, 3.0), pull=0.4)
        pelvis = np.vstack([reg.route([start, front[0]], 4.0), front[1:], [exit_]])
        # then down and out on the back of obturator internus and the gemelli, to a third of
        # the way from the ischial tuberosity to the trochanter on quadratus femoris
        x_line = it[0] + (gt[0] - it[0]) / 3.0
        anchors = []
        for key, frac in (("gemellus_superior", 0.45), ("gemellus_inferior", 0.85), ("quadratus_femoris", 1.0)):
            mv = atlas.get(f"{key}_{sfx}").vertices if f"{key}_{sfx}" in atlas else S["gemellus_superior"].vertices
            x = exit_[0] + frac * (x_line - exit_[0])
            z = float(np.median(mv[:, 2]))
            near = _band(_band(mv, 2, z, 6.0), 0, x, 8.0)
            y_back = (near if len(near) else mv)[:, 1].max()
            anchors.append(reg.spot([x, y_back + 3.0 + 0.5, z], r_g, window=(5.0, 4.0, 0.0), pull=0.3))
        buttock = np.vstack([pelvis, np.array(anchors)])
        # the thigh: on adductor magnus, under the medial half of biceps femoris long head,
        # down to the apex of the popliteal fossa, where it divides
        am, bf = S["adductor_magnus"].vertices, S["biceps_femoris_long_head"].vertices
        z_div = fem[:, 2].min() + 90.0
        z0 = qf[:, 2].min() - 15
        thigh = _Region(atlas, np.array([fem[:, 0].min() - 25, -130.0, z_div - 30]),
                        np.array([fem[:, 0].max() + 25, 25.0, z0 + 10]))
        pts = list(buttock)
        for z in np.arange(z0 - 10, z_div + 15, -25.0):
            b = _band(bf, 2, z, 6.0)
            if len(b) == 0:
                continue
            x = b[:, 0].mean() - sx * 0.25 * (b[:, 0].max() - b[:, 0].min())
            a_ = _band(_band(am, 2, z, 6.0), 0, x, 10.0)
            bb = _band(b, 0, x, 8.0)
            y_bf = bb[:, 1].min() if len(bb) else b[:, 1].min()
            y_am = a_[:, 1].max() if len(a_) else y_bf - 10.0
            pts.append(thigh.spot([x, (y_am + y_bf) / 2, z], r_g, window=(14.0, 12.0, 0.0)))
        fe = _band(fem, 2, z_div, 8.0)
        p_div = thigh.spot([fe[:, 0].mean(), fe[:, 1].max() + 12.0, z_div], r_g, window=(12.0, 10.0, 0.0))
        pts.append(p_div)
        pts = np.array(pts)
        n_b = len(buttock)
        aspect = np.concatenate([np.full(n_b, 1.63), np.full(len(pts) - n_b, 1.22)])
        v, f = _tube(pts, r_g, sides=16, aspect=aspect, flat_dir=np.array([0.0, 1.0, 0.0]), step_mm=3.0, smooth=2)
        bones = [s for s in atlas.find(kind="bone") if s.id in (f"hip_bone_{sfx}", f"femur_{sfx}", "sacrum")]
        v, f, cut = cut_free(v, f, bones)
        out.append(Structure(f"sciatic_nerve_{sfx}", f"{side} sciatic nerve", "nerve", side, "gluteal", v, f,
                             harm="nerve injury", source=SRC,
                             meta={"roots": ["L4", "L5", "S1", "S2", "S3"], "divides_at_z": round(float(z_div), 1),
                                   "exit_below_piriformis": [round(float(x), 1) for x in exit_],
                                   "path": np.round(pts, 1).tolist(), "cut_by_bone": round(cut, 4)}))
        out += _common_peroneal(atlas, side, sfx, sx, p_div)
    return out


def _common_peroneal(atlas, side, sfx, sx, p_div) -> list[Structure]:
    """From the division along the medial edge of biceps femoris to behind the fibular
    head, then round the fibular neck (behind, lateral, in front)."""
    fib_id = f"fibula_{sfx}"
    if fib_id not in atlas:
        return []
    fib = atlas.get(fib_id).vertices
    z_head = fib[:, 2].max()
    head = _band(fib, 2, z_head - 8, 5.0)
    behind = np.array([head[:, 0].mean(), head[:, 1].max() + 4.5, z_head - 8])
    reg = _Region(atlas, np.array([min(p_div[0], fib[:, 0].min()) - 25, -130.0, z_head - 50]),
                  np.array([max(p_div[0], fib[:, 0].max()) + 25, 25.0, p_div[2] + 8]))
    behind = reg.spot(behind, 2.2, window=(4.0, 4.0, 0.0), pull=0.3)
    anchors = [p_div]
    # half-way down: behind the lateral femoral condyle, lateral to gastrocnemius's lateral
    # head, where it follows the medial edge of the biceps tendon
    fem = atlas.get(f"femur_{sfx}").vertices if f"femur_{sfx}" in atlas else None
    if fem is not None:
        zm = (p_div[2] + behind[2]) / 2
        fb = _band(fem, 2, zm, 4.0)
        if len(fb):
            x_le = fb[np.argmax(sx * fb[:, 0]), 0]
            back = _band(fb, 0, x_le - sx * 8.0, 5.0)
            y_back = (back if len(back) else fb)[:, 1].max()
            anchors.append(reg.spot([x_le - sx * 8.0, y_back + 7.0, zm], 2.2, window=(8.0, 8.0, 0.0)))
    anchors.append(behind)
    pts = list(reg.route(anchors, 2.2))
    # round the neck, 28 mm below the top of the head, 3.7 mm off the bone
    z_neck = z_head - 28.0
    neck = _band(fib, 2, z_neck, 3.0)
    nc = neck[:, :2].mean(0)
    rn = float(np.linalg.norm(neck[:, :2] - nc, axis=1).mean())
    for ang, dz in ((70.0, 10.0), (35.0, 5.0), (0.0, 1.0), (-35.0, -2.0), (-75.0, -5.0)):
        d = np.array([sx * np.cos(np.radians(ang)), np.sin(np.radians(ang))])  # from lateral toward the back
        pts.append(np.array([*(nc + d * (rn + 3.7)), z_neck + dz]))
    pts = np.array(pts)
    v, f = _tube(pts, 2.2, sides=12, step_mm=2.0, smooth=2)
    bones = [s for s in atlas.find(kind="bone") if s.id in (fib_id, f"femur_{sfx}", f"tibia_{sfx}")]
    v, f, cut = cut_free(v, f, bones)
    return [Structure(f"common_peroneal_nerve_{sfx}", f"{side} common peroneal nerve", "nerve", side, "knee", v, f,
                      harm="nerve injury", source=SRC, aliases=(f"{side} common fibular nerve",),
                      meta={"roots": ["L4", "L5", "S1", "S2"], "path": np.round(pts, 1).tolist(),
                            "cut_by_bone": round(cut, 4)})]


# -- the stage ---------------------------------------------------------------------------------


def add_danger_structures(atlas: Atlas, progress=lambda m, f: None) -> None:
    builders = [lungs, spinal_canal, nerve_roots, vertebral_arteries, kidneys, sciatic_nerves]
    progress("danger: measuring the vertebral foramina", 0.0)
    try:
        spine = Spine(atlas)
        for i, b in enumerate(builders):
            progress(f"danger: {b.__name__}", (i + 1) / (len(builders) + 1))
            for s in b(atlas, spine=spine):
                atlas.add(s)
    finally:
        _SOLIDS.clear()
        _MANIFOLDS.clear()
        _BOUNDS.clear()
