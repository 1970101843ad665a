"""Skin and subcutaneous fat around the whole atlas, for several body habitus.

The fat is one layer just under the skin, lying on the deep fascia of the outermost
muscles, and its thickness varies over the body and with the build as published
ultrasound, CT and MRI series measure it (the figures and their sources are in
:data:`ANCHORS` and docs/atlas.md, "Skin and fat").

Method, on one voxel grid (``VOXEL_MM``):

1. **Muscle and bone mass.** Every bone, muscle and organ is rasterised; enclosed space is
   filled. Each voxel is given the body part of its nearest bone (trunk with head, neck,
   shoulder girdle and pelvis; each arm; each leg).
2. **Deep fascia** (the fat's deep surface): each part is closed on its own with a ball
   (``CLOSE_MM``: 55 mm for the trunk, which seals the open pelvic outlet, the thoracic
   inlet, the mouth and orbits, the supraclavicular fossa and the gaps under gluteus
   maximus; 15 mm for a limb), so the trunk's cavities and the clefts between its muscles
   are inside, and a limb is never webbed to the trunk by it. The union is closed once
   more by ``SEAM_MM`` and filled. Before this, the skin lined the open abdominopelvic
   cavity from inside: a needle in front of L5 or deep to gluteus maximus met
   "subcutaneous fat" again 40-55 mm deep. The contour's vertices (and face centres) that
   lie in or within ``DEEP_GAP_MM`` of a muscle or bone are pushed out (exact distances).
3. **Fat thickness** ``t(x)`` and **skin thickness** ``s(x)``: smooth fields, a Gaussian
   kernel average (``SIGMA_MM``) of the values at named anchor sites (:data:`ANCHORS`,
   placed on the landmarks and bones, one value per habitus; the averaged values are
   corrected so the field takes each anchor's value at the anchor), each part averaging
   only its own anchors, then blurred across the part seams.
4. The skin's outer surface is the level set ``d(x) = t(x) - g(x) + s(x)`` of the distance
   ``d`` to the deep fascia (outside it; enclosed pockets filled), contoured by marching
   cubes and snapped onto exact distances; ``g`` is the part of the gap from the fascia down
   to the muscle counted as fat, at most ``GAP_COMP_MM`` (now 0: the fill grid names that
   gap, build/fill.py, so the fat mesh alone reads the published ``t``). The skin's inner surface is the outer one moved ``s``
   inwards; the fat lies between the skin's inner surface and the deep fascia.

Each shell is one closed mesh (outer surface plus the inverted inner one), so ray parity
gives entry and exit. All habitus variants are stored in the atlas (ids ``skin@lean``,
``subcutaneous@obese``, ...); :func:`for_habitus` returns a view with one of them as
``skin`` and ``subcutaneous``. Each variant's ``meta`` holds the anchors' fat and skin
figures; ``atlas.meta["skin_sites"]`` where each anchor landed on this body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..atlas import Atlas, Structure
from . import geometry as geo

HABITUS = ("lean", "average", "obese")
VOXEL_MM = 4.0
#: closing radius per body part (mm): the trunk's seals its cavities, a limb's only bridges
#: the gaps between its own muscles
CLOSE_MM = {"trunk": 55.0, "arm": 15.0, "leg": 15.0}
SEAM_MM = 8.0  # the parts' union is closed by this (bridges seams under ~16 mm)
SIGMA_MM = 60.0  # reach of an anchor's value
SEAM_BLUR_MM = 12.0  # the fields are blurred this much across the part seams
FAT_MIN_MM = 1.5  # thinnest fat anywhere (keeps the two meshes apart)
SKIN_RANGE_MM = (1.7, 3.0)  # skin is 1.5-3 mm thick (docs/atlas.md, "Skin and fat")
DEEP_GAP_MM = 1.0  # the fat's deep surface lies at least this far outside every muscle and bone
GAP_COMP_MM = 0.0  # the fascia-to-muscle gap the skin level makes up for, at most: none, the fill
# grid names that gap (fascia over the muscle), so the fat mesh alone is the published fat
SIMPLIFY_MM = 1.0  # outer surface simplification tolerance (mm)
DEEP_SIMPLIFY_MM = 1.0
SAMPLE_MM = 1.5  # surface sampling for exact distances

_PARTS = ("trunk", "arm_r", "arm_l", "leg_r", "leg_l")


@dataclass(frozen=True)
class Anchor:
    """A site where the fat and skin thickness are set: on the body surface, found by
    leaving a point on the bones along ``direction``."""

    name: str
    part: str  # trunk, arm or leg
    fat: tuple[float, float, float]  # mm: lean, average, obese
    skin: float  # mm
    source: str


#: Published figures the anchors take (fat mm lean/average/obese; skin mm). Sources, with
#: how each value follows from them, are in docs/atlas.md ("Skin and fat"); [U] marks a
#: value interpolated from neighbouring sites and general anatomy rather than measured.
ANCHORS: dict[str, Anchor] = {a.name: a for a in [
    # head and neck
    Anchor("scalp", "trunk", (3.0, 4.0, 5.0), 1.8, "scalp skin 1.7-1.9 mm (Arch Plast Surg 2025); fat [U]"),
    Anchor("occiput", "trunk", (3.0, 4.5, 6.5), 1.8, "[U]"),
    Anchor("forehead", "trunk", (3.0, 4.0, 5.5), 1.7, "[U]"),
    Anchor("temple", "trunk", (3.0, 4.0, 5.5), 1.7, "[U]"),
    Anchor("jaw", "trunk", (3.5, 5.0, 8.0), 1.8, "[U]"),
    Anchor("chin", "trunk", (3.5, 5.0, 9.0), 1.8, "[U]"),
    Anchor("neck_posterior_C3", "trunk", (3.0, 6.0, 11.0), 2.5,
           "cervical SFTT at C3, neck-pain cut-off 8.2 mm men, 9.6 mm women (Medicine 2023;102:e34355)"),
    Anchor("neck_posterior_C5", "trunk", (3.0, 6.0, 12.0), 2.5,
           "posterior cervical SFTT (Medicine 2023;102:e34355); neck fat compartments at C5 by BMI (PMC6443294)"),
    Anchor("neck_lateral", "trunk", (3.0, 5.0, 9.0), 2.0, "[U]"),
    Anchor("neck_anterior", "trunk", (3.0, 5.0, 10.0), 1.8, "[U]"),
    # back
    Anchor("shoulder_top", "trunk", (4.0, 7.0, 12.0), 2.6, "[U] between the neck and the rhomboid figures"),
    Anchor("rhomboid", "trunk", (5.0, 9.0, 15.0), 2.8,
           "skin-to-muscle 12 +/- 2 mm normal BMI, 18 +/- 3 mm obese (Ann Rehabil Med 2014;38:72)"),
    Anchor("scapula", "trunk", (5.0, 9.0, 15.0), 2.8, "as the rhomboid region (same ultrasound series)"),
    Anchor("back_T9", "trunk", (5.0, 10.0, 18.0), 2.8, "[U] between the rhomboid and lumbar figures"),
    Anchor("lumbar_L1", "trunk", (5.0, 10.0, 19.0), 2.8,
           "L1-L2 SFTT cut-off 8.45 mm women / 9.4 mm men (Eur Radiol 2022;32:6504)"),
    Anchor("lumbar_L3", "trunk", (6.0, 12.0, 22.0), 2.8,
           "lumbar SFTT (Eur Radiol 2022;32:6504; Tomography 2024;10:159); skin: back thickest, ~3 mm "
           "(Korean J Dermatol 1995;33:303)"),
    Anchor("sacral", "trunk", (6.0, 12.0, 22.0), 2.6, "as lumbar"),
    # pelvis and buttock
    Anchor("buttock", "trunk", (9.0, 18.0, 30.0), 2.4,
           "buttock SCT 15.4 mm mean, skin 2.4 mm (Curr Med Res Opin 2010;26:1519); dorsogluteal skin-to-muscle "
           "> 25 mm in 72/100 adults (BMJ 2006;332:637)"),
    Anchor("buttock_low", "trunk", (10.0, 20.0, 32.0), 2.4, "as buttock"),
    Anchor("flank", "trunk", (6.0, 13.0, 25.0), 2.2, "[U] between the lumbar and abdominal figures"),
    Anchor("chest_lateral", "trunk", (4.0, 8.0, 15.0), 2.2, "[U]"),
    Anchor("chest", "trunk", (4.0, 8.0, 16.0), 2.0, "[U]"),
    Anchor("epigastric", "trunk", (5.0, 10.0, 20.0), 2.2, "[U] as the abdomen, a little thinner"),
    Anchor("abdomen", "trunk", (6.0, 12.0, 24.0), 2.2,
           "abdomen SCT 10.2 +/- 6.5 mm at BMI 24 (Diabetes Metab J 2014;38:120), 13.9 mm across BMI 19-65, "
           "skin 2.2 mm (Curr Med Res Opin 2010;26:1519)"),
    Anchor("lower_abdomen", "trunk", (6.0, 13.0, 26.0), 2.2, "as abdomen"),
    # arm
    Anchor("deltoid", "arm", (4.0, 7.0, 12.0), 2.2, "[U] as the upper arm"),
    Anchor("triceps", "arm", (3.5, 6.0, 11.0), 2.2,
           "upper arm SCT 5.5 +/- 2.7 mm at BMI 24 (Diabetes Metab J 2014;38:120), 10.8 mm across BMI 19-65, "
           "skin 2.2 mm (Curr Med Res Opin 2010;26:1519)"),
    Anchor("biceps", "arm", (3.0, 5.0, 9.0), 2.0, "[U]"),
    Anchor("arm_medial", "arm", (3.5, 6.5, 12.0), 1.8, "[U]"),
    Anchor("elbow", "arm", (2.5, 3.0, 4.0), 2.0, "[U]"),
    Anchor("forearm_dorsal", "arm", (2.5, 3.5, 6.0), 1.8, "[U] brachioradialis site among the thinnest (Ultrasound Med Biol 2017;43:427)"),
    Anchor("forearm_ventral", "arm", (2.5, 4.0, 7.0), 1.7, "[U]"),
    Anchor("hand_dorsal", "arm", (2.5, 2.5, 3.5), 1.7, "[U]"),
    Anchor("hand_palmar", "arm", (2.5, 3.0, 4.0), 1.8, "[U]"),
    # leg
    Anchor("hip_lateral", "leg", (5.0, 10.0, 18.0), 2.0, "[U] between the buttock and the thigh"),
    Anchor("thigh_lateral", "leg", (4.0, 8.0, 14.0), 1.9,
           "thigh SCT 10.4 mm across BMI 19-65, skin 1.9 mm (Curr Med Res Opin 2010;26:1519); "
           "10 kg/m2 of BMI ~ 4 mm of fat (same)"),
    Anchor("thigh_anterior", "leg", (4.0, 8.0, 14.0), 1.9, "as the lateral thigh"),
    Anchor("thigh_posterior", "leg", (5.0, 9.0, 16.0), 1.9, "[U]"),
    Anchor("thigh_medial", "leg", (5.0, 10.0, 18.0), 1.8, "[U]"),
    Anchor("knee", "leg", (2.5, 3.5, 6.0), 1.8, "[U]"),
    Anchor("popliteal", "leg", (4.0, 6.0, 10.0), 1.8, "[U]"),
    Anchor("calf_medial", "leg", (3.0, 6.0, 10.0), 1.8, "[U] medial calf site (Ultrasound Med Biol 2017;43:427)"),
    Anchor("calf_posterior", "leg", (3.0, 5.0, 9.0), 1.8, "[U]"),
    Anchor("shin", "leg", (2.5, 3.0, 5.0), 1.8, "[U]"),
    Anchor("leg_lateral", "leg", (3.0, 4.0, 7.0), 1.8, "[U]"),
    Anchor("ankle", "leg", (2.5, 3.0, 4.0), 1.7, "[U]"),
    Anchor("foot_dorsal", "leg", (2.5, 3.0, 4.0), 1.7, "[U]"),
    Anchor("heel", "leg", (8.0, 10.0, 12.0), 2.5, "[U] heel pad"),
]}


def _variant_id(kind: str, habitus: str) -> str:
    return f"{kind}@{habitus}"


# -- anchor sites on this body ----------------------------------------------------------------


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _slab_centre(v: np.ndarray, z: float, half: float = 6.0) -> np.ndarray:
    sel = np.abs(v[:, 2] - z) < half
    return v[sel].mean(axis=0) if sel.any() else v[np.argmin(np.abs(v[:, 2] - z))]


def _along(atlas: Atlas, bone: str, frac: float) -> np.ndarray:
    """The centre of a long bone's cross-section ``frac`` of the way from its top."""
    v = atlas.get(bone).vertices
    top, bot = v[:, 2].max(), v[:, 2].min()
    return _slab_centre(v, top - frac * (top - bot))


