"""Posture corrections to the myo-sim skeleton and muscles, before anything is built on them.

myo-sim is a musculoskeletal model for simulation, not an anatomy atlas: in its rest pose
two things sit too far from the chest wall for needling depths to come out right over the
upper back (measured in docs/atlas.md):

- the scapulae: the medial border stands ~15-20 mm behind the ribs (in a person it lies
  ~8-10 mm off them, with serratus anterior and subscapularis between);
- the upper thoracic erector spinae (unions of fibre spindles) stand 10-15 mm proud of the
  ribs, where the real muscles are thin.

Both are corrected by smooth maps that move vertices along y (posterior) only and are
monotonic in y, so every mesh stays closed and does not fold. The published depths this
serves: skin-to-muscle 1.2 +/- 0.2 cm and skin-to-rib 2.1 +/- 0.4 cm in the rhomboid region
at normal BMI (Ann Rehabil Med 2014;38:72).
"""

from __future__ import annotations

import numpy as np

from ..atlas import Atlas

#: myo-sim's thoracic erector spinae (unions of fibre spindles) stand 10-15 mm proud of the
#: ribs in the upper thorax, where the real muscles are thin; there they are flattened
#: towards their deep surface by this factor (1 below T10, blending in from T10 to T7).
ERECTOR_FLATTEN = 0.5
ERECTOR_THORACIC = ("longissimus_thoracic_part_", "iliocostalis_thoracic_part_")


def flatten_upper_thoracic_erector(atlas: Atlas) -> None:
    """Thin the upper thoracic erector spinae towards their deep surface (in place).

    Each vertex moves along y only: ``y' = deep(z) + f(z) * (y - deep(z))`` where
    ``deep(z)`` is the muscle's deepest y in a 6 mm band around z (smoothed) and ``f`` is
    ERECTOR_FLATTEN from T1 to T7, 1 from T10 down. The map is monotonic in y at every z,
    so the mesh stays closed and does not fold. Published depths this serves: skin-to-rib
    2.1 +/- 0.4 cm in the rhomboid region (Ann Rehabil Med 2014;38:72)."""
    from scipy import ndimage

    if not all(f"vertebra_T{k}" in atlas for k in (7, 10)):
        return
    z7 = atlas.get("vertebra_T7").centroid[2]
    z10 = atlas.get("vertebra_T10").centroid[2]
    for s in list(atlas):
        if s.kind != "muscle" or not s.id.startswith(ERECTOR_THORACIC):
            continue
        v = s.vertices.copy()
        band = 6.0
        z0 = v[:, 2].min()
        bins = np.floor((v[:, 2] - z0) / band).astype(int)
        deep = np.full(bins.max() + 1, np.inf)
        np.minimum.at(deep, bins, v[:, 1])
        ok = np.isfinite(deep)
        centres = z0 + (np.arange(len(deep)) + 0.5) * band
        deep = np.interp(centres, centres[ok], deep[ok])
        deep = ndimage.minimum_filter1d(deep, 3)  # never above any vertex of its band
        d = np.interp(v[:, 2], centres, deep)
        f = 1.0 - (1.0 - ERECTOR_FLATTEN) * np.clip((v[:, 2] - z10) / (z7 - z10), 0.0, 1.0)
        v[:, 1] = d + f * (v[:, 1] - d)
        s.vertices = v
        s.meta["flattened_above_T7"] = ERECTOR_FLATTEN


#: how far (mm) the scapula's medial part moves towards the ribs; the glenoid stays put
SCAPULA_SETTLE_MM = 10.0
#: structures carried with the scapula (the muscles on its surfaces), per side suffix
SCAPULAR = ("scapula_", "infraspinatus_", "supraspinatus_", "subscapularis_", "teres_major_", "teres_minor_")


def settle_scapulae(atlas: Atlas) -> None:
    """Move each scapula's medial part (and the muscles on it) anteriorly by up to
    SCAPULA_SETTLE_MM, blending to no movement at the glenoid: ``y' = y - d * w(x)``,
    ``w`` rising linearly from 0 at the glenoid to 1 at 60 % of the way to the medial
    border. A translation in y at every x, so nothing folds."""
    for sfx in ("r", "l"):
        sid = f"scapula_{sfx}"
        if sid not in atlas:
            continue
        v = atlas.get(sid).vertices
        lat = np.sign(v[:, 0].mean()) or 1.0
        x_glen = lat * np.abs(v[:, 0]).max()  # lateral-most point: the glenoid / acromion
        x_med = lat * np.abs(v[:, 0]).min()  # medial border
        span = 0.6 * abs(x_glen - x_med)
        for s in atlas:
            if not (s.id.startswith(SCAPULAR) and s.id.endswith("_" + sfx)):
                continue
            w = np.clip(np.abs(s.vertices[:, 0] - x_glen) / span, 0.0, 1.0)
            nv = s.vertices.copy()
            nv[:, 1] -= SCAPULA_SETTLE_MM * w
            s.vertices = nv
            s.meta["posture"] = f"medial part moved {SCAPULA_SETTLE_MM:g} mm anteriorly (imssim)"


def correct(atlas: Atlas) -> None:
    settle_scapulae(atlas)
    flatten_upper_thoracic_erector(atlas)
