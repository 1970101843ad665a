"""Danger structures built on the atlas's own skeleton.

Each is a closed mesh with the harm it stands for:

- ``lung_r`` / ``lung_l`` (organ, pneumothorax): the thoracic cage's interior, slice by
  slice the convex hull of the ribs eroded so the pleura lies just deep to the ribs and
  intercostal spaces, with the mediastinum removed and the apex rising above the first
  rib. A needle entering a lung mesh has crossed the pleura.
- ``spinal_canal`` (canal, cord injury): a tube through the vertebral foramina from C1 to
  the sacrum; ``spinal_cord`` (nerve, cord injury) runs inside it down to L1-L2 (the cauda
  equina below is represented by the canal).
- ``nerve_root_<L1..S1>_<r|l>`` (nerve, nerve injury): exiting roots through the lumbar
  intervertebral foramina, running down, out and forward.
- ``sciatic_nerve_<r|l>`` (nerve, nerve injury): from the greater sciatic notch under
  piriformis, between greater trochanter and ischial tuberosity, down the back of the thigh.
- ``kidney_<r|l>`` (organ, organ puncture): ellipsoids at T12-L3 in front of quadratus
  lumborum, the right one lower.
- ``vertebral_artery_<r|l>`` (vessel, vascular injury): up through the C6-C1 transverse
  foramina, then over the atlas to the foramen magnum.

The shapes are simplified; positions follow landmarks and bones, so depths from the skin
are realistic (tests check the published ones).
"""

from __future__ import annotations

import numpy as np

from ..atlas import Atlas, Structure
from . import geometry as geo
from .landmarks import group_vertices

SRC = "imssim (built on the BodyParts3D skeleton)"


def _tube(points, radius, sides=16, aspect=1.0, flat_dir=None):
    p = geo.chaikin(geo.dedupe_polyline(np.asarray(points, float)), 3)
    c, _ = geo.resample_polyline(p, max(12, int(geo.polyline_length(p) / 4)))
    r = np.broadcast_to(np.asarray(radius, float), (len(c),)) if np.ndim(radius) == 0 else np.interp(
        np.linspace(0, 1, len(c)), np.linspace(0, 1, len(radius)), radius)
    return geo.tube(c, r, sides=sides, aspect=aspect, flat_dir=flat_dir)


def _ellipsoid(centre, axes, rot=np.eye(3), n=24):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(m.vertices) * np.asarray(axes)
    v = v @ np.asarray(rot).T + np.asarray(centre)
    return v, np.asarray(m.faces, np.int32)


def _canal_centre(atlas: Atlas, level: str) -> np.ndarray | None:
    """Centre of the vertebral foramen: the widest gap along the midline ray from the
    spinous tip forward, between the arch and the body."""
    import trimesh

    vid = f"vertebra_{level}"
    if vid not in atlas or f"{level}_spinous" not in atlas.landmarks:
        return None
    v = atlas.get(vid)
    tip = atlas.landmark(f"{level}_spinous").xyz
    zc = float(np.median(v.vertices[:, 2]))
    m = trimesh.Trimesh(v.vertices, v.faces, process=False)
    best = None
    for dz in (0.0, 3.0, -3.0, 6.0):
        o = np.array([[0.0, tip[1] + 5, zc + dz]])
        locs, _, _ = m.ray.intersects_location(o, np.array([[0.0, -1.0, 0.0]]))
        if len(locs) < 3:
            continue
        ys = np.sort(locs[:, 1])[::-1]
        gaps = -np.diff(ys)
        k = int(np.argmax(gaps[1:]) + 1) if len(gaps) > 1 else 0
        if gaps[k] > 6:
            best = np.array([0.0, (ys[k] + ys[k + 1]) / 2, zc + dz])
            break
    if best is None:
        lo = v.vertices[:, 1].min()
        best = np.array([0.0, tip[1] - 0.42 * (tip[1] - lo), zc])
    return best


