"""Scenarios against the built-in atlas: names, did-you-mean, targets, trigger loci."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imssim.core.training.scenario import (
    ScenarioError,
    TriggerLocus,
    derive_targets,
    library,
    load_scenario,
    resolve_locus,
    validate_file,
)
from imssim.core.training.scenario.targets import distance_to

BASE = """\
version: 1
id: case
title: Case
author: Test
patient:
  age: 40
  sex: female
  history: Some history.
  presenting_complaint: Back pain.
diagnosis:
  condition: chronic low back pain
  segments: {segments}
  side: {side}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "case.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def case(tmp_path, atlas, extra: str = "", segments="[L5]", side="right"):
    return load_scenario(write(tmp_path, BASE.format(segments=segments, side=side) + extra), atlas)


@pytest.mark.parametrize("path", library(), ids=lambda p: p.stem)
def test_every_shipped_scenario_validates_against_the_builtin_atlas(path, atlas):
    issues = validate_file(path, atlas)
    errors = [str(i) for i in issues if i.severity == "error"]
    assert errors == [], "\n".join(errors)
    sc = load_scenario(path, atlas)
    if sc.targets.derive:
        assert derive_targets(sc, atlas), f"{path.name}: no targets"


def test_names_and_ids_both_work_and_become_ids(tmp_path, atlas):
    sc = case(tmp_path, atlas, """supersensitive_muscles:
  - structure: right gluteus medius
    trigger_loci: [{landmark: Iliac Crest R, offset_mm: [0, 0, -40]}]
quiz:
  - type: pick_structure
    question: Click it.
    answer: [Right Piriformis]
    explanation: x
""")
    assert sc.supersensitive_muscles[0].structure == "gluteus_medius_r"
    assert sc.supersensitive_muscles[0].trigger_loci[0].landmark == "iliac_crest_r"
    assert sc.quiz[0].answer == ["piriformis_r"]
    # the document still holds what the author wrote
    assert sc.document["supersensitive_muscles"][0]["structure"] == "right gluteus medius"


def test_unknown_names_get_did_you_mean_with_position(tmp_path, atlas):
    p = write(tmp_path, BASE.format(segments="[L5]", side="right") + """supersensitive_muscles:
  - structure: gluteus_medus_r
    trigger_loci: [{landmark: L5_spinus}]
  - structure: vertebra_L5
targets:
  remove: [tibialis_anterior]
""")
    issues = validate_file(p, atlas)
    msgs = {(i.line, i.path): i.message for i in issues}
    assert "did you mean 'gluteus_medius_r'" in msgs[(15, "supersensitive_muscles[0].structure")]
    assert "unknown landmark 'L5_spinus'" in msgs[(16, "supersensitive_muscles[0].trigger_loci[0].landmark")]
    assert "'L5_spinous'" in msgs[(16, "supersensitive_muscles[0].trigger_loci[0].landmark")]
    assert "is a bone, expected a muscle" in msgs[(17, "supersensitive_muscles[1].structure")]
    assert "unknown structure 'tibialis_anterior'" in msgs[(19, "targets.remove[0]")]
    with pytest.raises(ScenarioError) as e:
        load_scenario(p, atlas)
    assert len(e.value.errors) == 4


def test_cross_reference_warnings(tmp_path, atlas):
    sc = case(tmp_path, atlas, """supersensitive_muscles:
  - structure: gluteus_medius_l
    trigger_loci: [{landmark: L5_spinous, offset_mm: [0, 0, 300], snap: false}]
""")
    text = " ".join(str(w) for w in sc.warnings)
    assert "on the left, but the diagnosis side is right" in text
    assert "mm from gluteus_medius_l" in text


def test_segmental_rule_l5_right(tmp_path, atlas):
    sc = case(tmp_path, atlas)
    ts = derive_targets(sc, atlas)
    by = {t.structure: t for t in ts}
    assert by["multifidus_L5_r"].kind == "paraspinal" and by["multifidus_L5_r"].level == "L5"
    assert by["multifidus_L5_r"].level_tolerance == 1
    assert ts[0].kind == "paraspinal"
    assert {"gluteus_medius_r", "tibialis_anterior_r", "fibularis_longus_r"} <= set(by)
    # every derived peripheral target really is supplied by L5, and on the right
    for t in ts:
        s = atlas.get(t.structure)
        assert s.side == "right" and "L5" in s.segments
    # dominant-root muscles weigh more than others
    assert by["gluteus_medius_r"].weight > by["tibialis_anterior_r"].weight  # L5 vs L4 dominant
    # no multifidus at other levels, no broad dorsal-ramus muscles, nothing from L4-only
    assert "multifidus_L4_r" not in by and "longissimus_lumbar_part_r" not in by
    assert "vastus_lateralis_r" not in by


