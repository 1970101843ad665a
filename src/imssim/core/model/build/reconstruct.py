"""Muscles BodyParts3D lacks, placed by the real skeleton (run by the atlas build tool).

Two routes, chosen per muscle (``ROUTES``; ``imssim atlas info`` and docs/atlas.md say which):

- **vhm**: the Visible Human Male lower-limb surfaces (Andreassen et al. 2022, CC BY 4.0;
  ``../shared/atlas-vhm-lowerlimb``, right side) are mapped into imssim's frame and
  registered to this body by a similarity transform fitted on muscles and bones both sets
  have (ICP, structure by structure: the gluteals, tensor fasciae latae, semitendinosus and
  piriformis for the thigh; tibialis anterior, fibularis longus, soleus and the fibula for
  the leg). The left side is the mirrored right registered to the left counterparts.
- **layer**: a voxel layer of the muscle's typical thickness laid on its bed (the bones and
  deeper muscles it lies on), inside a region bounded by the real bones' landmarks, minus
  every bone and muscle already there, so it sits on the real bones between the real
  neighbours (deltoid over the humeral head and rotator cuff; biceps over brachialis;
  triceps behind the humerus; pectoralis major over the upper ribs and pectoralis minor;
  vastus intermedius, medialis and rectus femoris around the femur).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from . import voxel

#: muscle key (meshes/muscles.yaml) -> route
ROUTES = {
    "vastus lateralis": "vhm",
    "biceps femoris (long head)": "vhm",
    "biceps femoris (short head)": "vhm",
    "gastrocnemius (lateral head)": "vhm",
    "gastrocnemius (medial head)": "vhm",
    "deltoid": "layer",
    "pectoralis major": "layer",
    "biceps brachii": "layer",
    "triceps brachii": "layer",
    "vastus intermedius": "layer",
    "vastus medialis": "layer",
    "rectus femoris": "layer",
}

VHM_FILES = {
    "vastus lateralis": "VastusLateralis",
    "biceps femoris (long head)": "BicepsFemorisLong",
    "biceps femoris (short head)": "BicepsFemorisShort",
    "gastrocnemius (lateral head)": "GastrocnemiusLateral",
    "gastrocnemius (medial head)": "GastrocnemiusMedial",
}
#: registration groups: VHM file stems -> this body's structure stems
VHM_GROUPS = {
    "thigh": ({"Muscle_GluteusMaximus": "gluteus_maximus", "Muscle_GluteusMedius": "gluteus_medius",
               "Muscle_GluteusMinimus": "gluteus_minimus", "Muscle_TensorFasciaeLatae": "tensor_fasciae_latae",
               "Muscle_Semitendinosus": "semitendinosus", "Muscle_Piriformis": "piriformis"},
              ["vastus lateralis", "biceps femoris (long head)", "biceps femoris (short head)"]),
    "leg": ({"Muscle_TibialisAnterior": "tibialis_anterior", "Muscle_PeroneusLongus": "fibularis_longus",
             "Muscle_Soleus": "soleus", "Bone_Fibula": "fibula"},
            ["gastrocnemius (lateral head)", "gastrocnemius (medial head)"]),
}


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def _stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    m = trimesh.load(path, force="mesh")
    # VHM frame: +X left, +Y anterior, +Z inferior -> LPS (+Y posterior, +Z superior)
    v = np.asarray(m.vertices, float) * np.array([1.0, -1.0, -1.0])
    return v, np.asarray(m.faces, np.int64)


def vhm_muscles(vhm_dir: Path, by_id: dict[str, dict], log=print) -> list[dict]:
    """The VHM muscles of ``ROUTES`` registered onto this body, both sides.

    The scale is fixed by the one bone both sets have whole (the fibula's length); the
    rotation and translation come from ICP on the shared muscles (a free scale lets ICP
    shrink the bulkier VHM muscles into their thinner counterparts). Whatever then lies
    inside this body's bones or muscles is cut away, so the added muscle fills the space
    between its real neighbours.
    """
    from ..importer.register import Similarity, icp, surface_points, umeyama

    vhm_dir = Path(vhm_dir) / "meshes"
    out = []
    fib_vhm, _ = _stl(next(vhm_dir.glob("VHM_Right_Bone_Fibula_smooth.stl")))
    scale = float(np.ptp(by_id["fibula_r"]["V"][:, 2]) / np.ptp(fib_vhm[:, 2]))
    log(f"vhm scale from the fibula: {scale:.3f}")
    for group, (pairs_map, targets) in VHM_GROUPS.items():
        for side, sfx, mirror in (("right", "_r", 1.0), ("left", "_l", -1.0)):
            pairs, cs, cd = [], [], []
            for stem, ours in pairs_map.items():
                f = next(vhm_dir.glob(f"VHM_*_{stem}_smooth.stl"))
                v, fc = _stl(f)
                v = v * np.array([mirror, 1, 1]) * scale
                t = by_id[ours + sfx]
                pairs.append((surface_points(v, fc, 1500), surface_points(t["V"], t["F"], 3000)))
                cs.append(v.mean(0))
                cd.append(t["V"].mean(0))
            init = umeyama(np.array(cs), np.array(cd), with_scale=False)
            T, rms, _it = icp(pairs, init, with_scale=False)
            T = Similarity(T.R * scale, T.t, 1.0)  # fold the fixed scale in
            log(f"vhm {group} {side}: rms {rms:.1f} mm")
            for key in targets:
                f = next(vhm_dir.glob(f"VHM_Right_Muscle_{VHM_FILES[key]}_smooth.stl"))
                v, fc = _stl(f)
                v = T.apply(v * np.array([mirror, 1, 1]))
                if mirror < 0:
                    fc = fc[:, ::-1]
                lo, hi = v.min(0), v.max(0)
                grid = voxel.Grid.around(lo, hi, voxel.voxel_size(lo, hi, 4e6, 0.8, 1.2), 3.0)
                body = _Body(by_id, grid)
                own = voxel.solidify(voxel.rasterise(v, fc, grid), 0.0)
                others = [i for i in body.overlapping() if by_id[i].get("route") is None or by_id[i]["kind"] == "bone"]
                m = voxel.keep_largest_components(own & ~body.union(others), 0.05)
                V, F = voxel.surface(m, grid, 0.7)
                from .geometry import is_watertight, simplify_manifold

                V, F = simplify_manifold(V, F, 0.4)
                d = {"id": _slug(key) + sfx, "kind": "muscle", "side": side, "key": key, "V": V.astype(np.float32),
                     "F": F.astype(np.int32), "route": "vhm (Visible Human Male, registered)",
                     "name": f"{side} {key}", "source_files": [f.name],
                     "build": {"voxel_mm": grid.h, "registration_rms_mm": round(rms, 2), "scale": round(scale, 4),
                               "kept_fraction": round(float(m.sum() / max(own.sum(), 1)), 3),
                               "watertight": bool(is_watertight(V, F))}}
                by_id[d["id"]] = d
                out.append(d)
    return out


# ---------------------------------------------------------------------------------------
# layer reconstructions


class _Body:
    """Closed structures rasterised on demand into a shared local grid."""

    def __init__(self, by_id: dict[str, dict], grid: voxel.Grid):
        self.by_id, self.grid = by_id, grid
        self._cache: dict[str, np.ndarray] = {}

    def solid(self, sid: str) -> np.ndarray:
        if sid not in self._cache:
            d = self.by_id[sid]
            self._cache[sid] = voxel.solidify(voxel.rasterise(d["V"], d["F"], self.grid), 0.0)
        return self._cache[sid]

    def union(self, ids) -> np.ndarray:
        m = np.zeros(self.grid.shape, bool)
        for i in ids:
            if i in self.by_id:
                m |= self.solid(i)
        return m

    def overlapping(self, kinds=("bone", "muscle")) -> list[str]:
        lo = self.grid.origin
        hi = lo + self.grid.h * (np.array(self.grid.shape) - 1)
        out = []
        for sid, d in self.by_id.items():
            if d["kind"] in kinds and np.all(d["V"].max(0) >= lo) and np.all(d["V"].min(0) <= hi):
                out.append(sid)
        return out


def _layer(body: _Body, bed: np.ndarray, thickness: float, roi: np.ndarray) -> np.ndarray:
    h = body.grid.h
    d = ndimage.distance_transform_edt(~bed) * h
    occupied = body.union(body.overlapping())
    m = (d > 0) & (d <= thickness) & roi & ~occupied
    m = ndimage.binary_opening(m, structure=voxel.ball(1.0))
    return voxel.keep_largest_components(m, 0.2)


def _axis_at(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Centre (x, y) of a long bone's cross-section at heights ``z`` (5 mm bands)."""
    out = np.zeros((len(z), 2))
    for i, zz in enumerate(z):
        band = v[np.abs(v[:, 2] - zz) < 5]
        if len(band) == 0:
            band = v[np.argsort(np.abs(v[:, 2] - zz))[:50]]
        out[i] = band[:, :2].mean(0)
    return out


def layer_muscles(by_id: dict[str, dict], log=print) -> list[dict]:
    out = []
    for side, sfx, lat in (("right", "_r", -1.0), ("left", "_l", 1.0)):
        hum = by_id[f"humerus{sfx}"]["V"]
        fem = by_id[f"femur{sfx}"]["V"]
        sca = by_id[f"scapula{sfx}"]["V"]
        cla = by_id[f"clavicle{sfx}"]["V"]
        made: dict[str, dict] = {}

        def emit(key, mask, grid, body):
            V, F = voxel.surface(mask, grid, 0.8)
            from .geometry import is_watertight, simplify_manifold

            V, F = simplify_manifold(V, F, 0.5)
            d = {"id": _slug(key) + sfx, "kind": "muscle", "side": side, "key": key, "V": V.astype(np.float32),
                 "F": F.astype(np.int32), "route": "layer (reconstructed on the BodyParts3D bones)", "name": f"{side} {key}",
                 "build": {"voxel_mm": grid.h, "volume_mm3": float(mask.sum() * grid.h**3), "watertight": bool(is_watertight(V, F))}}
            made[key] = d
            by_id[d["id"]] = d
            body._cache[d["id"]] = mask
            out.append(d)
            log(f"layer {d['id']}: {d['build']['volume_mm3'] / 1000:.0f} cm3")

        # ---- shoulder and arm --------------------------------------------------------
        ztop, zbot = hum[:, 2].max(), hum[:, 2].min()
        L = ztop - zbot
        acr = sca[np.argmax(lat * sca[:, 0] + 0.5 * sca[:, 2])]
        lo = np.array([min(hum[:, 0].min(), acr[0]) - 45, min(hum[:, 1].min(), sca[:, 1].min()) - 40, zbot - 10])
        hi = np.array([max(hum[:, 0].max(), acr[0]) + 45, max(hum[:, 1].max(), sca[:, 1].max()) + 40, acr[2] + 30])
        grid = voxel.Grid.around(lo, hi, 1.0, 0.0)
        body = _Body(by_id, grid)
        P = grid.points(np.indices(grid.shape).reshape(3, -1).T).reshape(*grid.shape, 3)
        z = P[..., 2]
        zs = np.linspace(zbot, ztop, 40)
        ax = _axis_at(hum, zs)
        axx = np.interp(z, zs, ax[:, 0])
        axy = np.interp(z, zs, ax[:, 1])
        head_c = hum[hum[:, 2] > ztop - 0.12 * L].mean(0)
        # deltoid: over the humeral head, the rotator cuff and the acromion, down to the
        # deltoid tuberosity (about 45% down the humerus); not on the axillary side
        near_acr = sca[np.linalg.norm(sca - acr, axis=1) < 35]
        bed = body.union([f"humerus{sfx}", f"supraspinatus{sfx}", f"infraspinatus{sfx}", f"teres_minor{sfx}", f"subscapularis{sfx}"])
        bed &= z > ztop - 0.45 * L
        acr_mask = voxel.solidify(voxel.rasterise(near_acr, np.zeros((0, 3), int), grid), 0) if len(near_acr) else None
        if acr_mask is not None:
            bed |= ndimage.binary_dilation(acr_mask, iterations=2)
        roi = (z > ztop - 0.45 * L) & (z < acr[2] + 10) & (lat * (P[..., 0] - head_c[0]) > -12)
        emit("deltoid", _layer(body, bed, 20.0, roi), grid, body)
        # biceps brachii: in front of brachialis and the humerus, 20-85% down
        bed = body.union([f"brachialis{sfx}", f"coracobrachialis{sfx}", f"humerus{sfx}"])
        roi = (z < ztop - 0.2 * L) & (z > zbot + 0.12 * L) & (P[..., 1] < axy - 8) & (np.abs(P[..., 0] - axx) < 30)
        emit("biceps brachii", _layer(body, bed, 18.0, roi), grid, body)
        # triceps brachii: behind the humerus, from below the head to the olecranon
        bed = body.union([f"humerus{sfx}"])
        roi = (z < ztop - 0.12 * L) & (z > zbot + 0.05 * L) & (P[..., 1] > axy + 2) & (np.abs(P[..., 0] - axx) < 35)
        emit("triceps brachii", _layer(body, bed, 24.0, roi), grid, body)

        # ---- pectoralis major: over the upper ribs and pectoralis minor ---------------
        ribs = [f"rib_{k}{sfx}" for k in range(1, 7)]
        rv = np.vstack([by_id[r]["V"] for r in ribs if r in by_id])
        front = rv[:, 1] < np.percentile(rv[:, 1], 35)
        lo = np.array([min(lat * 0, *rv[:, 0]) - 10, rv[:, 1].min() - 40, rv[front][:, 2].min() - 10])
        hi = np.array([max(*rv[:, 0], lat * 0) + 10, np.percentile(rv[:, 1], 50), cla[:, 2].max() + 10])
        lo[0], hi[0] = min(lo[0], head_c[0]), max(hi[0], head_c[0])
        grid = voxel.Grid.around(lo, hi, 1.0, 0.0)
        body = _Body(by_id, grid)
        P = grid.points(np.indices(grid.shape).reshape(3, -1).T).reshape(*grid.shape, 3)
        bed = body.union(ribs + [f"pectoralis_minor{sfx}", f"external_intercostal{sfx}", f"clavicle{sfx}"])
        ycut = np.percentile(rv[:, 1], 30)
        roi = (P[..., 1] < ycut) & (lat * P[..., 0] > 2) & (lat * P[..., 0] < lat * head_c[0] - 15) & \
              (P[..., 2] < cla[:, 2].mean()) & (P[..., 2] > rv[front][:, 2].min() + 15)
        emit("pectoralis major", _layer(body, bed, 14.0, roi), grid, body)

        # ---- anterior thigh around the femur -------------------------------------------
        ztop, zbot = fem[:, 2].max(), fem[:, 2].min()
        L = ztop - zbot
        lo = fem.min(0) - np.array([45, 45, 5])
        hi = fem.max(0) + np.array([45, 45, 5])
        grid = voxel.Grid.around(lo, hi, 1.2, 0.0)
        body = _Body(by_id, grid)
        P = grid.points(np.indices(grid.shape).reshape(3, -1).T).reshape(*grid.shape, 3)
        z = P[..., 2]
        zs = np.linspace(zbot, ztop, 60)
        ax = _axis_at(fem, zs)
        axx = np.interp(z, zs, ax[:, 0])
        axy = np.interp(z, zs, ax[:, 1])
        lateral = lat * (P[..., 0] - axx)  # > 0 away from the midline
        dy = P[..., 1] - axy  # < 0 anterior
        bed = body.union([f"femur{sfx}"]) & (z < ztop - 0.12 * L) & (z > zbot + 0.2 * L)
        roi = (dy < 6) & (z < ztop - 0.12 * L) & (z > zbot + 0.18 * L) & (np.abs(lateral) < 30)
        emit("vastus intermedius", _layer(body, bed, 16.0, roi), grid, body)
        bed = body.union([f"femur{sfx}", f"vastus_intermedius{sfx}"])
        roi = (lateral < -5) & (dy < 10) & (z < ztop - 0.35 * L) & (z > zbot + 0.1 * L)
        emit("vastus medialis", _layer(body, bed, 18.0, roi), grid, body)
        bed = body.union([f"vastus_intermedius{sfx}", f"vastus_medialis{sfx}", f"vastus_lateralis{sfx}"])
        roi = (dy < -15) & (np.abs(lateral - 3) < 24) & (z < ztop - 0.05 * L) & (z > zbot + 0.15 * L)
        emit("rectus femoris", _layer(body, bed, 16.0, roi), grid, body)
    return out