def spinal_canal(atlas: Atlas) -> list[Structure]:
    levels = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    centres = []
    for lv in levels:
        c = _canal_centre(atlas, lv)
        if c is not None:
            centres.append((lv, c))
    if len(centres) < 4:
        return []
    pts = np.array([c for _, c in centres])
    # cervical: continue upward along the cervical spine, keeping the offset from the
    # spinous tips that T1 has
    t1 = dict(centres).get("T1")
    cerv = []
    if t1 is not None and "C7_spinous" in atlas.landmarks and "T1_spinous" in atlas.landmarks:
        off = t1[1] - atlas.landmark("T1_spinous").xyz[1]
        for k in range(7, 0, -1):
            s = atlas.landmark(f"C{k}_spinous").xyz
            cerv.append([0.0, s[1] + off * 0.8, s[2] - 4.0])
    sac = []
    if "sacrum" in atlas and "S2_spinous" in atlas.landmarks:
        s2 = atlas.landmark("S2_spinous").xyz
        l5 = pts[-1]
        sac = [[0.0, (l5[1] + s2[1] - 12) / 2, (l5[2] + s2[2]) / 2], [0.0, s2[1] - 14, s2[2] - 10]]
    path = np.vstack([np.array(cerv[::-1][::-1]) if cerv else np.zeros((0, 3)), pts, np.array(sac) if sac else np.zeros((0, 3))])
    path = path[np.argsort(-path[:, 2])]
    z = path[:, 2]
    # canal radius: ~7 mm (thoracic) to ~9 mm (cervical and lumbar); flattened AP
    zl1 = dict(centres).get("L1", pts[-1])[2]
    r_canal = np.where(z < zl1 + 20, 9.0, np.where(z > (t1[2] if t1 is not None else z.max()), 8.5, 7.5))
    v, f = _tube(path, r_canal, aspect=1.25, flat_dir=np.array([0.0, 1.0, 0.0]))
    out = [Structure("spinal_canal", "spinal canal (dural sac)", "canal", "midline", "spine", v, f,
                     harm="cord injury", source=SRC,
                     aliases=("vertebral canal", "dural sac", "cauda equina"),
                     meta={"levels": [lv for lv, _ in centres]})]
    # the cord ends at the L1-L2 disc
    l1, l2 = dict(centres).get("L1"), dict(centres).get("L2")
    end_z = (l1[2] + l2[2]) / 2 if l1 is not None and l2 is not None else zl1
    cord = path[path[:, 2] >= end_z]
    cord = np.vstack([cord, [[0.0, cord[-1, 1], end_z]]])
    r = np.linspace(5.0, 3.0, len(cord))
    v, f = _tube(cord, r)
    out.append(Structure("spinal_cord", "spinal cord", "nerve", "midline", "spine", v, f, harm="cord injury",
                         source=SRC, meta={"ends_at": "L1-L2"}))
    return out


def nerve_roots(atlas: Atlas) -> list[Structure]:
    out = []
    levels = ["L1", "L2", "L3", "L4", "L5", "S1"]
    for lv in levels:
        if lv == "S1":
            if "S2_spinous" not in atlas.landmarks or "vertebra_L5" not in atlas:
                continue
            l5 = atlas.get("vertebra_L5")
            z = l5.vertices[:, 2].min() - 14
            c = _canal_centre(atlas, "L5")
        else:
            v = atlas.get(f"vertebra_{lv}") if f"vertebra_{lv}" in atlas else None
            c = _canal_centre(atlas, lv)
            if v is None or c is None:
                continue
            z = v.vertices[:, 2].min() + 6  # the foramen: low on its vertebra
        if c is None:
            continue
        for side, sx in (("right", -1.0), ("left", 1.0)):
            p0 = np.array([sx * 6.0, c[1], z + 8])
            p1 = np.array([sx * 22.0, c[1] - 6, z])  # in the intervertebral foramen
            p2 = np.array([sx * 40.0, c[1] - 22, z - 22])
            p3 = np.array([sx * 55.0, c[1] - 40, z - 45])
            v, f = _tube([p0, p1, p2, p3], 2.8)
            sfx = "r" if side == "right" else "l"
            out.append(Structure(f"nerve_root_{lv}_{sfx}", f"{side} {lv} nerve root", "nerve", side, "lumbar", v, f,
                                 level=lv, harm="nerve injury", source=SRC,
                                 aliases=(f"{side} {lv} spinal nerve",)))
    return out


def sciatic_nerves(atlas: Atlas) -> list[Structure]:
    out = []
    for side, sfx in (("right", "r"), ("left", "l")):
        need = [f"piriformis_{sfx}", f"femur_{sfx}"]
        if not all(n in atlas for n in need) or f"greater_trochanter_{sfx}" not in atlas.landmarks:
            continue
        pir = atlas.get(f"piriformis_{sfx}")
        fem = atlas.get(f"femur_{sfx}").vertices
        gt = atlas.landmark(f"greater_trochanter_{sfx}").xyz
        it = atlas.landmark(f"ischial_tuberosity_{sfx}").xyz if f"ischial_tuberosity_{sfx}" in atlas.landmarks else gt
        pv = pir.vertices
        medial = pv[np.argmin(np.abs(pv[:, 0]))]
        pc = pir.centroid
        notch = np.array([medial[0] * 0.8 + pc[0] * 0.2, pc[1] - 8, pc[2] - 22])
        under = np.array([pc[0], pc[1] - 6, pc[2] - 26])
        mid = (gt + it) / 2
        hip = np.array([mid[0], max(gt[1], it[1]) - 4, mid[2] - 10])
        zmin, zmax = fem[:, 2].min(), fem[:, 2].max()
        zmid = (zmin + zmax) / 2
        band = fem[np.abs(fem[:, 2] - zmid) < 20]
        thigh = np.array([band[:, 0].mean(), band[:, 1].max() + 20, zmid])
        band2 = fem[np.abs(fem[:, 2] - (zmin + 90)) < 20]
        knee = np.array([band2[:, 0].mean(), band2[:, 1].max() + 22, zmin + 90])
        v, f = _tube([notch, under, hip, thigh, knee], 5.0, aspect=1.4, flat_dir=np.array([0.0, 1.0, 0.0]))
        out.append(Structure(f"sciatic_nerve_{sfx}", f"{side} sciatic nerve", "nerve", side, "gluteal", v, f,
                             harm="nerve injury", source=SRC, innervation=None,
                             meta={"roots": ["L4", "L5", "S1", "S2", "S3"]}))
    return out


