"""The built-in body on BodyParts3D: real bones per level, closed volumes, and textbook
placements landing where a practitioner expects (issue "A real body")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from imssim.core.model.atlas import VERTEBRAE
from imssim.core.model.build import bodyparts3d as bp
from imssim.core.model.build.geometry import is_watertight
from imssim.core.model.data import meshes_dir
from imssim.core.engines.needle import Placement, unit
from imssim.core.model.data import scenarios_dir
from imssim.core.training.scenario import load_scenario
from imssim.core.training.session import Session

REPO = Path(__file__).resolve().parents[1]
SEG_LEVELS = [f"C{k}" for k in range(4, 8)] + [f"T{k}" for k in range(1, 13)] + [f"L{k}" for k in range(1, 6)]


# --- the shipped data ------------------------------------------------------------------


def test_shipped_body_is_compact_and_attributed():
    folder = meshes_dir() / "bodyparts3d"
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 40e6
    lic = " ".join((folder / "LICENCE.md").read_text().split())
    assert "CC Attribution- Share Alike 2.1 Japan" in lic or "CC Attribution-Share Alike 2.1 Japan" in lic
    assert "Database Center for Life Science" in lic and "CC BY 4.0" in lic
    head = json.loads((folder / "structures.json").read_text())
    import hashlib

    assert hashlib.sha256((folder / "meshes.npz").read_bytes()).hexdigest() == head["meshes_sha256"]


def test_every_structure_is_a_closed_volume(atlas):
    bad = [s.id for s in atlas if not is_watertight(s.vertices, s.faces) or s.volume <= 0]
    assert not bad, f"not closed or inside out: {bad[:10]}"


def test_every_structure_is_a_valid_manifold(atlas):
    import manifold3d as m3d

    bad = []
    for s in atlas:
        if s.kind in ("skin", "subcutaneous"):
            continue  # shells of two surfaces (outer + inverted inner) by design
        man = m3d.Manifold(m3d.Mesh(vert_properties=s.vertices.astype(np.float32), tri_verts=s.faces.astype(np.uint32)))
        if man.status() != m3d.Error.NoError:
            bad.append(s.id)
    assert not bad, f"not manifold: {bad[:10]}"


def test_every_source_muscle_is_a_structure_with_innervation(atlas, shared):
    src = shared / "atlas-bodyparts3d"
    stems = set()
    for f, info in bp.source_files(src):
        if info["kind"] != "muscle":
            continue
        if info["key"] in ("multifidus", "rotatores"):
            stems.add(info["key"])
            continue
        ids = [info["id"]] if info["side"] != "both" else [info["id"] + "_r", info["id"] + "_l"]
        for sid in ids:
            assert sid in atlas.structures, f"{f.name} -> {sid} missing"
            s = atlas.structures[sid]
            assert s.innervation is not None and s.innervation.nerve and s.region, sid
    for stem in stems:
        for sfx in ("r", "l"):
            assert atlas.find(muscle=stem, side={"r": "right", "l": "left"}[sfx]), stem


def test_the_muscles_practitioners_needle_exist(atlas):
    for sid in ("sternocleidomastoid_r", "temporalis_r", "medial_pterygoid_l", "rectus_capitis_posterior_major_r",
                "obliquus_capitis_inferior_l", "splenius_cervicis_r", "semispinalis_cervicis_r", "semispinalis_thoracis_l",
                "pectoralis_minor_r", "pectineus_r", "popliteus_l", "plantaris_r", "internal_intercostal_r",
                "trapezius_upper_r", "trapezius_middle_l", "trapezius_lower_r", "deltoid_r", "pectoralis_major_l",
                "biceps_brachii_r", "triceps_brachii_l", "gastrocnemius_lateral_head_r", "gastrocnemius_medial_head_l",
                "vastus_lateralis_r", "vastus_medialis_l", "vastus_intermedius_r", "rectus_femoris_l",
                "biceps_femoris_long_head_r", "biceps_femoris_short_head_l"):
        s = atlas.get(sid)
        assert s.kind == "muscle" and s.innervation and s.innervation.nerve, sid
        cranial = "CN V" in s.innervation.nerve  # the jaw muscles have no spinal root
        assert bool(s.innervation.roots) != cranial, sid


def test_routes_are_stated_for_muscles_the_source_lacks(atlas):
    assert atlas.get("vastus_lateralis_r").source.startswith("vhm")
    assert atlas.get("deltoid_r").source.startswith("layer")
    assert atlas.get("gluteus_medius_r").source == "BodyParts3D"
    licences = {a.licence for a in atlas.attributions}
    assert {"CC BY-SA 2.1 JP", "CC BY 4.0"} <= licences


# --- bones per level and landmarks -------------------------------------------------------


def test_one_bone_per_vertebra_and_every_rib(atlas):
    for lvl in VERTEBRAE:
        s = atlas.get(f"vertebra_{lvl}")
        assert s.kind == "bone" and s.level == lvl
    for k in range(1, 13):
        for sfx in ("r", "l"):
            assert atlas.get(f"rib_{k}_{sfx}").kind == "bone"
    assert "sacrum" in atlas and "skull" in atlas


def test_spinous_tips_are_spaced_like_a_real_spine(atlas):
    z = {lvl: atlas.landmark(f"{lvl}_spinous").xyz for lvl in VERTEBRAE}
    gaps = {}
    for a, b in zip(VERTEBRAE[1:-1], VERTEBRAE[2:]):
        gaps[(a, b)] = float(np.linalg.norm(z[a] - z[b]))
    cerv = [g for (a, b), g in gaps.items() if a.startswith("C") and b.startswith("C")]
    thor = [g for (a, b), g in gaps.items() if a.startswith("T") and b.startswith("T")]
    lumb = [g for (a, b), g in gaps.items() if a.startswith("L") and b.startswith("L")]
    # this body (BodyParts3D, ~1.64 m) is smaller than the textbook adult: cervical
    # 15-20 mm, thoracic 20-25 mm, lumbar 30-40 mm scaled to its height give these bands
    assert all(9 <= g <= 22 for g in cerv), cerv
    assert all(14 <= g <= 42 for g in thor) and 20 <= float(np.median(thor)) <= 30, thor
    assert all(20 <= g <= 42 for g in lumb), lumb
    assert min(cerv) > 8  # no two levels on top of each other (C5/C6 were 2.5 mm apart)


def test_landmarks_lie_on_their_bones(atlas):
    for lm in atlas.landmarks.values():
        if lm.structure and lm.structure in atlas.structures:
            v = atlas.structures[lm.structure].vertices
            assert np.min(np.linalg.norm(v - lm.xyz, axis=1)) < 1e-6, lm.id


# --- textbook placements ------------------------------------------------------------------


def paraspinal(index, level: str, side: str, lateral: float, depth: float = 90.0):
    """A needle entering ``lateral`` mm beside the spinous process and aimed at the lamina
    of the same vertebra, to bone. Where the lamina lies under the tip (lumbar) that is
    about perpendicular to the skin; where it lies above the tip (the long, sloping
    cervical and thoracic spinous processes) the entry moves halfway up toward it and the
    needle tilts cranially the rest of the way."""
    atlas = index.atlas
    tip = atlas.landmark(f"{level}_spinous").xyz
    lam = atlas.landmark(f"{level}_lamina_{side[0]}").xyz
    rise = max(float(lam[2] - tip[2]), 0.0)
    p = Placement.from_landmark(index, f"{level}_spinous", depth=depth, lateral_mm=lateral, side=side,
                                cranial_mm=rise / 2)
    assert p.on_skin
    entry = np.asarray(p.entry)
    d = unit(lam - entry)
    normal = -np.asarray(p.direction)
    tilt = np.degrees(np.arccos(np.clip(-d @ normal, -1, 1)))
    assert tilt < 45, f"{level} {side}: the lamina is {tilt:.0f} deg off perpendicular"
    return index.query(entry, d, depth), entry, d


def muscle_on_bone(tr, atlas=None) -> str | None:
    """The muscle the tip rests in or on: the scoring's rule (the muscle it left deepest,
    the segmental one where two overlap), and no more than 4 mm above the bone."""
    from imssim.core.training.scoring.base import muscle_above_bone

    if tr.bone_contact is None:
        return tr.structure_at_tip
    if tr.structure_at_tip and tr.structure_at_tip.startswith(("multifidus_", "rotatores_")):
        return tr.structure_at_tip
    got = muscle_above_bone(tr.intervals, tr.depth, atlas)
    iv = [i for i in tr.intervals if i.structure == got]
    if not iv or tr.bone_contact.depth - max(i.exit_depth for i in iv) > 4.0:
        return None
    return got


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("level", SEG_LEVELS)
def test_needle_on_the_lamina_ends_in_that_levels_multifidus(index, level, side):
    for lateral in (15.0, 20.0):
        tr, _e, _d = paraspinal(index, level, side, lateral)
        assert tr.bone_contact is not None, f"{level} {side} {lateral} mm: no bone within 90 mm"
        assert tr.bone_contact.structure == f"vertebra_{level}", (level, side, lateral, tr.bone_contact.structure)
        got = muscle_on_bone(tr, index.atlas)
        # in the thoracic spine the rotatores lie deepest on the lamina, under multifidus;
        # both are supplied by that level's medial branch
        assert got in (f"multifidus_{level}_{side[0]}", f"rotatores_{level}_{side[0]}"), (level, side, lateral, [(iv.structure, round(iv.entry_depth, 1), round(iv.exit_depth, 1)) for iv in tr.intervals])
        assert not tr.breaches


def _case_for(level: str, side: str, atlas):
    text = (scenarios_dir() / "l5-radiculopathy-low-back.yaml").read_text()
    sfx = side[0]
    text = text.replace("multifidus_L5_r", f"multifidus_{level}_{sfx}").replace("segments: [L5]", f"segments: [{level}]")
    text = text.replace("side: right", f"side: {side}").replace("L5_spinous", f"{level}_spinous")
    text = re.sub(r"(?m)^\s+choices: \[L3, L4, L5, S1\]\n\s+answer: 2\n", "    choices: [L3, L4, L5, S1]\n    answer: 2\n", text)
    return load_scenario(None, atlas, text=text)


@pytest.mark.parametrize("level,side", [("C5", "right"), ("T6", "left"), ("L4", "left"), ("L5", "right")])
def test_scoring_credits_the_level_and_calls_the_neighbour_off_by_one(index, level, side):
    case = _case_for(level, side, index.atlas)
    tr, e, d = paraspinal(index, level, side, 17.5)
    s = Session(index.atlas, case, seed=0, index=index)
    s.insert_needle(e, d, tr.depth, length_mm=90)
    r = s.finish()
    assert r.needles[0]["target"] is True, r.needles[0]
    assert r.metric("level_error").details[0]["level_error"] == 0
    i = SEG_LEVELS.index(level)
    nb = SEG_LEVELS[i + 1] if i + 1 < len(SEG_LEVELS) else SEG_LEVELS[i - 1]
    tr, e, d = paraspinal(index, nb, side, 17.5)
    s = Session(index.atlas, case, seed=0, index=index)
    s.insert_needle(e, d, tr.depth, length_mm=90)
    r = s.finish()
    assert r.metric("level_error").details[0]["level_error"] == 1


def test_gluteus_medius_four_cm_below_the_iliac_crest(index):
    for sfx, side in (("r", "right"), ("l", "left")):
        p = Placement.from_landmark(index, f"iliac_crest_{sfx}", depth=35, cranial_mm=-40)
        tr = index.query(p.entry, p.direction, p.depth)
        assert tr.structure_at_tip == f"gluteus_medius_{sfx}", [(iv.structure, round(iv.entry_depth), round(iv.exit_depth)) for iv in tr.intervals]


def test_piriformis_at_its_midpoint(index, atlas):
    """The surface marking: the line from the top of the greater trochanter to the lateral
    border of the sacrum (at 40% of its height, the lower sacroiliac joint); a needle at its
    midpoint, straight in from behind, passes gluteus maximus into piriformis."""
    for sfx, lat in (("r", -1.0), ("l", 1.0)):
        fem = atlas.get(f"femur_{sfx}").vertices
        shaft_x = np.median(fem[fem[:, 2] < fem[:, 2].max() - 120][:, 0])
        out = fem[lat * (fem[:, 0] - shaft_x) > 15]
        gt_top = out[out[:, 2].argmax()]
        sac = atlas.get("sacrum").vertices
        band = sac[np.abs(sac[:, 2] - np.percentile(sac[:, 2], 40)) < 5]
        border = band[np.argmax(lat * band[:, 0])]
        mid = 0.5 * (gt_top + border)
        hit = index.snap_to_skin(mid + np.array([0, 400.0, 0]), np.array([0, -1.0, 0]))
        tr = index.query(hit.point, np.array([0, -1.0, 0]), 120)
        names = [iv.structure for iv in tr.intervals if iv.kind == "muscle"]
        assert names[0] == f"gluteus_maximus_{sfx}" and f"piriformis_{sfx}" in names, names


def test_infraspinatus_in_the_infraspinous_fossa(index, atlas):
    for sfx in ("r", "l"):
        root = atlas.landmark(f"scapular_spine_root_{sfx}").xyz
        ang = atlas.landmark(f"inferior_angle_{sfx}").xyz
        acr = atlas.landmark(f"acromion_{sfx}").xyz
        # a third of the way from the spine's root toward the lateral border, halfway down
        p = root + 0.5 * (ang - root) + 0.25 * (acr - root) * np.array([1, 0, 0])
        hit = index.snap_to_skin(p + np.array([0, 400.0, 0]), np.array([0, -1.0, 0]))
        tr = index.query(hit.point, np.array([0, -1.0, 0]), 80)
        assert muscle_on_bone(tr, index.atlas) == f"infraspinatus_{sfx}", [(iv.structure, round(iv.entry_depth), round(iv.exit_depth)) for iv in tr.intervals]
        assert tr.bone_contact is not None and tr.bone_contact.structure == f"scapula_{sfx}"


def test_vastus_lateralis_mid_thigh(index, atlas):
    for sfx, side, lat in (("r", "right", -1.0), ("l", "left", 1.0)):
        gt = atlas.landmark(f"greater_trochanter_{sfx}").xyz
        fem = atlas.get(f"femur_{sfx}").vertices
        z = 0.5 * (gt[2] + fem[:, 2].min())
        band = fem[np.abs(fem[:, 2] - z) < 5]
        c = band.mean(0)
        hit = index.snap_to_skin(c + np.array([lat * 400.0, 0, 0]), np.array([-lat, 0, 0]))
        tr = index.query(hit.point, np.array([-lat, 0, 0]), 30)  # 3 cm: a usual depth for vastus lateralis
        assert tr.structure_at_tip == f"vastus_lateralis_{sfx}", \
            [(iv.structure, round(iv.entry_depth), round(iv.exit_depth)) for iv in tr.intervals]


def test_right_l5_example_in_the_placements_doc_passes(index, tmp_path):
    """The docs' right-L5 session, graded headless as a teacher would: every needle on a
    target (multifidus L5, gluteus medius, tibialis anterior) and the case passes."""
    from imssim.core.training.placements import load_placements

    doc = (REPO / "docs" / "placements.md").read_text()
    block = doc.split("```yaml", 1)[1].split("```", 1)[0]
    f = tmp_path / "example.yaml"
    f.write_text(block)
    specs = load_placements(f, index)
    case = load_scenario("l5-radiculopathy-low-back", index.atlas)
    s = Session(index.atlas, case, seed=0, index=index)
    for sp in specs:
        p = sp.placement
        s.insert_needle(p.entry, p.direction, p.depth, length_mm=sp.needle.length_mm)
    r = s.finish()
    assert [n["structure"] for n in r.needles] == ["multifidus_L5_r", "gluteus_medius_r", "tibialis_anterior_r"]
    assert all(n["target"] for n in r.needles), [(n["structure"], n["target"]) for n in r.needles]
    assert r.passed, r.summary


# --- the build tool on real source files ---------------------------------------------------


@pytest.mark.parametrize("stem,limit", [("FJ739_BP4168_FMA13076_Fifth lumbar vertebra", 1.0),
                                        ("FJ229_BP2767_FMA22330_Right_gluteus_medius", 1.2)])
def test_rebuilt_volume_keeps_the_source_shape(shared, stem, limit):
    import trimesh

    from imssim.core.model.build import voxel

    src = shared / "atlas-bodyparts3d"
    f = next(src.glob(f"*/{stem}.obj"))
    bp.check_sums(src, [f])
    V, F = bp.read_obj(f)
    Vc, Fc, info = voxel.closed_mesh(V, F, close_mm=1.0 if "vertebra" in stem else 1.5)
    assert info["watertight"] and is_watertight(Vc, Fc)
    pts = voxel.surface_samples(V, F, 2.0)
    pts = pts[np.random.default_rng(0).choice(len(pts), 2000, replace=False)]
    _, d, _ = trimesh.proximity.closest_point(trimesh.Trimesh(Vc, Fc, process=False), pts)
    assert np.percentile(d, 95) < limit, np.percentile(d, [50, 95, 100])


def test_source_names_parse_to_ids(shared):
    names = {info["id"] for _f, info in bp.source_files(shared / "atlas-bodyparts3d")}
    for sid in ("vertebra_C1", "vertebra_C2", "vertebra_T7", "rib_12_l", "hip_bone_r", "skull", "hand_bones_l",
                "foot_bones_r", "sternocleidomastoid_r", "longissimus_thoracic_part_l", "iliocostalis_lumbar_part_r"):
        assert sid in names, sid


def test_a_changed_source_file_is_refused(shared, tmp_path):
    src = shared / "atlas-bodyparts3d"
    f = next((src / "bones").glob("*Fifth lumbar vertebra.obj"))
    (tmp_path / "bones").mkdir()
    bad = tmp_path / "bones" / f.name
    bad.write_bytes(f.read_bytes() + b"\n# edited\n")
    (tmp_path / "SHA256SUMS.txt").write_text((src / "SHA256SUMS.txt").read_text())
    with pytest.raises(ValueError, match="does not match SHA256SUMS"):
        bp.check_sums(tmp_path, [bad])
