"""imssim's own muscles (neck, upper back, shoulder girdle, deep gluteal), from attachments.

``meshes/added_muscles.yaml`` defines each muscle by its origin and insertion on the
atlas's own bones, as *anchors*: bony points computed here from the bones and landmarks
(spinous processes, laminae, transverse processes, nuchal line, mastoid, scapular spine
and medial border, acromion, clavicle, ribs, ischial tuberosity, greater trochanter).

Two shapes:

- ``sheet`` (trapezius, rhomboids, serratus anterior, splenius, semispinalis, scalenes): a
  slab. Fibres join points at equal fractions along the origin and insertion polylines;
  the fibre grid is the slab's mid-surface, offset by +/- half the thickness along its
  normal and closed by side walls, so the mesh is watertight by construction.
- ``strap`` (levator scapulae, multifidus fascicles, deep gluteal muscles): a flattened tube
  (elliptical section) along origin -> via -> insertion.

Layering: a muscle that ``lies_on: posterior`` is draped over the structures listed in
``over``: every point of its mid-surface is pushed backwards (+Y) until it is at least
``gap + thickness/2`` behind their posterior surface (a height field y = H(x, z) of their
sampled surfaces). Muscles are built in file order, deepest first, so each layer drapes
over the ones below: multifidus on the laminae, semispinalis and splenius over it,
rhomboids over the erector spinae and ribs, trapezius over everything.
``lies_on: radial`` does the same outward from the thoracic cage's axis (serratus anterior
on the ribs).
"""

from __future__ import annotations

import re

import numpy as np

from ..atlas import VERTEBRAE, Atlas, Structure
from ..data import meshes_dir, read_yaml
from ..innervation import all_muscles
from . import geometry as geo
from .landmarks import group_vertices, has_group

SRC = "sheet (imssim: attachments on the BodyParts3D skeleton, meshes/added_muscles.yaml)"
CELL_MM = 3.0
STATIONS = 28  # points along each fibre
BRIDGE_MM = 24.0  # sheets span gaps between bones narrower than this along z (intercostal spaces)


# -- anchors ---------------------------------------------------------------------------