def kidneys(atlas: Atlas) -> list[Structure]:
    out = []
    if "vertebra_L1" not in atlas or "vertebra_L2" not in atlas:
        return out
    zc = (atlas.get("vertebra_L1").centroid[2] + atlas.get("vertebra_L2").centroid[2]) / 2
    yb = atlas.get("vertebra_L1").centroid[1]
    for side, sfx, sx, dz in (("right", "r", -1.0, -12.0), ("left", "l", 1.0, 0.0)):
        ql = f"quadratus_lumborum_{sfx}"
        xq = atlas.get(ql).centroid[0] if ql in atlas else sx * 60
        centre = np.array([xq + sx * 8.0, yb - 12.0, zc + dz])
        # long axis tilted: upper pole medial and posterior
        a = np.radians(15 * -sx)
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        v, f = _ellipsoid(centre, (28.0, 18.0, 55.0), rot)
        out.append(Structure(f"kidney_{sfx}", f"{side} kidney", "organ", side, "lumbar", v, f, harm="organ puncture",
                             source=SRC))
    return out


def vertebral_arteries(atlas: Atlas) -> list[Structure]:
    out = []
    if not all(f"C{k}_spinous" in atlas.landmarks for k in range(1, 8)):
        return out
    cs = group_vertices(atlas, "cervical_spine")
    if cs is None:
        return out
    yf = np.percentile(cs[:, 1], 35)  # transverse foramina lie in front of the canal
    for side, sfx, sx in (("right", "r", -1.0), ("left", "l", 1.0)):
        pts = []
        for k in (6, 5, 4, 3, 2, 1):
            s = atlas.landmark(f"C{k}_spinous").xyz
            pts.append([sx * (26.0 if k > 1 else 30.0), yf, s[2]])
        c1 = atlas.landmark("C1_spinous").xyz
        pts.append([sx * 22.0, c1[1] - 12, c1[2] + 6])  # over the posterior arch of the atlas
        pts.append([sx * 6.0, yf - 2, c1[2] + 16])  # into the foramen magnum
        c6 = atlas.landmark("C6_spinous").xyz
        pts.insert(0, [sx * 30.0, yf - 10, c6[2] - 25])  # from the subclavian artery
        v, f = _tube(pts, 2.2)
        out.append(Structure(f"vertebral_artery_{sfx}", f"{side} vertebral artery", "vessel", side, "cervical", v, f,
                             harm="vascular injury", source=SRC))
    return out


LUNG_VOXEL = 4.0
RIB_CLEARANCE_MM = 2.0  # the pleura lies this far (+ 8 mm of rib) inside the ribs' outer hull
RIB_CLEARANCE_TOP_MM = 4.0  # the same within 40 mm of the top of the cage


