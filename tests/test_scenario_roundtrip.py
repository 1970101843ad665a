"""Saving an edited scenario: only what changed is written into the author's file
(comments, key order and wording kept); the file replaced is kept as NAME.bak; a broken
case is never written (core/training/scenario/roundtrip.py, files.save_scenario)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imssim.core.training.scenario import (
    ScenarioError,
    SupersensitiveMuscle,
    Target,
    TriggerLocus,
    default_scenario_path,
    library,
    load_scenario,
    save_scenario,
)


def copy_of(tmp_path: Path, src: Path | None = None) -> Path:
    src = src or default_scenario_path()
    p = tmp_path / src.name
    shutil.copy(src, p)
    return p


def test_unchanged_save_is_byte_identical_and_makes_no_backup(tmp_path):
    for src in library():
        p = copy_of(tmp_path, src)
        save_scenario(load_scenario(p), p)
        assert p.read_text() == src.read_text(), src.name
        assert not p.with_name(p.name + ".bak").exists()


def test_edits_keep_comments_order_and_wording(tmp_path):
    p = copy_of(tmp_path)
    original = p.read_text()
    sc = load_scenario(p)
    ss = list(sc.supersensitive_muscles)
    ss[2] = ss[2].model_copy(update={"supersensitivity": 0.75})
    edited = sc.model_copy(update={
        "difficulty": "advanced",
        "patient": sc.patient.model_copy(update={"age": 52}),
        "supersensitive_muscles": ss,
    })
    save_scenario(edited, p)
    text = p.read_text()
    # exactly the three edited values changed, every other line as the author wrote it
    diff = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert len(original.splitlines()) == len(text.splitlines())
    assert diff == [("difficulty: beginner", "difficulty: advanced"), ("  age: 46", "  age: 52"),
                    ("    supersensitivity: 0.6", "    supersensitivity: 0.75")]
    # the backup holds what was replaced
    assert p.with_name(p.name + ".bak").read_text() == original
    again = load_scenario(p)
    assert again.patient.age == 52 and again.supersensitive_muscles[2].supersensitivity == 0.75


def test_edits_of_a_scenario_loaded_with_the_atlas_keep_the_authors_names(tmp_path, atlas):
    p = copy_of(tmp_path)
    sc = load_scenario(p, atlas)  # names became atlas ids in the model
    assert sc.supersensitive_muscles[1].structure == "gluteus_medius_r"
    original = p.read_text()
    save_scenario(sc.model_copy(update={"estimated_minutes": 30}), p)
    text = p.read_text()
    assert [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b] == [
        ("estimated_minutes: 20", "estimated_minutes: 30")]
    assert "  - structure: right gluteus medius   # names work as well as ids" in text
    assert "estimated_minutes: 30" in text
    assert load_scenario(p, atlas).estimated_minutes == 30


def test_items_added_and_removed_keep_their_neighbours_comments(tmp_path):
    p = copy_of(tmp_path)
    sc = load_scenario(p)
    ss = [m for m in sc.supersensitive_muscles if m.structure != "tibialis_anterior_r"]
    ss.append(SupersensitiveMuscle(structure="extensor_hallucis_longus_r", supersensitivity=0.5,
                                   trigger_loci=[TriggerLocus(fraction=0.5)]))
    save_scenario(sc.model_copy(update={"supersensitive_muscles": ss, "course": None}), p)
    text = p.read_text()
    assert "tibialis_anterior_r\n    supersensitivity" not in text
    assert "  - structure: right gluteus medius   # names work as well as ids" in text
    assert "      - fraction: 0.4          # 40% of the way down from the muscle's top" in text
    assert "- structure: extensor_hallucis_longus_r" in text
    again = load_scenario(p)
    assert [m.structure for m in again.supersensitive_muscles] == [
        "multifidus_L5_r", "right gluteus medius", "fibularis_longus_r", "extensor_hallucis_longus_r"]
    assert again.supersensitive_muscles[3].trigger_loci[0].fraction == 0.5


def test_single_values_stay_single_and_optional_fields_come_and_go(tmp_path):
    p = copy_of(tmp_path, next(f for f in library() if f.stem == "s1-radiculopathy-piriformis"))
    sc = load_scenario(p)
    q0 = sc.quiz[0].model_copy(update={"answer": [1]})
    dx = sc.diagnosis.model_copy(update={"notes": None})
    save_scenario(sc.model_copy(update={"quiz": [q0, *sc.quiz[1:]], "diagnosis": dx, "course": None}), p)
    text = p.read_text()
    assert "    answer: 1\n" in text and "notes:" not in text and "course:" not in text
    again = load_scenario(p)
    assert again.quiz[0].answers == [1] and again.course is None and again.diagnosis.notes is None
    # and back: new values are written without their defaults, numbers as authors write them
    add = [*again.targets.add, Target(structure="soleus_r", depth_mm=(10, 40))]
    save_scenario(again.model_copy(update={"course": sc.course,
                                           "targets": again.targets.model_copy(update={"add": add})}), p)
    text = p.read_text()
    assert "    - structure: soleus_r\n      depth_mm: [10, 40]\n" in text
    course = text.split("\ncourse:\n")[1]
    assert "initial_rom_percent: 65\n" in course and "carry_over" not in course  # a default
    back = load_scenario(p)
    assert back.course == sc.course and back.targets.add[1].depth_mm == (10.0, 40.0)
    # a field set back to its default leaves the file
    save_scenario(back.model_copy(update={"estimated_minutes": 20}), p)
    assert "estimated_minutes" not in p.read_text() and load_scenario(p).estimated_minutes == 20


def test_a_broken_case_is_never_written(tmp_path):
    p = copy_of(tmp_path)
    original = p.read_text()
    sc = load_scenario(p)
    bad = sc.model_copy(update={"patient": sc.patient.model_copy(update={"age": 5})})  # no validation here
    with pytest.raises(ScenarioError) as e:
        save_scenario(bad, p)
    assert "patient.age" in str(e.value)
    assert p.read_text() == original and not p.with_name(p.name + ".bak").exists()


def test_a_scenario_built_in_code_is_written_whole(tmp_path):
    sc = load_scenario(default_scenario_path())
    fresh = sc.model_copy()
    fresh._document = None
    out = save_scenario(fresh, tmp_path / "new.yaml")
    text = out.read_text()
    assert text.startswith("version: 1\nid: l5-radiculopathy-low-back\n")
    again = load_scenario(out)
    assert again.model_dump() == sc.model_dump()


def test_an_item_appended_to_a_list_stays_above_the_blank_line_before_the_next_section(tmp_path):
    from imssim.core.training.scenario import Finding

    p = copy_of(tmp_path)
    sc = load_scenario(p)
    f = Finding(kind="tender_point", description="Tender point in the right gluteus medius.",
                structure="gluteus_medius_r", locus=TriggerLocus(xyz=(-110, 70, 930), radius_mm=12))
    patient = sc.patient.model_copy(update={"findings": [*sc.patient.findings, f]})
    save_scenario(sc.model_copy(update={"patient": patient}), p)
    text = p.read_text()
    # the gap that separated the findings from the next section is after the new item
    assert "        radius_mm: 12\n\ndiagnosis:" in text
    assert "(matchstick test positive).\n    - kind: tender_point" in text
    # an end-of-line comment on the old last line stays on it
    q = tmp_path / "eol.yaml"
    q.write_text(p.with_suffix(".yaml.bak").read_text().replace(
        "(matchstick test positive).\n", "(matchstick test positive).   # the last one\n"))
    sc = load_scenario(q)
    save_scenario(sc.model_copy(update={"patient": sc.patient.model_copy(
        update={"findings": [*sc.patient.findings, f]})}), q)
    text = q.read_text()
    assert "(matchstick test positive).   # the last one\n    - kind: tender_point" in text
    assert "        radius_mm: 12\n\ndiagnosis:" in text
    assert load_scenario(q).patient.findings[-1].locus.xyz == (-110.0, 70.0, 930.0)
