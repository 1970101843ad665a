"""The built-in atlas: contents, innervation, anatomical sanity, watertightness, cache."""

from __future__ import annotations

import numpy as np
import pytest

from imssim.core.model.atlas import Atlas, AtlasLookupError
from imssim.core.model.build.geometry import is_watertight

IMS_MUSCLES = [
    # lumbar spine
    "multifidus_L1_r", "multifidus_L2_r", "multifidus_L3_r", "multifidus_L4_r", "multifidus_L5_r",
    "multifidus_L5_l", "longissimus_thoracic_part_r", "iliocostalis_lumbar_part_r",
    "quadratus_lumborum_r", "psoas_major_r",
    # legs
    "gluteus_maximus_r", "gluteus_medius_r", "gluteus_minimus_r", "piriformis_r", "tensor_fasciae_latae_r",
    "biceps_femoris_long_head_r", "semitendinosus_r", "semimembranosus_r", "vastus_lateralis_r",
    "tibialis_anterior_r", "fibularis_longus_r", "gastrocnemius_lateral_head_r", "gastrocnemius_medial_head_r",
    "soleus_r", "extensor_hallucis_longus_r",
    # arms
    "deltoid_r", "supraspinatus_r", "infraspinatus_r", "teres_minor_r", "teres_major_r", "latissimus_dorsi_r",
    "extensor_carpi_radialis_brevis_r", "supinator_r",
]


@pytest.mark.parametrize("sid", IMS_MUSCLES)
def test_ims_target_muscles_exist_with_innervation(atlas, sid):
    s = atlas.get(sid)
    assert s.kind == "muscle"
    assert s.innervation is not None and s.innervation.nerve
    assert s.innervation.roots and all(r[0] in "CTLS" for r in s.innervation.roots)
    assert s.innervation.source  # every fact cites a source
    assert s.side in ("left", "right")


def test_known_innervation_facts(atlas):
    gmed = atlas.get("right gluteus medius")
    assert gmed.innervation.nerve == "superior gluteal"
    assert gmed.innervation.roots == ("L4", "L5", "S1") and gmed.innervation.dominant == "L5"
    assert atlas.get("tibialis_anterior_r").innervation.dominant == "L4"
    assert set(atlas.get("soleus_l").innervation.roots) == {"S1", "S2"}
    mf = atlas.get("right multifidus L5")
    assert mf.level == "L5" and mf.segments == ["L5"] and mf.innervation.roots == ("L5",)


def test_lookup_by_name_alias_and_suggestions(atlas):
    assert atlas.get("Right Gluteus Medius").id == "gluteus_medius_r"
    assert atlas.get("right peroneus longus").id == "fibularis_longus_r"
    with pytest.raises(AtlasLookupError) as e:
        atlas.get("right gluteus medus")
    assert "gluteus_medius_r" in str(e.value)


def test_myotome_lookup(atlas):
    l5 = {s.muscle for s in atlas.muscles_for_segment("L5")}
    assert {"gluteus medius", "multifidus", "tibialis anterior", "extensor hallucis longus"} <= l5
    assert "vastus lateralis" not in {s.muscle for s in atlas.muscles_for_segment("S1")}


def test_vertebrae_separate_and_ordered(atlas):
    levels = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    zs = []
    for lv in levels:
        v = atlas.get(f"vertebra_{lv}")
        assert v.kind == "bone" and v.level == lv and v.side == "midline"
        zs.append(v.centroid[2])
    assert all(a > b for a, b in zip(zs, zs[1:])), "vertebrae must descend from T1 to L5"
    assert atlas.get("sacrum").centroid[2] < zs[-1]
    # spinous tips lie posterior to their bodies and near the midline
    for lv in levels:
        tip = atlas.landmark(f"{lv}_spinous").xyz
        assert abs(tip[0]) < 10
        assert tip[1] > atlas.get(f"vertebra_{lv}").centroid[1]


def _lumbar_band(atlas, sid, level="L4"):
    z = atlas.landmark(f"{level}_spinous").xyz[2]
    v = atlas.get(sid).vertices
    band = v[np.abs(v[:, 2] - z) < 15]
    assert len(band) > 0, f"{sid} has no vertices near {level}"
    return band


def test_paraspinal_medial_to_lateral_order(atlas):
    """At L3, multifidus and longissimus lie medial to iliocostalis, and multifidus within
    the paraspinal gutter (BodyParts3D's longissimus sends medial tendon slips toward the
    spinous processes, so its own edge is no guide)."""
    for sfx in ("r", "l"):
        mid = lambda sid: float(np.median(np.abs(_lumbar_band(atlas, sid)[:, 0])))
        mf, lt, il = mid(f"multifidus_L3_{sfx}"), mid(f"longissimus_thoracic_part_{sfx}"), mid(f"iliocostalis_lumbar_part_{sfx}")
        assert mf < il and lt < il and mf < 35, (sfx, mf, lt, il)


def _min_width(vertices: np.ndarray, centre: np.ndarray, axis: np.ndarray, slab: float = 6.0) -> float:
    """Smallest caliper width of the mesh's cross-section through ``centre`` normal to ``axis``."""
    axis = axis / np.linalg.norm(axis)
    d = (vertices - centre) @ axis
    sec = vertices[np.abs(d) < slab]
    u = np.cross(axis, [0, 0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0, 0])
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    p = np.column_stack([(sec - centre) @ u, (sec - centre) @ w])
    widths = []
    for a in np.linspace(0, np.pi, 36, endpoint=False):
        proj = p @ np.array([np.cos(a), np.sin(a)])
        widths.append(proj.max() - proj.min())
    return float(min(widths))