def anchor_rays(atlas: Atlas) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(anchor name, part, start, direction)``: the site is where the ray from ``start``
    (on or in the bones) leaves the body's muscle and bone mass for good. Paired sites get
    one ray per side."""
    L = lambda k: atlas.landmark(k).xyz  # noqa: E731
    C = lambda k: atlas.get(k).centroid  # noqa: E731
    out = []

    def add(name, part, start, d):
        out.append((name, part, np.asarray(start, float), _unit(d)))

    sk = C("skull")
    add("scalp", "trunk", sk, (0, 0, 1))
    add("occiput", "trunk", sk, (0, 1, 0))
    add("forehead", "trunk", sk + (0, 0, 20), (0, -1, 0.3))
    mand = C("mandible")
    add("chin", "trunk", mand, (0, -1, -0.3))
    add("neck_anterior", "trunk", C("hyoid"), (0, -1, -0.2))
    c7, t4 = L("C7_spinous"), L("T4_spinous")
    for sfx, lat in (("r", -1.0), ("l", 1.0)):
        add("temple", "trunk", sk, (lat, 0, 0))
        add("jaw", "trunk", mand, (lat, -0.4, 0))
        for lvl in ("C3", "C5"):
            add(f"neck_posterior_{lvl}", "trunk", L(f"{lvl}_spinous") + (lat * 15, -10, 0), (0, 1, 0))
        add("neck_lateral", "trunk", C("vertebra_C5"), (lat, 0, 0))
        add("shoulder_top", "trunk", 0.5 * (c7 + L(f"acromion_{sfx}")), (0, 0.3, 1))
        mb = L(f"scapula_medial_border_{sfx}")
        add("rhomboid", "trunk", t4 + (lat * 0.55 * abs(mb[0] - t4[0]), -20, 0), (0, 1, 0))
        add("scapula", "trunk", 0.5 * (L(f"scapular_spine_root_{sfx}") + L(f"inferior_angle_{sfx}")) + (lat * 25, -10, 0),
            (0, 1, 0))
        add("back_T9", "trunk", L("T9_spinous") + (lat * 40, -20, 0), (0, 1, 0))
        add("lumbar_L1", "trunk", L("L1_spinous") + (lat * 30, -20, 0), (0, 1, 0))
        add("lumbar_L3", "trunk", L("L3_spinous") + (lat * 30, -20, 0), (0, 1, 0))
        add("sacral", "trunk", L("S2_spinous") + (lat * 25, -20, 0), (0, 1, 0))
        psis, gt = L(f"psis_{sfx}"), L(f"greater_trochanter_{sfx}")
        add("buttock", "trunk", 0.5 * (psis + gt) + (0, 0, 25), (lat * 0.5, 1, 0))
        add("buttock_low", "trunk", L(f"ischial_tuberosity_{sfx}") + (lat * 20, 0, 20), (0, 1, -0.5))
        add("flank", "trunk", L(f"iliac_crest_{sfx}") + (0, 0, 35), (lat, 0, 0))
        r6 = atlas.get(f"rib_6_{sfx}").vertices
        add("chest_lateral", "trunk", r6[np.argmax(lat * r6[:, 0])] - (lat * 20, 0, 0), (lat, 0, 0))
        cl = C(f"clavicle_{sfx}")
        add("chest", "trunk", (0.8 * cl[0], cl[1] + 60, cl[2] - 70), (0, -1, 0))
        for name, lvl, dz in (("epigastric", "L1", 0.0), ("abdomen", "L3", -15.0)):
            v = C(f"vertebra_{lvl}")
            add(name, "trunk", (lat * 40, v[1], L(f"{lvl}_spinous")[2] + dz), (0, -1, 0))
        asis = L(f"asis_{sfx}")
        add("lower_abdomen", "trunk", asis + (-lat * 50, 40, -10), (0, -1, 0))
        # arm
        arm = f"arm_{sfx}"
        hu = f"humerus_{sfx}"
        add("deltoid", arm, _along(atlas, hu, 0.15), (lat, 0, 0))
        add("triceps", arm, _along(atlas, hu, 0.5), (0, 1, 0))
        add("biceps", arm, _along(atlas, hu, 0.5), (0, -1, 0))
        add("arm_medial", arm, _along(atlas, hu, 0.45), (-lat, 0, 0))
        add("elbow", arm, 0.5 * (L(f"lateral_epicondyle_{sfx}") + L(f"medial_epicondyle_{sfx}")), (0, 1, 0))
        add("forearm_dorsal", arm, _along(atlas, f"radius_{sfx}", 0.3), (lat * 0.5, 1, 0))
        add("forearm_ventral", arm, _along(atlas, f"ulna_{sfx}", 0.35), (0, -1, 0))
        hb = C(f"hand_bones_{sfx}")
        add("hand_dorsal", arm, hb, (0, 1, 0))
        add("hand_palmar", arm, hb, (0, -1, 0))
        # leg
        leg = f"leg_{sfx}"
        fe, ti = f"femur_{sfx}", f"tibia_{sfx}"
        add("hip_lateral", leg, gt, (lat, 0, 0))
        add("thigh_lateral", leg, _along(atlas, fe, 0.5), (lat, 0, 0))
        add("thigh_anterior", leg, _along(atlas, fe, 0.5), (0, -1, 0))
        add("thigh_posterior", leg, _along(atlas, fe, 0.5), (0, 1, 0))
        add("thigh_medial", leg, _along(atlas, fe, 0.35), (-lat, 0, 0))
        add("knee", leg, C(f"patella_{sfx}"), (0, -1, 0))
        add("popliteal", leg, _along(atlas, fe, 0.95), (0, 1, 0))
        add("calf_medial", leg, _along(atlas, ti, 0.3), (-lat, 0.5, 0))
        add("calf_posterior", leg, _along(atlas, ti, 0.3), (0, 1, 0))
        add("shin", leg, _along(atlas, ti, 0.4), (0, -1, 0))
        add("leg_lateral", leg, _along(atlas, f"fibula_{sfx}", 0.4), (lat, 0, 0))
        add("ankle", leg, C(f"talus_{sfx}"), (0, -1, 0.3))
        add("foot_dorsal", leg, C(f"foot_bones_{sfx}"), (0, -0.3, 1))
        add("heel", leg, C(f"calcaneus_{sfx}"), (0, 1, -0.6))
    return out


# -- the voxel model -----------------------------------------------------------------------------


@dataclass
class _Grid:
    lo: np.ndarray  # centre of voxel (0, 0, 0)
    h: float
    shape: tuple[int, int, int]

    def index(self, p: np.ndarray) -> np.ndarray:
        return np.rint((np.asarray(p, float) - self.lo) / self.h).astype(np.int64)

    def centres(self, idx: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.lo + np.column_stack(idx) * self.h

    def sample(self, field: np.ndarray, p: np.ndarray, order: int = 1) -> np.ndarray:
        from scipy import ndimage

        c = ((np.asarray(p, float) - self.lo) / self.h).T
        return ndimage.map_coordinates(field, c, order=order, mode="nearest")


def _part_of_bone(bone_id: str) -> int:
    side = 1 if bone_id.endswith("_l") else 0
    if bone_id.startswith(("humerus", "radius", "ulna", "hand")):
        return 2 + side
    if bone_id.startswith(("femur", "patella", "tibia", "fibula", "talus", "calcaneus", "foot")):
        return 4 + side
    return 1


def _mass(atlas: Atlas, margin: float):
    """Grid, muscle-and-bone mass (enclosed space filled) and each voxel's body part."""
    from scipy import ndimage

    from .voxel import surface_samples

    parts = [s for s in atlas if s.kind not in ("skin", "subcutaneous")]
    lo = np.min([s.vertices.min(axis=0) for s in parts], axis=0) - margin
    hi = np.max([s.vertices.max(axis=0) for s in parts], axis=0) + margin
    shape = tuple(int(n) for n in np.ceil((hi - lo) / VOXEL_MM).astype(int) + 1)
    g = _Grid(lo, VOXEL_MM, shape)
    occ = np.zeros(shape, bool)
    bone = np.zeros(shape, np.uint8)
    for s in parts:
        ijk = ((surface_samples(s.vertices, s.faces, 0.6 * VOXEL_MM) - g.lo) / g.h + 0.5).astype(np.int32)
        occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
        if s.kind == "bone":
            bone[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = _part_of_bone(s.id)
    mass = ndimage.binary_fill_holes(ndimage.binary_closing(occ, iterations=1))
    idx = ndimage.distance_transform_edt(bone == 0, return_distances=False, return_indices=True)
    part = bone[idx[0], idx[1], idx[2]]
    return g, mass, part


def _closing(mask: np.ndarray, r: float, h: float) -> np.ndarray:
    """Morphological closing by a ball of radius ``r`` mm. Small balls by binary
    morphology; large ones by two distance transforms, on a grid twice as coarse (a
    closing of the 2x2x2 blocks, shrunk back by one coarse voxel: eight times fewer
    voxels, and only the bridged space is approximate)."""
    from scipy import ndimage

    rv = r / h
    if rv <= 2.5:
        k = int(np.ceil(rv))
        z, y, x = np.mgrid[-k:k + 1, -k:k + 1, -k:k + 1]
        ball = (x * x + y * y + z * z) <= rv * rv + 1e-9
        p = k + 1
        return ndimage.binary_closing(np.pad(mask, p), structure=ball)[p:-p, p:-p, p:-p]
    if rv >= 6:
        n = [(d + 1) // 2 * 2 for d in mask.shape]
        m = np.zeros(n, bool)
        m[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
        m2 = m.reshape(n[0] // 2, 2, n[1] // 2, 2, n[2] // 2, 2).any(axis=(1, 3, 5))
        c2 = ndimage.binary_erosion(_closing(m2, r, 2 * h), border_value=1)
        c = c2.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
        return c[: mask.shape[0], : mask.shape[1], : mask.shape[2]] | mask
    dil = ndimage.distance_transform_edt(~mask, sampling=h) <= r
    return ndimage.distance_transform_edt(dil, sampling=h) > r


def _fascia(g: _Grid, mass: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The deep fascia's solid: each part closed on its own, the union sealed and filled."""
    from scipy import ndimage

    out = mass.copy()
    for k, name in enumerate(_PARTS, start=1):
        m = mass & (part == k)
        if not m.any():
            continue
        r = CLOSE_MM[name.split("_")[0]]
        pad = int(np.ceil(r / g.h)) + 2
        ijk = np.argwhere(m)
        a = np.maximum(ijk.min(axis=0) - pad, 0)
        b = np.minimum(ijk.max(axis=0) + pad + 1, g.shape)
        box = (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))
        out[box] |= _closing(m[box], r, g.h)
    out = ndimage.binary_fill_holes(_closing(out, SEAM_MM, g.h))
    lab, n = ndimage.label(out)
    if n > 1:  # one body
        out = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    return out


def _outside(inside: np.ndarray) -> np.ndarray:
    """Voxels not in ``inside`` and connected to the grid's border."""
    from scipy import ndimage

    lab, _ = ndimage.label(~inside)
    border = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    return np.isin(lab, border[border > 0])


def _largest_piece(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected piece of a mesh with the most faces (unused vertices dropped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
    n, lab = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(v), len(v))),
                                  directed=False)
    if n == 1:
        return v, f
    flab = lab[f[:, 0]]
    keep = f[flab == np.argmax(np.bincount(flab))]
    used, inv = np.unique(keep.ravel(), return_inverse=True)
    return v[used], inv.reshape(-1, 3).astype(np.int32)


def _contour(phi: np.ndarray, g: _Grid, tolerance: float, smooth_iter: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Closed, outward-oriented surface where ``phi`` crosses 0 (phi < 0 inside): the
    largest piece only, Taubin-smoothed, simplified as a closed manifold."""
    from skimage import measure

    phi = np.pad(phi, 2, constant_values=float(np.max(phi)))  # closed at the grid edge
    verts, faces, _, _ = measure.marching_cubes(phi, level=0.0, spacing=(g.h,) * 3)
    v, f = verts + g.lo - 2 * g.h, faces.astype(np.int32)

    v, f = _largest_piece(v, f)
    v = geo.smooth(v, f, iterations=smooth_iter)
    v, f = geo.simplify_manifold(v, f, tolerance)
    v, f = _largest_piece(v, f)  # simplification can pinch off slivers
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        f = f[:, ::-1].copy()
    return v, f


def _push_out(deep, parts: list, edge_dist: np.ndarray, g: _Grid, margin: float, rounds: int = 2):
    """Move the deep surface's vertices that lie inside a muscle or bone, or closer to one
    than ``margin``, outwards along their normals until they are ``margin`` outside (the
    voxel contour strays up to a voxel into the structures; the traversal needs the fat
    to end on the muscle, not in it). Distances are exact (nearest triangle); a point the
    nearest triangle's normal puts inside is confirmed by a containment test against that
    structure (the skull's facets, for one, do not all face out). Returns the surface and
    each vertex's distance to the nearest muscle or bone (its gap)."""
    import trimesh
    from scipy.spatial import cKDTree

    v, f = deep
    v = v.copy()
    owner = np.concatenate([np.full(len(s.faces), k) for k, s in enumerate(parts)])
    tris = np.concatenate([s.vertices[s.faces].astype(np.float32) for s in parts])
    cen = tris.mean(axis=1)
    near = g.sample(edge_dist, cen, order=0) < 16.0  # only the outer layer can be nearest
    tris, cen, owner = tris[near], cen[near], owner[near]
    tree = cKDTree(cen)
    fn = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    meshes: dict[int, trimesh.Trimesh] = {}
    K = 8

    def signed(p):
        _, cand = tree.query(p, k=K, workers=-1)
        pp = np.repeat(p, K, axis=0)
        cp = trimesh.triangles.closest_point(tris[cand.ravel()].astype(np.float64), pp)
        diff = (pp - cp).reshape(-1, K, 3)
        dist = np.linalg.norm(diff, axis=2)
        j = np.argmin(dist, axis=1)
        rows = np.arange(len(p))
        best = cand[rows, j]
        out = np.einsum("ij,ij->i", diff[rows, j], fn[best]) >= 0
        for k in np.unique(owner[best[~out]]):
            sel = np.flatnonzero(~out & (owner[best] == k))
            if k not in meshes:
                meshes[k] = trimesh.Trimesh(parts[k].vertices, parts[k].faces, process=False)
            out[sel] = ~meshes[k].contains(p[sel])
        return dist[rows, j] * np.where(out, 1.0, -1.0)

    for _ in range(rounds):
        # vertices and face centres (a muscle can bulge between the vertices)
        sd = signed(v)
        sdf = signed(v[f].mean(axis=1))
        need = np.maximum(margin - sd, 0.0)
        np.maximum.at(need, f.ravel(), np.repeat(np.maximum(margin - sdf, 0.0), 3))
        # at most a voxel (the contour strays no further)
        move = np.minimum(need, g.h)
        if not (move > 1e-3).any():
            break
        v += move[:, None] * trimesh.Trimesh(v, f, process=False).vertex_normals
    return (v, f), signed(v)


def _snap_to_level(surface, tree, level_at, rounds: int = 2):
    """Move each vertex of a contoured surface along its normal onto the level it was
    contoured at (``level_at(v)``: mm from the deep fascia, ``tree``: dense points on
    it). The voxel field is a closest-point transform that overestimates distances by
    up to a millimetre; the exact distance of each vertex corrects it."""
    import trimesh

    v, f = surface
    v = v.copy()
    for _ in range(rounds):
        d, _ = tree.query(v, workers=-1)
        n = trimesh.Trimesh(v, f, process=False).vertex_normals
        v += np.clip(level_at(v) - d, -3.0, 3.0)[:, None] * n
    return v, f


def _surface_points(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    from .voxel import surface_samples

    return surface_samples(v, f, SAMPLE_MM)


def _edge_transform(g: _Grid, solid: np.ndarray):
    """The solid's boundary voxels, and every voxel's distance to the nearest of them and
    that voxel's index."""
    from scipy import ndimage

    edge = solid & ~ndimage.binary_erosion(solid)
    dist, idx = ndimage.distance_transform_edt(~edge, sampling=g.h, return_indices=True)
    return edge, dist.astype(np.float32), idx


def _distance_outside(g: _Grid, solid: np.ndarray, edt, tree, surface_pts: np.ndarray, vertices: np.ndarray,
                      band: float, vertex_values: np.ndarray):
    """Distance to the solid's surface mesh (``surface_pts``: dense points on it, in
    ``tree``), positive outside, within ``band`` of it (``band`` beyond), and
    ``vertex_values`` carried from the mesh's nearest vertex. A closest-point transform:
    each boundary voxel gets its nearest point on the mesh, and every voxel the nearest
    boundary voxel's point (within a millimetre at these distances; querying every voxel
    against the mesh took minutes). The contours are snapped to exact distances after."""
    from scipy.spatial import cKDTree

    edge, dist, idx = edt
    eidx = np.nonzero(edge)
    ec = g.centres(eidx)
    _, k = tree.query(ec, workers=-1)
    _, kv = cKDTree(vertices).query(ec, workers=-1)
    cp = np.zeros((*g.shape, 3), np.float32)
    cp[eidx] = surface_pts[k]
    val = np.zeros(g.shape, np.float32)
    val[eidx] = vertex_values[kv]
    sd = np.full(g.shape, band, np.float32)
    values = np.zeros(g.shape, np.float32)
    near = np.nonzero(dist < band + 2 * g.h)
    src = (idx[0][near], idx[1][near], idx[2][near])
    d = np.linalg.norm(g.centres(near) - cp[src], axis=1)
    sd[near] = np.where(solid[near], -d, d)
    values[near] = val[src]
    sd[solid & (dist >= band + 2 * g.h)] = -band
    return sd, values


def _surface_sites(g: _Grid, solid: np.ndarray, part: np.ndarray, rays) -> list[tuple[str, int, np.ndarray]]:
    """Where each anchor ray leaves the solid for good (the first exit followed by 40 mm
    outside), with the body part of that place."""
    out = []
    step = np.arange(0.0, 400.0, 1.0)
    for name, part_name, start, d in rays:
        p = start + step[:, None] * d
        ijk = g.index(p)
        ok = np.all((ijk >= 0) & (ijk < np.array(g.shape)), axis=1)
        ins = np.zeros(len(p), bool)
        ins[ok] = solid[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]]
        site = p[0]
        for k in range(1, len(p) - 40):
            if ins[k - 1] and not ins[k: k + 40].any():
                site = p[k]
                break
        out.append((name, _PARTS.index(part_name) + 1, site))
    return out


def _kernel(pts, ppart, apos, apart, values) -> np.ndarray:
    """Gaussian kernel average of the anchor ``values`` at ``pts``, each point over the
    anchors of its own body part (all anchors where its part has none)."""
    acc = np.zeros((len(pts), values.shape[1]), np.float64)
    for k in np.unique(ppart):
        sel = np.flatnonzero(ppart == k)
        use = np.flatnonzero(apart == k)
        if not len(use):
            use = np.arange(len(apos))
        for c0 in range(0, len(sel), 200_000):
            s = sel[c0: c0 + 200_000]
            d2 = ((pts[s, None, :] - apos[None, use, :]) ** 2).sum(axis=2)
            w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2 * SIGMA_MM**2))
            acc[s] = (w @ values[use]) / w.sum(axis=1, keepdims=True)
    return acc


def _thickness_fields(g: _Grid, sites, band_idx, part: np.ndarray) -> dict[str, np.ndarray]:
    """Fat (per habitus) and skin thickness on the grid: Gaussian kernel averages of the
    anchor values, each part over its own anchors, blurred across the seams. The values
    the kernel averages are corrected a few times so that the field takes each anchor's
    published value at the anchor itself (a plain average pulls it toward its
    neighbours')."""
    from scipy import ndimage

    target = np.array([[*ANCHORS[n].fat, ANCHORS[n].skin] for n, _, _ in sites])  # (A, 4)
    apart = np.array([k for _, k, _ in sites])
    apos = np.array([p for _, _, p in sites])
    values = target.copy()
    for _ in range(4):
        values = np.maximum(values + target - _kernel(apos, apart, apos, apart, values), 0.5 * target)
    acc = _kernel(g.centres(band_idx), part[band_idx], apos, apart, values)
    fields = {}
    inband = np.zeros(g.shape, np.float32)
    inband[band_idx] = 1.0
    sig = SEAM_BLUR_MM / g.h
    norm = ndimage.gaussian_filter(inband, sig)
    for j, key in enumerate((*HABITUS, "skin")):
        f = np.zeros(g.shape, np.float32)
        f[band_idx] = acc[:, j]
        f = ndimage.gaussian_filter(f, sig) / np.maximum(norm, 1e-6)
        fields[key] = f
    return fields


def _offset_inwards(v: np.ndarray, f: np.ndarray, mm: np.ndarray) -> np.ndarray:
    """The surface moved ``mm`` inwards along its vertex normals, each vertex's step
    lengthened by the mean cosine between its normal and its faces' normals, so the
    layer is ``mm`` thick across the faces too, not only at the vertices."""
    import trimesh

    m = trimesh.Trimesh(v, f, process=False)  # outward: faces are oriented
    n = m.vertex_normals
    cos = np.zeros(len(v))
    cnt = np.zeros(len(v))
    dots = np.einsum("fkj,fj->fk", n[f], m.face_normals)
    np.add.at(cos, f.ravel(), dots.ravel())
    np.add.at(cnt, f.ravel(), 1.0)
    cos = np.clip(cos / np.maximum(cnt, 1), 0.7, 1.0)
    return v - (mm / cos)[:, None] * n


def _shell(outer, inner) -> tuple[np.ndarray, np.ndarray]:
    (vo, fo), (vi, fi) = outer, inner
    return np.vstack([vo, vi]), np.vstack([fo, fi[:, ::-1] + len(vo)]).astype(np.int32)


def add_skin(atlas: Atlas, progress=lambda m, f: None) -> None:
    """Build skin and subcutaneous shells for every habitus and add them to the atlas."""
    import trimesh
    from scipy import ndimage

    fat_max = max(max(a.fat) for a in ANCHORS.values())
    skin_max = max(a.skin for a in ANCHORS.values())
    reach = fat_max + skin_max + 2 * VOXEL_MM
    progress("skin: muscle and bone mass", 0.0)
    g, mass, part = _mass(atlas, margin=reach + 4 * VOXEL_MM)
    progress("skin: deep fascia", 0.25)
    solid = _fascia(g, mass, part)
    del mass
    # the mask's boundary lies up to a voxel outside the surfaces it was rasterised from
    # (a voxel is set when a surface passes anywhere through it), and the contour strays
    # inside in places: vertices within DEEP_GAP_MM of a muscle or bone are pushed out
    deep = _contour(ndimage.gaussian_filter(0.5 - solid.astype(np.float32), 0.8), g, DEEP_SIMPLIFY_MM)
    edt = _edge_transform(g, solid)
    deep, gap = _push_out(deep, [s for s in atlas if s.kind not in ("skin", "subcutaneous")], edt[1], g, DEEP_GAP_MM)
    progress("skin: distances", 0.4)
    from scipy.spatial import cKDTree

    deep_pts = _surface_points(*deep)
    deep_tree = cKDTree(deep_pts)
    sd, gap = _distance_outside(g, solid, edt, deep_tree, deep_pts, deep[0], reach, gap)
    del edt
    # the part of the gap between the deep fascia and the muscle counted as fat (the skin is
    # that much nearer the fascia), up to GAP_COMP_MM: none since the fill grid names it
    gap = np.clip(ndimage.gaussian_filter(gap, 1.5), 0.0, GAP_COMP_MM)
    band = np.nonzero((sd > -2 * g.h) & (sd < reach))
    sites = _surface_sites(g, solid, part, anchor_rays(atlas))
    fields = _thickness_fields(g, sites, band, part)
    # the corrected kernel can over- or undershoot between anchors: keep to their range
    skin_f = np.clip(fields["skin"], SKIN_RANGE_MM[0], SKIN_RANGE_MM[1])
    for i, h in enumerate(HABITUS):
        progress(f"skin: {h} build", 0.5 + 0.16 * i)
        top = max(a.fat[i] for a in ANCHORS.values())
        t = np.maximum(np.minimum(fields[h], top) - gap, FAT_MIN_MM)
        phi = sd - (t + skin_f)
        inside = phi < 0
        phi[~_outside(inside) & ~inside] = -0.5 * g.h  # enclosed pockets are body
        level = t + skin_f
        out_s = _snap_to_level(_contour(phi, g, SIMPLIFY_MM), deep_tree, lambda p, lv=level: g.sample(lv, p))
        vo, fo = out_s
        in_s = (_offset_inwards(vo, fo, g.sample(skin_f, vo)), fo.copy())
        sv, sf = _shell(out_s, in_s)
        fv, ff = _shell(in_s, deep)
        fat_at = {name: float(ANCHORS[name].fat[i]) for name in ANCHORS}
        skin_at = {name: float(ANCHORS[name].skin) for name in ANCHORS}
        meta = {"habitus": h, "fat_mm": fat_at, "skin_mm": skin_at}
        atlas.add(Structure(_variant_id("skin", h), f"skin ({h} build)", "skin", "midline", "whole body", sv, sf,
                            source="imssim (offset of the deep fascia by published skin and fat thickness)",
                            meta=dict(meta)))
        atlas.add(Structure(_variant_id("subcutaneous", h), f"subcutaneous fat ({h} build)", "subcutaneous",
                            "midline", "whole body", fv, ff,
                            source="imssim (offset of the deep fascia by published skin and fat thickness)",
                            meta=dict(meta, deep_surface="fascia")))
    atlas.meta["skin_sites"] = [{"site": n, "part": _PARTS[k - 1], "xyz": [round(float(x), 1) for x in p]}
                                for n, k, p in sites]


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