def test_segmental_rule_bilateral_and_several_levels(tmp_path, atlas):
    sc = case(tmp_path, atlas, segments="[L4, L5]", side="bilateral")
    ts = derive_targets(sc, atlas)
    para = {t.structure for t in ts if t.kind == "paraspinal"}
    # the segmental paraspinals at each level, both sides: multifidus and the rotatores deep to it
    assert para == {f"{m}_{lv}_{x}" for m in ("multifidus", "rotatores") for lv in ("L4", "L5") for x in "rl"}
    by = {t.structure: t for t in ts}
    assert by["gluteus_medius_l"].segments == ("L4", "L5")
    assert "vastus_lateralis_l" in by and "vastus_lateralis_r" in by


def test_level_without_multifidus_uses_nearest_within_tolerance(tmp_path, atlas):
    # the body's multifidus ends over the sacrum (S1): S2 borrows it
    sc = case(tmp_path, atlas, segments="[S2]")
    by = {t.structure: t for t in derive_targets(sc, atlas)}
    assert by["multifidus_S1_r"].segments == ("S2",) and "nearest" in by["multifidus_S1_r"].reason
    assert "gastrocnemius_medial_head_r" in by and "piriformis_r" in by
    sc0 = case(tmp_path, atlas, segments="[S2]", extra="targets: {level_tolerance: 0}\n")
    assert not [t for t in derive_targets(sc0, atlas) if t.kind == "paraspinal"]


def test_author_adds_removes_and_reweights(tmp_path, atlas):
    sc = case(tmp_path, atlas, """targets:
  peripheral_weight: 0.5
  remove: [semitendinosus_r, right semimembranosus]
  add:
    - {structure: piriformis_r, weight: 3, depth_mm: [40, 70]}
    - {structure: gluteus_medius_r, weight: 2.5}
""")
    by = {t.structure: t for t in derive_targets(sc, atlas)}
    assert "semitendinosus_r" not in by and "semimembranosus_r" not in by
    assert by["piriformis_r"].origin == "author" and by["piriformis_r"].depth_mm == (40.0, 70.0)
    assert by["piriformis_r"].kind == "peripheral" and by["piriformis_r"].weight == 3
    assert by["gluteus_medius_r"].weight == 2.5 and by["gluteus_medius_r"].reason == "re-weighted by the author"
    assert by["tibialis_anterior_r"].weight == 0.5
    sc2 = case(tmp_path, atlas, "targets: {derive: false, add: [{structure: piriformis_r}]}\n")
    assert [t.structure for t in derive_targets(sc2, atlas)] == ["piriformis_r"]


def test_resolve_locus_by_landmark_coordinates_and_fraction(atlas):
    lm = atlas.landmark("L5_spinous").xyz
    p = resolve_locus(TriggerLocus(landmark="L5_spinous", offset_mm=(-15, 0, 0), snap=False), atlas)
    assert np.allclose(p, lm + [-15, 0, 0])
    assert np.allclose(resolve_locus(TriggerLocus(xyz=(1, 2, 3)), atlas), [1, 2, 3])
    gm = atlas.get("gastrocnemius_medial_head_r")
    top = resolve_locus(TriggerLocus(fraction=0.1), atlas, gm)
    bottom = resolve_locus(TriggerLocus(fraction=0.9), atlas, gm)
    assert top[2] > bottom[2] + 50  # 0 is the superior end
    flipped = resolve_locus(TriggerLocus(fraction=0.1, from_end="inferior"), atlas, gm)
    assert flipped[2] < top[2]
    for q in (top, bottom, flipped):
        assert distance_to(gm, q) == 0.0  # inside the muscle
    pir = atlas.get("piriformis_r")
    med = resolve_locus(TriggerLocus(fraction=0.1, from_end="medial"), atlas, pir)
    lat = resolve_locus(TriggerLocus(fraction=0.9, from_end="medial"), atlas, pir)
    assert abs(med[0]) < abs(lat[0])  # x = 0 is the midline
    # a landmark locus outside the muscle is snapped into it
    snapped = resolve_locus(TriggerLocus(landmark="L5_spinous"), atlas, "multifidus_L5_r")
    assert distance_to(atlas.get("multifidus_L5_r"), snapped) == 0.0
    with pytest.raises(ValueError):
        resolve_locus(TriggerLocus(fraction=0.5), atlas)