def _belly_thickness(s) -> float:
    """Local thickness (shape-diameter style): from surface points, the distance along the
    inward normal to the opposite surface; the 80th percentile measures the belly, not the
    tapering tendon ends."""
    import trimesh

    m = trimesh.Trimesh(s.vertices, s.faces, process=False)
    rng = np.random.default_rng(0)
    pts, fidx = trimesh.sample.sample_surface(m, 600, seed=rng)
    dirs = -m.face_normals[fidx]
    locs, ray_idx, _ = m.ray.intersects_location(pts + dirs * 0.05, dirs, multiple_hits=False)
    d = np.linalg.norm(locs - pts[ray_idx], axis=1)
    return float(np.percentile(d, 80))


@pytest.mark.parametrize(
    "sid,lo,hi",
    [
        ("tibialis_anterior_r", 12, 24),  # ~15-20 mm
        ("gluteus_medius_r", 18, 36),  # ~20-30 mm
        ("soleus_r", 12, 35),
        ("vastus_lateralis_r", 15, 40),
        ("piriformis_r", 8, 25),
    ],
)
def test_muscle_thickness_plausible(atlas, sid, lo, hi):
    t = _belly_thickness(atlas.get(sid))
    assert lo <= t <= hi, f"{sid} belly thickness {t:.1f} mm outside [{lo}, {hi}]"


def test_lumbar_multifidus_column_thickness(atlas):
    """The multifidus column beside L4-L5 is ~20-30 mm across (all fascicles together)."""
    z = atlas.landmark("L5_spinous").xyz[2]
    pts = np.vstack([atlas.get(f"multifidus_L{k}_r").vertices for k in range(1, 6)])
    band = pts[np.abs(pts[:, 2] - z) < 8]
    width_ml = np.ptp(band[:, 0])
    depth_ap = np.ptp(band[:, 1])
    assert 14 <= width_ml <= 40, width_ml
    assert 14 <= depth_ap <= 45, depth_ap


def test_every_muscle_mesh_is_watertight(atlas):
    bad = [s.id for s in atlas.find(kind="muscle") if not is_watertight(s.vertices, s.faces)]
    assert bad == []
    for s in atlas.find(kind="muscle"):
        assert s.volume > 0, f"{s.id} has inward-facing or empty volume"


def test_landmarks_present_and_on_their_bones(atlas):
    needed = ["L5_spinous", "L1_spinous", "T4_spinous", "T12_spinous", "C7_spinous", "psis_r", "psis_l",
              "iliac_crest_r", "iliac_crest_l", "acromion_r", "inferior_angle_r", "greater_trochanter_r",
              "fibular_head_r", "lateral_epicondyle_r"]
    for name in needed:
        lm = atlas.landmark(name)
        if lm.structure and lm.structure in atlas.structures:
            v = atlas.get(lm.structure).vertices
            assert np.min(np.linalg.norm(v - lm.xyz, axis=1)) < 0.01  # cache stores float32
    # left-right symmetry of paired landmarks and sensible anatomy
    r, l = atlas.landmark("psis_r").xyz, atlas.landmark("psis_l").xyz
    assert r[0] < 0 < l[0] and abs(r[0] + l[0]) < 10
    assert atlas.landmark("iliac_crest_r").xyz[2] > atlas.landmark("psis_r").xyz[2]
    assert atlas.landmark("L4_spinous").xyz[2] < atlas.landmark("iliac_crest_r").xyz[2] + 40


def test_frame_is_lps_mm(atlas):
    lo, hi = atlas.bounds
    assert 1500 < hi[2] - lo[2] < 1900  # a standing adult, in mm
    # patient's left is +X: the left femur is at +x
    assert atlas.get("femur_l").centroid[0] > 0 > atlas.get("femur_r").centroid[0]
    # posterior is +Y: spinous processes behind vertebral bodies, gluteus maximus behind the femur
    assert atlas.get("gluteus_maximus_r").centroid[1] > atlas.get("femur_r").centroid[1]
    # superior is +Z
    assert atlas.get("skull").centroid[2] > atlas.get("sacrum").centroid[2]


def test_save_load_roundtrip(atlas, tmp_path):
    p = atlas.save(tmp_path / "a.npz")
    b = Atlas.load(p)
    assert set(b.structures) == set(atlas.structures)
    s, t = atlas.get("gluteus_medius_r"), b.get("gluteus_medius_r")
    assert np.allclose(s.vertices, t.vertices, atol=1e-3)
    assert (s.faces == t.faces).all()
    assert t.innervation == s.innervation
    assert b.landmark("L5_spinous").position == pytest.approx(atlas.landmark("L5_spinous").position, abs=1e-6)


def test_muscles_stay_on_their_own_side(atlas):
    """+x is the patient's left: no left or right muscle reaches across the midline."""
    for s in atlas:
        if s.kind != "muscle" or s.side not in ("left", "right"):
            continue
        own = s.vertices[:, 0] * (1.0 if s.side == "left" else -1.0)
        assert own.min() > -3.0, (s.id, own.min())