def lungs(atlas: Atlas) -> list[Structure]:
    from scipy import ndimage
    from scipy.spatial import ConvexHull, Delaunay
    from skimage import measure

    rv = group_vertices(atlas, "ribcage")
    if rv is None:
        return []
    spine = [atlas.get(f"vertebra_T{i}") for i in range(1, 13) if f"vertebra_T{i}" in atlas]
    zmin_lung = atlas.get("vertebra_T11").centroid[2] if "vertebra_T11" in atlas else rv[:, 2].min()
    ztop = rv[:, 2].max()
    lo = np.array([rv[:, 0].min(), rv[:, 1].min(), zmin_lung]) - 8
    hi = np.array([rv[:, 0].max(), rv[:, 1].max(), ztop + 25]) + 8
    shape = np.ceil((hi - lo) / LUNG_VOXEL).astype(int) + 1
    gx = lo[0] + np.arange(shape[0]) * LUNG_VOXEL
    gy = lo[1] + np.arange(shape[1]) * LUNG_VOXEL
    X, Y = np.meshgrid(gx, gy, indexing="ij")
    XY = np.column_stack([X.ravel(), Y.ravel()])
    inside = np.zeros(shape, bool)
    for k in range(shape[2]):
        z = lo[2] + k * LUNG_VOXEL
        zz = min(z, ztop - 6)  # above the first rib the apex keeps the top slice's outline
        sl = rv[np.abs(rv[:, 2] - zz) < 14][:, :2]
        if len(sl) < 10:
            continue
        try:
            hull = Delaunay(sl[ConvexHull(sl).vertices])
        except Exception:
            continue
        if z > ztop - 6:
            # the apex: a dome above the first rib, the slice outline shrinking about
            # each side's centre (so each apex narrows to its own dome)
            shrink = min((z - (ztop - 6)) / 31.0, 0.95)
            c = sl.mean(axis=0)
            cs = np.array([[c[0] - 55, c[1]], [c[0] + 55, c[1]]])
            near = cs[(XY[:, 0] > c[0]).astype(int)]
            m = hull.find_simplex(near + (XY - near) / (1 - shrink)) >= 0
        else:
            m = hull.find_simplex(XY) >= 0
        inside[:, :, k] = m.reshape(shape[0], shape[1])
    # erode: the lungs stay inside the ribs (rib thickness + clearance)
    # erode within each slice only, so the apex dome above the first rib survives
    dist_in = ndimage.distance_transform_edt(inside, sampling=(LUNG_VOXEL, LUNG_VOXEL, 1e6))
    # near the top of the cage (the first rib's slope) the slice hull is small and
    # irregular: keep more clearance there so the pleura stays under the first ribs
    zs = lo[2] + np.arange(shape[2]) * LUNG_VOXEL
    clearance = np.where(zs > ztop - 40, RIB_CLEARANCE_TOP_MM, RIB_CLEARANCE_MM)
    lung = dist_in > (clearance + 8.0)[None, None, :]
    # mediastinum and spine out
    Xg = lo[0] + np.arange(shape[0])[:, None, None] * LUNG_VOXEL
    Yg = lo[1] + np.arange(shape[1])[None, :, None] * LUNG_VOXEL
    Zg = lo[2] + np.arange(shape[2])[None, None, :] * LUNG_VOXEL
    lung &= np.abs(Xg) > 22
    # heart: anterior, left, lower half of the thorax
    zmid = (zmin_lung + ztop) / 2
    ymid = (rv[:, 1].min() + rv[:, 1].max()) / 2
    lung &= ~((Xg > -25) & (Xg < 75) & (Yg < ymid) & (Zg < zmid))
    # vertebral bodies (keep the lungs out of the spine)
    for v in spine:
        c = v.centroid
        lung &= ~((np.abs(Xg - c[0]) < 24) & (Yg > c[1] - 20) & (np.abs(Zg - c[2]) < 20))
    # the apex: a dome above the top of the cage, each slice the one below shrunk by
    # 0.7 mm per mm of height (the cupola rises above the first rib)
    k0 = int(np.floor((ztop - 20 - lo[2]) / LUNG_VOXEL))
    if 0 <= k0 < shape[2]:
        base = lung[:, :, k0].copy()
        d2 = ndimage.distance_transform_edt(base, sampling=LUNG_VOXEL)
        for k in range(k0 + 1, shape[2]):
            rise = (k - k0) * LUNG_VOXEL
            lung[:, :, k] = d2 > rise * 0.7
    out = []
    for side, sfx, sel in (("right", "r", Xg < 0), ("left", "l", Xg > 0)):
        mask = lung & sel
        lab, n = ndimage.label(mask)
        if n == 0:
            continue
        sizes = ndimage.sum(mask, lab, range(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
        phi = np.pad(ndimage.gaussian_filter(mask.astype(np.float32), 1.0), 2)  # closed at the grid edge
        verts, faces, _, _ = measure.marching_cubes(phi, level=0.5, spacing=(LUNG_VOXEL,) * 3)
        v, f = verts + lo - 2 * LUNG_VOXEL, faces.astype(np.int32)
        v = geo.smooth(v, f, iterations=10)
        v, f = geo.simplify_manifold(v, f, 1.0)
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
            f = f[:, ::-1].copy()
        out.append(Structure(f"lung_{sfx}", f"{side} lung and pleura", "organ", side, "thoracic", v, f,
                             harm="pneumothorax", source=SRC, aliases=(f"{side} pleura", f"{side} lung")))
    return out


def add_danger_structures(atlas: Atlas, progress=lambda m, f: None) -> None:
    builders = [lungs, spinal_canal, nerve_roots, sciatic_nerves, kidneys, vertebral_arteries]
    for i, b in enumerate(builders):
        progress(f"danger: {b.__name__}", i / len(builders))
        for s in b(atlas):
            atlas.add(s)