def test_default_scenario_loci_lie_in_their_muscles(atlas):
    from imssim.core.training.scenario import default_scenario_path

    sc = load_scenario(default_scenario_path(), atlas)
    assert sc.warnings == []
    for m in sc.supersensitive_muscles:
        s = atlas.get(m.structure)
        for lc in m.trigger_loci:
            assert distance_to(s, resolve_locus(lc, atlas, s)) == 0.0


def _box_atlas():
    """A tiny synthetic atlas: the rule must work on whatever structures exist."""
    import trimesh

    from imssim.core.model.atlas import Atlas, Innervation, Landmark, Structure

    def box(sid, name, centre, **kw):
        m = trimesh.creation.box(extents=(20, 20, 60))
        m.apply_translation(centre)
        return Structure(sid, name, "muscle", kw.pop("side", "right"), kw.pop("region", "cervical"),
                         m.vertices, m.faces, **kw)

    dr = "medial branch of the dorsal ramus (same level)"
    return Atlas("boxes", [
        box("multifidus_C5_r", "right multifidus C5", (-15, 60, 1450), level="C5", muscle="multifidus",
            innervation=Innervation(dr, ("C5",), "C5", "t")),
        box("multifidus_C5_l", "left multifidus C5", (15, 60, 1450), side="left", level="C5", muscle="multifidus",
            innervation=Innervation(dr, ("C5",), "C5", "t")),
        box("semispinalis_capitis_r", "right semispinalis capitis", (-20, 70, 1550), muscle="semispinalis capitis",
            innervation=Innervation("dorsal rami of the cervical nerves", ("C1", "C2", "C3", "C4"), None, "t")),
        box("longissimus_r", "right longissimus", (-40, 60, 1200), muscle="longissimus",
            innervation=Innervation("lateral branches of the dorsal rami", tuple(f"C{i}" for i in range(1, 9)), None, "t")),
        box("deltoid_r", "right deltoid", (-180, 0, 1400), muscle="deltoid", region="shoulder",
            innervation=Innervation("axillary", ("C5", "C6"), "C5", "t")),
        box("trapezius_upper_r", "right upper trapezius", (-80, 60, 1500), muscle="trapezius", region="shoulder",
            innervation=Innervation("accessory", ("C3", "C4"), None, "t"), meta={"uncertain": True}),
    ], [Landmark("C5_spinous", "C5 spinous process", (0.0, 80.0, 1450.0))])


def test_rule_on_any_atlas_cervical_levels_and_fallback(tmp_path):
    boxes = _box_atlas()
    sc = case(tmp_path, boxes, segments="[C5]")
    by = {t.structure: t for t in derive_targets(sc, boxes)}
    assert set(by) == {"multifidus_C5_r", "deltoid_r"}
    assert by["deltoid_r"].weight == 1.5 and by["multifidus_C5_r"].weight == 2.0
    # C1 has no multifidus: the narrow dorsal-ramus muscle stands in; broad longissimus does not
    sc1 = case(tmp_path, boxes, segments="[C1]")
    by1 = {t.structure: t for t in derive_targets(sc1, boxes)}
    assert set(by1) == {"semispinalis_capitis_r"} and by1["semispinalis_capitis_r"].kind == "paraspinal"
    assert by1["semispinalis_capitis_r"].level is None
    # weakly sourced supply weighs less
    sc3 = case(tmp_path, boxes, segments="[C3]", extra="targets: {paraspinal: false}\n")
    assert {t.structure: t.weight for t in derive_targets(sc3, boxes)} == {"trapezius_upper_r": 0.5}
    # bilateral picks the left multifidus too; the left has no deltoid in this atlas
    scb = case(tmp_path, boxes, segments="[C5]", side="bilateral")
    assert {t.structure for t in derive_targets(scb, boxes)} == {"multifidus_C5_r", "multifidus_C5_l", "deltoid_r"}