class Anchors:
    """Bony points on one side of the atlas (mm, LPS). ``lat`` is -1 right, +1 left."""

    def __init__(self, atlas: Atlas, side: str):
        self.atlas = atlas
        self.side = side
        self.sfx = "r" if side == "right" else "l"
        self.lat = -1.0 if side == "right" else 1.0
        self._bone_h = None
        self.cs = group_vertices(atlas, "cervical_spine")
        if "vertebra_C4" in atlas:  # one mesh per level: each level's own centre
            self.cz = {f"C{k}": float(atlas.get(f"vertebra_C{k}").centroid[2]) for k in range(1, 8)}
        else:  # a merged cervical mesh: C2..C7 evenly between the C2 and C7 spinous landmarks
            z2 = atlas.landmark("C2_spinous").xyz[2]
            z7 = atlas.landmark("C7_spinous").xyz[2]
            self.cz = {f"C{k}": z2 + (z7 - z2) * (k - 2) / 5.0 for k in range(2, 8)}
            self.cz["C1"] = atlas.landmark("C1_spinous").xyz[2]

    # helpers
    def _L(self, x: float) -> float:
        return self.lat * x

    def level_z(self, lv: str) -> float:
        if lv.startswith("C") and lv in self.cz:
            return float(self.cz[lv])
        return float(self.atlas.get(f"vertebra_{lv}").centroid[2])

    def bone_height(self):
        if self._bone_h is None:
            ids = [s.id for s in self.atlas.find(kind="bone") if s.id.startswith(("vertebra_", "cervical_spine"))]
            self._bone_h = HeightField.posterior(self.atlas, ids)
        return self._bone_h

    def resolve(self, spec: str) -> np.ndarray:
        spec = spec.strip()
        off = np.zeros(3)
        m = re.match(r"^(.*?)\s*\+\s*\[([^\]]*)\]$", spec)
        if m:
            spec = m.group(1).strip()
            o = [float(t) for t in m.group(2).split(",")]
            off = np.array([self.lat * o[0], o[1], o[2]])
        name, _, arg = spec.partition(":")
        fn = getattr(self, "a_" + name, None)
        if fn is None:
            raise ValueError(f"added_muscles.yaml: unknown anchor {name!r}")
        p = fn(arg) if arg else fn()
        return np.asarray(p, float) + off

    # spine
    def a_spinous(self, lv: str) -> np.ndarray:
        if lv.startswith("C") and lv not in ("C1", "C7"):
            z = self.cz[lv]
            band = self.cs[(np.abs(self.cs[:, 2] - z) < 5) & (np.abs(self.cs[:, 0]) < 8)]
            p = band[np.argmax(band[:, 1])] if len(band) else self.atlas.landmark(f"{lv}_spinous").xyz
            return np.array([self._L(2.0), p[1], z])
        return self.atlas.landmark(f"{lv}_spinous").xyz + np.array([self._L(2.0), 0, 0])

    def a_spinous_base(self, lv: str) -> np.ndarray:
        """Side of the spinous process, between its tip and the lamina."""
        tip = self.a_spinous(lv)
        lam = self.a_lamina(lv)
        return np.array([self._L(5.0), 0.5 * (tip[1] + lam[1]), tip[2] - 2.0])

    def a_lamina(self, lv: str) -> np.ndarray:
        """Posterior surface of the lamina, 14 mm (thoracic; 12 mm cervical) off the midline."""
        z = self.level_z(lv)
        x = self._L(12.0 if lv.startswith("C") else 14.0)
        y = self.bone_height().at(x, z, default=None)
        if y is None:
            y = self.a_spinous(lv)[1] - 25
        return np.array([x, y, z])

    def a_transverse(self, lv: str) -> np.ndarray:
        """Tip of the transverse process: the most lateral bone vertex at that level."""
        z = self.level_z(lv)
        v = self.cs if lv.startswith("C") else self.atlas.get(f"vertebra_{lv}").vertices
        band = v[np.abs(v[:, 2] - z) < (5 if lv.startswith("C") else 12)]
        band = band if len(band) else v
        return band[np.argmax(self.lat * band[:, 0])]

    # skull
    def _skull(self):
        return self.atlas.get("skull").vertices

    def a_occiput(self) -> np.ndarray:
        v = self._skull()
        c = v[np.abs(v[:, 0]) < 10]
        return c[np.argmax(c[:, 1])]

    def a_nuchal_line(self, d: str) -> np.ndarray:
        """Superior nuchal line, ``d`` mm from the midline: the most posterior skull vertex
        at that lateral distance, no higher than the external occipital protuberance."""
        v = self._skull()
        occ = self.a_occiput()
        x = self._L(float(d))
        c = v[(np.abs(v[:, 0] - x) < 6) & (v[:, 2] <= occ[2] + 4)]
        p = c[np.argmax(c[:, 1])] if len(c) else occ
        return np.array([x, p[1], p[2]])

    def a_mastoid(self) -> np.ndarray:
        v = self._skull()
        back = v[(v[:, 1] > np.percentile(v[:, 1], 55)) & (v[:, 2] < np.percentile(v[:, 2], 30))]
        return back[np.argmax(self.lat * back[:, 0] - 0.5 * back[:, 2])]

    # shoulder girdle
    def _scap(self):
        return self.atlas.get(f"scapula_{self.sfx}").vertices

    def a_acromion(self) -> np.ndarray:
        return self.atlas.landmark(f"acromion_{self.sfx}").xyz

    def a_superior_angle(self) -> np.ndarray:
        v = self._scap()
        return v[np.argmax(v[:, 2] - 0.6 * self.lat * v[:, 0])]

    def a_scapular_spine(self, t: str) -> np.ndarray:
        """Crest of the scapular spine: 0 at its root, 1 at the acromion."""
        a = self.atlas.landmark(f"scapular_spine_root_{self.sfx}").xyz
        b = self.a_acromion()
        p = a + float(t) * (b - a)
        v = self._scap()
        near = v[np.linalg.norm(v[:, [0, 2]] - p[[0, 2]], axis=1) < 10]
        y = near[:, 1].max() if len(near) else p[1]
        return np.array([p[0], max(y, p[1]), p[2]])

    def a_medial_border(self, t: str) -> np.ndarray:
        """Medial border: 0 at the superior angle, ~0.25 at the spine's root, 1 at the
        inferior angle."""
        sa = self.a_superior_angle()
        root = self.atlas.landmark(f"scapular_spine_root_{self.sfx}").xyz
        ia = self.atlas.landmark(f"inferior_angle_{self.sfx}").xyz
        t = float(t)
        p = sa + (t / 0.25) * (root - sa) if t <= 0.25 else root + ((t - 0.25) / 0.75) * (ia - root)
        v = self._scap()
        band = v[np.abs(v[:, 2] - p[2]) < 6]
        if len(band):
            q = band[np.argmin(self.lat * band[:, 0])]  # most medial vertex at that height
            p = np.array([q[0], q[1], p[2]])
        return p

    def a_clavicle(self, t: str) -> np.ndarray:
        """Top of the clavicle: 0 at its medial end, 1 at its lateral end."""
        v = self.atlas.get(f"clavicle_{self.sfx}").vertices
        m, l_ = v[np.argmin(self.lat * v[:, 0])], v[np.argmax(self.lat * v[:, 0])]
        p = m + float(t) * (l_ - m)
        near = v[np.abs(v[:, 0] - p[0]) < 6]
        return near[np.argmax(near[:, 2])] if len(near) else p

    # thorax
    def a_rib(self, k: str) -> np.ndarray:
        """Lateral surface of rib ``k`` (mid-axillary line, at the height of vertebra Tk
        less the rib's downward slope)."""
        rv = group_vertices(self.atlas, "ribcage")
        z = self.level_z(f"T{int(k)}") - 30.0
        band = rv[np.abs(rv[:, 2] - z) < 8]
        return band[np.argmax(self.lat * band[:, 0])]

    def a_first_rib(self) -> np.ndarray:
        rv = group_vertices(self.atlas, "ribcage")
        top = rv[rv[:, 2] > rv[:, 2].max() - 18]
        return top[np.argmax(self.lat * top[:, 0])]

    # pelvis and hip
    def a_ischial_tuberosity(self) -> np.ndarray:
        return self.atlas.landmark(f"ischial_tuberosity_{self.sfx}").xyz

    def a_greater_trochanter(self) -> np.ndarray:
        return self.atlas.landmark(f"greater_trochanter_{self.sfx}").xyz


