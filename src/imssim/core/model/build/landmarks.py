"""Named bony landmarks, found geometrically on the atlas's own bones.

Each landmark is a point on a bone surface (mm, LPS) chosen by a simple, documented rule
(e.g. the spinous-process tip is the most posterior vertex of the vertebra near the
midline). The rules only use the frame's axes, so they work on any atlas in imssim's
frame, including an imported one after alignment.
"""

from __future__ import annotations

import numpy as np

from ..atlas import Atlas, Landmark

POSTERIOR = np.array([0.0, 1.0, 0.0])
SUPERIOR = np.array([0.0, 0.0, 1.0])
LEFT = np.array([1.0, 0.0, 0.0])


def _extreme(v: np.ndarray, direction: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    pts = v if mask is None else v[mask]
    if len(pts) == 0:
        pts = v
    return pts[np.argmax(pts @ direction)]


def _lateral(side: str) -> np.ndarray:
    return LEFT if side == "left" else -LEFT


#: Bones that older atlases held merged and BodyParts3D holds one by one.
GROUPS = {"ribcage": ("rib_",), "cervical_spine": tuple(f"vertebra_C{k}" for k in range(1, 8))}


def group_vertices(atlas: Atlas, gid: str) -> np.ndarray | None:
    """Vertices of a merged bone (``ribcage``, ``cervical_spine``) or of its parts."""
    if gid in atlas:
        return atlas.get(gid).vertices
    pre = GROUPS.get(gid, ())
    parts = [s.vertices for s in atlas.find(kind="bone") if s.id.startswith(pre)]
    return np.vstack(parts) if parts else None


def has_group(atlas: Atlas, gid: str) -> bool:
    return group_vertices(atlas, gid) is not None


def lamina_point(v: np.ndarray, side: str, midline_x: float = 0.0, band: tuple[float, float] = (10.0, 18.0)) -> np.ndarray:
    """The posterior surface of the lamina: the most posterior vertex ``band`` mm lateral
    within the lower 70% of the vertebra's height (the top holds the superior articular and
    transverse processes, where the ribs articulate in the thorax)."""
    d = (v[:, 0] - midline_x) * (1.0 if side == "left" else -1.0)
    z0, z1 = v[:, 2].min(), v[:, 2].max()
    sel = (d >= band[0]) & (d <= band[1]) & (v[:, 2] < z0 + 0.7 * (z1 - z0))
    return _extreme(v, POSTERIOR, sel if sel.any() else None)


def spinous_tip(v: np.ndarray, midline_x: float = 0.0, half_width: float = 8.0) -> np.ndarray:
    mask = np.abs(v[:, 0] - midline_x) < half_width
    return _extreme(v, POSTERIOR, mask)


def cervical_levels(v: np.ndarray) -> dict[str, np.ndarray]:
    """Approximate C1..C7 spinous tips on the merged cervical mesh.

    The mesh's vertical extent is split into seven equal bands (C1 top, C7 bottom) and the
    most posterior midline vertex of each band is taken; C1 has no real spinous process,
    so its point is the posterior tubercle. Good to a few mm for needle placement.
    """
    z = v[:, 2]
    lo, hi = z.min(), z.max()
    edges = np.linspace(hi, lo, 8)
    out = {}
    for k in range(7):
        band = (z <= edges[k]) & (z >= edges[k + 1])
        out[f"C{k + 1}"] = spinous_tip(v[band] if band.any() else v, midline_x=float(np.median(v[:, 0])))
    return out


def find_landmarks(atlas: Atlas) -> list[Landmark]:
    out: list[Landmark] = []

    def add(lid: str, name: str, p: np.ndarray, structure: str, desc: str) -> None:
        out.append(Landmark(lid, name, tuple(float(x) for x in p), structure, desc))

    midline_x = 0.0
    if "sacrum" in atlas:
        midline_x = float(atlas.get("sacrum").vertices[:, 0].mean())
    for s in atlas.find(kind="bone"):
        if s.id.startswith("vertebra_"):
            lvl = s.level
            add(f"{lvl}_spinous", f"{lvl} spinous process", spinous_tip(s.vertices, midline_x), s.id,
                "tip of the spinous process: most posterior vertex within 8 mm of the midline")
            for side, sfx in (("right", "r"), ("left", "l")):
                add(f"{lvl}_lamina_{sfx}", f"{lvl} lamina ({side})", lamina_point(s.vertices, side, midline_x),
                    s.id, "posterior surface of the lamina: the most posterior vertex 10-18 mm from the midline, "
                    "below the articular and transverse processes")
    if "cervical_spine" in atlas:
        cs = atlas.get("cervical_spine")
        for lvl, p in cervical_levels(cs.vertices).items():
            add(f"{lvl}_spinous", f"{lvl} spinous process", p, cs.id,
                "cervical level from equal vertical bands of the merged cervical mesh (approximate)")
    if "sacrum" in atlas:
        s = atlas.get("sacrum")
        add("S2_spinous", "median sacral crest (S2)", spinous_tip(s.vertices, midline_x), s.id,
            "most posterior midline vertex of the sacrum")
    for side, sfx in (("right", "r"), ("left", "l")):
        lat = _lateral(side)
        hb = f"hip_bone_{sfx}"
        if hb in atlas:
            v = atlas.get(hb).vertices
            zc = np.percentile(v[:, 2], 60)
            add(f"psis_{sfx}", f"{side} posterior superior iliac spine", _extreme(v, POSTERIOR, v[:, 2] > zc), hb,
                "most posterior vertex of the upper 40% of the hip bone")
            add(f"iliac_crest_{sfx}", f"{side} iliac crest top", _extreme(v, SUPERIOR), hb,
                "highest vertex of the hip bone")
            add(f"asis_{sfx}", f"{side} anterior superior iliac spine", _extreme(v, -POSTERIOR, v[:, 2] > zc), hb,
                "most anterior vertex of the upper 40% of the hip bone")
            lo = np.percentile(v[:, 2], 15)
            add(f"ischial_tuberosity_{sfx}", f"{side} ischial tuberosity", _extreme(v, -SUPERIOR + 0.3 * POSTERIOR, v[:, 2] < lo), hb,
                "lowest, most posterior vertex of the hip bone")
        sc = f"scapula_{sfx}"
        if sc in atlas:
            v = atlas.get(sc).vertices
            add(f"acromion_{sfx}", f"{side} acromion", _extreme(v, lat + 0.5 * SUPERIOR), sc,
                "most lateral-superior vertex of the scapula")
            add(f"inferior_angle_{sfx}", f"{side} inferior angle of the scapula", _extreme(v, -SUPERIOR), sc,
                "lowest vertex of the scapula")
            zc = np.percentile(v[:, 2], 50)
            add(f"scapula_medial_border_{sfx}", f"{side} medial border of the scapula (mid)",
                _extreme(v, -lat, (v[:, 2] > zc - 15) & (v[:, 2] < zc + 15)), sc,
                "most medial vertex of the scapula at mid height")
            zs = np.percentile(v[:, 2], 80)
            add(f"scapular_spine_root_{sfx}", f"{side} root of the scapular spine",
                _extreme(v, -lat + POSTERIOR, v[:, 2] > zs), sc,
                "most medial-posterior vertex of the upper fifth of the scapula")
        fe = f"femur_{sfx}"
        if fe in atlas:
            v = atlas.get(fe).vertices
            top = v[:, 2] > np.percentile(v[:, 2], 85)
            add(f"greater_trochanter_{sfx}", f"{side} greater trochanter", _extreme(v, lat, top), fe,
                "most lateral vertex of the upper 15% of the femur")
        fi = f"fibula_{sfx}"
        if fi in atlas:
            v = atlas.get(fi).vertices
            add(f"fibular_head_{sfx}", f"{side} fibular head", _extreme(v, SUPERIOR), fi, "highest vertex of the fibula")
            add(f"lateral_malleolus_{sfx}", f"{side} lateral malleolus", _extreme(v, -SUPERIOR), fi, "lowest vertex of the fibula")
        ti = f"tibia_{sfx}"
        if ti in atlas:
            v = atlas.get(ti).vertices
            top = v[:, 2] > np.percentile(v[:, 2], 80)
            add(f"tibial_tuberosity_{sfx}", f"{side} tibial tuberosity", _extreme(v, -POSTERIOR, top), ti,
                "most anterior vertex of the upper fifth of the tibia")
        hu = f"humerus_{sfx}"
        if hu in atlas:
            v = atlas.get(hu).vertices
            low = v[:, 2] < np.percentile(v[:, 2], 12)
            add(f"lateral_epicondyle_{sfx}", f"{side} lateral epicondyle", _extreme(v, lat, low), hu,
                "most lateral vertex of the lowest 12% of the humerus")
            add(f"medial_epicondyle_{sfx}", f"{side} medial epicondyle", _extreme(v, -lat, low), hu,
                "most medial vertex of the lowest 12% of the humerus")
    return out