# -- height fields for draping -----------------------------------------------------------


class HeightField:
    """Outermost surface of a set of structures as a height over a 2D grid.

    posterior: h = max y over (x, z); radial: h = max distance from the thorax axis over
    (angle, z)."""

    def __init__(self, mode: str, lo, cell, H, axis=None):
        self.mode, self.lo, self.cell, self.H, self.axis = mode, np.asarray(lo), cell, H, axis

    @staticmethod
    def _samples(atlas: Atlas, ids: list[str]) -> np.ndarray:
        import trimesh

        pts = []
        for sid in ids:
            s = atlas.structures[sid]
            m = trimesh.Trimesh(s.vertices, s.faces, process=False)
            n = int(min(max(m.area / 6.0, 200), 30_000))
            samp, _ = trimesh.sample.sample_surface(m, n, seed=1)
            pts += [s.vertices, samp]
        return np.vstack(pts) if pts else np.zeros((0, 3))

    @classmethod
    def _grid(cls, u, v, h, cell):
        from scipy import ndimage

        lo = np.array([u.min(), v.min()]) - 2 * cell
        shape = np.ceil((np.array([u.max(), v.max()]) + 2 * cell - lo) / cell).astype(int) + 1
        H = np.full(shape, -np.inf)
        iu = np.floor((u - lo[0]) / cell).astype(int)
        iv = np.floor((v - lo[1]) / cell).astype(int)
        np.maximum.at(H, (iu, iv), h)
        # close small holes (sparse samples) without raising the surface much
        filled = ndimage.grey_dilation(np.where(np.isfinite(H), H, -1e9), size=(3, 3))
        H = np.where(np.isfinite(H), H, np.where(filled > -1e8, filled, -np.inf))
        # a muscle lies on the ribs, not in the intercostal spaces: close valleys narrower
        # than BRIDGE_MM along z (a column's maximum there would be a rib on the far side of
        # the chest). Along z only, so the paravertebral gutter (a valley across x) stays.
        k = int(np.ceil(BRIDGE_MM / cell)) | 1
        low = np.where(np.isfinite(H), H, -1e9)
        closed = ndimage.grey_closing(low, size=(1, k))
        H = np.where(closed > -1e8, np.maximum(low, closed), -np.inf)
        return lo, H

    @classmethod
    def posterior(cls, atlas: Atlas, ids: list[str], cell: float = CELL_MM) -> "HeightField":
        P = cls._samples(atlas, ids)
        lo, H = cls._grid(P[:, 0], P[:, 2], P[:, 1], cell)
        return cls("posterior", lo, cell, H)

    @classmethod
    def anterior(cls, atlas: Atlas, ids: list[str], cell: float = CELL_MM) -> "HeightField":
        """The front surface (h = -min y over (x, z)); see :meth:`keep_in_front`."""
        P = cls._samples(atlas, ids)
        lo, H = cls._grid(P[:, 0], P[:, 2], -P[:, 1], cell)
        return cls("anterior", lo, cell, H)

    def keep_in_front(self, P: np.ndarray, clearance: np.ndarray) -> np.ndarray:
        """Pull points (anterior mode) to at least ``clearance`` in front of the surface."""
        P = P.copy()
        Q = P.reshape(-1, 3)
        c = np.broadcast_to(clearance, P.shape[:-1]).reshape(-1)
        h = self._lookup(Q[:, 0], Q[:, 2])
        ok = np.isfinite(h)
        Q[ok, 1] = np.minimum(Q[ok, 1], -h[ok] - c[ok])
        return Q.reshape(P.shape)

    @classmethod
    def radial(cls, atlas: Atlas, ids: list[str], cell: float = CELL_MM) -> "HeightField":
        P = cls._samples(atlas, ids)
        axis = np.array([0.0, float(np.median(P[:, 1]))])
        d = P[:, [0, 1]] - axis
        ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
        lo, H = cls._grid(ang, P[:, 2], np.linalg.norm(d, axis=1), cell)  # cell: 3 deg x 3 mm
        return cls("radial", lo, cell, H, axis)

    def _lookup(self, u, v):
        iu = np.floor((np.asarray(u) - self.lo[0]) / self.cell).astype(int)
        iv = np.floor((np.asarray(v) - self.lo[1]) / self.cell).astype(int)
        # the point's cell, or the outermost surface in the cells around it where that
        # cell is empty (nothing off the grid)
        nu, nv = self.H.shape

        def cell(a, b):
            ok = (a >= 0) & (a < nu) & (b >= 0) & (b < nv)
            h = np.full(np.shape(a), -np.inf)
            h[ok] = self.H[a[ok], b[ok]]
            return h

        own = cell(iu, iv)
        best = np.full(np.shape(iu), -np.inf)
        for du in (-1, 0, 1):
            for dv in (-1, 0, 1):
                best = np.maximum(best, cell(iu + du, iv + dv))
        return np.where(np.isfinite(own), own, best)

    def snap(self, P: np.ndarray, clearance: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Move points (posterior mode) onto the surface + ``clearance``, by ``weight``
        (0 keeps the point, 1 puts it on the surface); points with nothing under them stay."""
        P = P.copy()
        Q = P.reshape(-1, 3)
        c = np.broadcast_to(clearance, P.shape[:-1]).reshape(-1)
        w = np.broadcast_to(weight, P.shape[:-1]).reshape(-1)
        h = self._lookup(Q[:, 0], Q[:, 2])
        ok = np.isfinite(h)
        Q[ok, 1] = Q[ok, 1] + w[ok] * (h[ok] + c[ok] - Q[ok, 1])
        return Q.reshape(P.shape)

    def at(self, x, z, default=None):
        h = float(self._lookup(np.array([x]), np.array([z]))[0])
        return h if np.isfinite(h) else default

    def drape(self, P: np.ndarray, clearance: np.ndarray) -> np.ndarray:
        """Push points out so they lie ``clearance`` beyond the surface (never pull in)."""
        P = P.copy()
        shp = P.shape[:-1]
        Q = P.reshape(-1, 3)
        c = np.broadcast_to(clearance, shp).reshape(-1)
        if self.mode == "posterior":
            h = self._lookup(Q[:, 0], Q[:, 2])
            ok = np.isfinite(h)
            Q[ok, 1] = np.maximum(Q[ok, 1], h[ok] + c[ok])
        else:
            d = Q[:, [0, 1]] - self.axis
            r = np.linalg.norm(d, axis=1)
            ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
            h = self._lookup(ang, Q[:, 2])
            ok = np.isfinite(h) & (r > 1e-6)
            rn = np.where(ok, np.maximum(r, np.where(ok, h, 0) + c), r)
            Q[:, [0, 1]] = self.axis + d * (rn / np.maximum(r, 1e-6))[:, None]
        return Q.reshape(P.shape)


# -- shapes ----------------------------------------------------------------------------


def _polyline_at(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    p = np.asarray(points, float)
    if len(p) == 1:
        return np.repeat(p, len(t), axis=0)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s = s / s[-1] if s[-1] > 0 else np.linspace(0, 1, len(p))
    return np.column_stack([np.interp(t, s, p[:, k]) for k in range(3)])


def _smooth_grid(P: np.ndarray, passes: int = 2) -> np.ndarray:
    """Light Laplacian smoothing of a (fibres, stations, 3) grid's interior rows."""
    for _ in range(passes):
        Q = P.copy()
        Q[:, 1:-1] = 0.25 * P[:, :-2] + 0.5 * P[:, 1:-1] + 0.25 * P[:, 2:]
        if P.shape[0] > 2:
            Q[1:-1] = 0.25 * Q[:-2] + 0.5 * Q[1:-1] + 0.25 * Q[2:]
        P = Q
    return P


def slab(mid: np.ndarray, normal_hint: np.ndarray, thick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed slab around a (nf, ns, 3) mid-surface grid, ``thick`` (nf, ns) mm thick."""
    nf, ns, _ = mid.shape
    du = np.gradient(mid, axis=1)
    dv = np.gradient(mid, axis=0)
    n = np.cross(du, dv)
    n /= np.linalg.norm(n, axis=2, keepdims=True) + 1e-12
    hint = np.broadcast_to(normal_hint, n.shape)
    sgn = np.sign(np.einsum("ijk,ijk->", n, hint)) or 1.0
    n *= sgn
    top = mid + n * (thick[..., None] / 2)
    bot = mid - n * (thick[..., None] / 2)
    V = np.vstack([top.reshape(-1, 3), bot.reshape(-1, 3)])
    off = nf * ns

    def idx(i, j, layer):
        return layer * off + i * ns + j

    F = []
    for i in range(nf - 1):
        for j in range(ns - 1):
            a, b, c, d = idx(i, j, 0), idx(i, j + 1, 0), idx(i + 1, j, 0), idx(i + 1, j + 1, 0)
            F += [(a, b, d), (a, d, c)]
            a, b, c, d = idx(i, j, 1), idx(i, j + 1, 1), idx(i + 1, j, 1), idx(i + 1, j + 1, 1)
            F += [(a, d, b), (a, c, d)]
    # walls: walk the grid's boundary loop and join top to bottom
    loop = [(0, j) for j in range(ns)] + [(i, ns - 1) for i in range(1, nf)] + \
           [(nf - 1, j) for j in range(ns - 2, -1, -1)] + [(i, 0) for i in range(nf - 2, 0, -1)]
    for k in range(len(loop)):
        p, q = loop[k], loop[(k + 1) % len(loop)]
        a, b = idx(*p, 0), idx(*q, 0)
        c, d = idx(*p, 1), idx(*q, 1)
        F += [(a, c, d), (a, d, b)]
    F = np.asarray(F, np.int32)
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        F = F[:, ::-1].copy()
    return V, F


def _profile(ns: int, ends: float = 0.45) -> np.ndarray:
    u = np.linspace(0, 1, ns)
    return ends + (1 - ends) * np.sin(np.pi * u) ** 0.5


# -- the builder -----------------------------------------------------------------------


def _expand_levels(spec: str, level: str | None) -> str:
    if level is None:
        return spec

    def rep(m):
        k = VERTEBRAE.index(level) + int(m.group(1) or 0)
        k = min(k, len(VERTEBRAE) - 1)
        return VERTEBRAE[k]

    return re.sub(r"\{L(?:\+(\d+))?\}", rep, spec)


def _structures_with_prefix(atlas: Atlas, prefixes: list[str], side_sfx: str) -> list[str]:
    out = []
    for s in atlas:
        if s.kind not in ("bone", "muscle"):
            continue
        if any(s.id.startswith(p) for p in prefixes):
            if s.side in ("midline",) or s.id.endswith("_" + side_sfx) or s.kind == "bone" and s.side == "midline":
                out.append(s.id)
    return out


def build_muscle(atlas: Atlas, key: str, e: dict, side: str, level: str | None, anchors: Anchors,
                 fields: dict, facts=None) -> Structure:
    facts = (facts or all_muscles())[key]
    sfx = "r" if side == "right" else "l"
    origin = np.array([anchors.resolve(_expand_levels(a, level)) for a in e["origin"]])
    insertion = np.array([anchors.resolve(_expand_levels(a, level)) for a in e["insertion"]])
    via = [anchors.resolve(_expand_levels(a, level)) for a in e.get("via", [])]
    t = float(e["thickness_mm"])
    gap = float(e.get("gap_mm", 1.0))
    mode = e.get("lies_on", "none")
    hf = None
    if mode != "none":
        ids = _structures_with_prefix(atlas, e.get("over", []), sfx)
        fkey = (mode, tuple(sorted(ids)))
        if fkey not in fields:
            fields[fkey] = HeightField.posterior(atlas, ids) if mode == "posterior" else HeightField.radial(atlas, ids)
        hf = fields[fkey]
    hint = np.array([0.0, 1.0, 0.0])
    if e["shape"] == "sheet":
        nf = int(e.get("fibres", 6))
        tt = np.linspace(0, 1, nf)
        O, I = _polyline_at(origin, tt), _polyline_at(insertion, tt)
        s = np.linspace(0, 1, STATIONS)
        mid = O[:, None, :] * (1 - s)[None, :, None] + I[:, None, :] * s[None, :, None]
        thick = t * _profile(STATIONS)[None, :] * np.ones((nf, 1))
        if hf is not None:
            if mode == "posterior" and e.get("snap", True):
                # lie ON the layer below (not only outside it), the ends kept at the bone
                w = np.clip(np.minimum(s, 1 - s) / 0.1, 0, 1)[None, :] * np.ones((nf, 1))
                mid = hf.snap(mid, gap + thick / 2, w)
                mid = _smooth_grid(mid, 2)
            for _ in range(2):
                mid = hf.drape(mid, gap + thick / 2)
                mid = _smooth_grid(mid, 1)
            mid = hf.drape(mid, gap + thick / 2)
        if e.get("under"):
            # and stays in front of these (serratus anterior under the scapula)
            uids = _structures_with_prefix(atlas, e["under"], sfx)
            ukey = ("anterior", tuple(sorted(uids)))
            if ukey not in fields:
                fields[ukey] = HeightField.anterior(atlas, uids)
            mid = fields[ukey].keep_in_front(mid, gap + thick / 2)
        if mode == "radial":
            c = np.array([hf.axis[0], hf.axis[1], 0.0])
            hint = mid - np.concatenate([np.broadcast_to(hf.axis, mid.shape[:2] + (2,)), mid[..., 2:]], axis=2) + 0 * c
            hint[..., 2] = 0
        V, F = slab(mid, hint, thick)
    else:
        path = np.vstack([origin.mean(axis=0)[None], *[v[None] for v in via], insertion.mean(axis=0)[None]])
        path = geo.chaikin(geo.dedupe_polyline(path), 2)
        centre, u = geo.resample_polyline(path, STATIONS)
        w = float(e.get("width_mm", t))
        radii = np.sqrt(w * t) / 2 * _profile(STATIONS, 0.4)
        aspect = float(np.sqrt(w / t))
        if hf is not None:
            for _ in range(2):
                centre = hf.drape(centre[None], (gap + t / 2 * _profile(STATIONS, 0.4))[None])[0]
            flat = np.array([0.0, 1.0, 0.0])
        else:
            flat = None
        V, F = geo.tube(centre, radii, sides=12, aspect=aspect, flat_dir=flat)
    stem = e.get("id") or re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    name = e.get("name", key)
    if level:
        sid, nm = f"{stem}_{level}_{sfx}", f"{side} {name} {level}"
        aliases = (f"{side} {name} at {level}", f"{name} {level} {side}")
    else:
        sid, nm = f"{stem}_{sfx}", f"{side} {name}"
        aliases = tuple(f"{side} {a}" for a in e.get("aliases", ()))
    return Structure(sid, nm, "muscle", side, facts.region or e.get("region", ""), V, F, level=level,
                     muscle=facts.canonical, innervation=facts.innervation(level), source=SRC, aliases=aliases,
                     meta={"entry": key, "shape": e["shape"], "thickness_mm": t, "lies_on": mode,
                           "uncertain": facts.uncertain, "added": True})


def added_entries() -> dict:
    path = meshes_dir() / "added_muscles.yaml"
    if not path.exists():
        return {}
    return read_yaml(path).get("muscles", {}) or {}


def add_muscles(atlas: Atlas, progress=lambda m, f: None) -> None:
    """Build every muscle of ``meshes/added_muscles.yaml`` on both sides (deepest first)."""
    # entries marked ``build: false`` only carry facts (the built-in body has the muscle)
    entries = {k: e for k, e in added_entries().items() if e.get("build", True)}
    need = ("cervical_spine", "skull", "ribcage", "scapula_r", "scapula_l")
    if not entries or not all(has_group(atlas, n) for n in need):
        return
    anchors = {sd: Anchors(atlas, sd) for sd in ("right", "left")}
    facts = all_muscles()
    fields: dict = {}  # height fields, shared by muscles that lie on the same structures
    for i, (key, e) in enumerate(entries.items()):
        progress(f"added muscle {key}", i / len(entries))
        levels = e.get("levels") if e.get("segmental") else [None]
        for side in ("right", "left"):
            for lv in levels:
                s = build_muscle(atlas, key, e, side, lv, anchors[side], fields, facts)
                atlas.add(s)
