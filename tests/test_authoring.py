"""The authoring model (core, no Qt): edits as commands with undo/redo, unsaved changes,
saving through the round trip, the muscle list with the diagnosis's myotome first."""

from __future__ import annotations

import shutil

import pytest

from imssim.core.training.authoring import Authoring, AuthoringError
from imssim.core.training.scenario import library_dir, load_scenario, validate_file

HISTORY = "Two years of low back pain after lifting a crate; since spring it spreads down the right leg."
COMPLAINT = "An aching low back and a burning pain along the outside of my right shin."


def test_new_case_from_the_template_is_unsaved_and_valid(atlas):
    a = Authoring.new(atlas, "L5", "right", "chronic low back pain")
    assert a.path is None and a.dirty and not a.can_undo
    assert a.scenario.diagnosis.segments == ["L5"] and a.scenario.supersensitive_muscles
    with pytest.raises(AuthoringError, match="Save as"):
        a.save()
    with pytest.raises(ValueError):
        Authoring.new(atlas, "X9", "right", "pain")


def test_every_edit_undoes_and_redoes(atlas):
    a = Authoring.new(atlas, "L5", "right", "chronic low back pain")
    start = a.scenario
    assert a.set_field("history", HISTORY)
    assert a.set_field("age", 52)
    assert a.set_segments("L5, S1")
    i = a.add_point("multifidus_L5_r", (-20.0, 75.0, 1010.0))
    assert a.set_supersensitive("gluteus_medius_r")
    assert not a.set_supersensitive("gluteus_medius_r")  # already: no undo step
    assert not a.set_field("age", 52)  # no change: no undo step
    assert len(a.undo_stack) == 5
    assert a.describe_finding(i, "Exquisitely tender,  and the patient jumps.")
    assert a.scenario.patient.findings[i].description == "Exquisitely tender, and the patient jumps."
    assert a.undo() == f"describe finding {i + 1}"
    assert a.scenario.patient.findings[i].locus.xyz == (-20.0, 75.0, 1010.0)
    assert a.undo_label.startswith("make the") and "gluteus medius" in a.undo_label
    labels = [a.undo() for _ in range(5)]
    assert labels[-1] == "set the history" and a.undo() is None
    assert a.scenario is start and a.can_redo and not a.can_undo
    for _ in range(5):
        a.redo()
    assert a.scenario.patient.age == 52 and a.scenario.diagnosis.segments == ["L5", "S1"]
    assert "gluteus_medius_r" in a.supersensitive
    # a new edit after an undo drops the redo history
    a.undo()
    a.set_field("sex", "male")
    assert not a.can_redo and "gluteus_medius_r" not in a.supersensitive


def test_a_bad_edit_changes_nothing(atlas):
    a = Authoring.new(atlas, "L5", "right", "chronic low back pain")
    before = a.scenario
    with pytest.raises(AuthoringError, match="age"):
        a.set_field("age", 7)
    with pytest.raises(AuthoringError, match="segment"):
        a.set_segments("L9")
    with pytest.raises(AuthoringError, match="not a muscle"):
        a.set_supersensitive("L5_spinous")
    with pytest.raises(AuthoringError):
        a.set_field("history", "   ")
    assert a.scenario is before and not a.can_undo


def test_muscle_choices_offer_the_myotome_first(atlas):
    a = Authoring.new(atlas, "L5", "right", "chronic low back pain")
    ch = a.muscle_choices()
    supplied = [m for m in ch if m.supplied]
    assert supplied and ch[: len(supplied)] == supplied  # the myotome first
    ids = {m.id for m in supplied}
    assert {"multifidus_L5_r", "gluteus_medius_r", "extensor_hallucis_longus_r"} <= ids
    assert not any(m.id.endswith("_l") for m in ch)  # the diagnosis's side only
    assert "biceps_brachii_r" not in ids
    a.set_segments("C6")
    ids = {m.id for m in a.muscle_choices() if m.supplied}
    assert "biceps_brachii_r" in ids and "gluteus_medius_r" not in ids


def test_save_writes_only_the_changes_keeps_a_backup_and_reopens(atlas, tmp_path):
    p = tmp_path / "l5-radiculopathy-low-back.yaml"
    shutil.copy(library_dir() / p.name, p)
    original = p.read_text()
    a = Authoring.open(p, atlas)
    assert not a.dirty and a.path == p
    a.set_field("complaint", COMPLAINT)
    a.add_point("gluteus_medius_r", (-110.0, 70.0, 930.0), on_skin=True)
    assert a.dirty
    a.save()
    assert not a.dirty and (tmp_path / (p.name + ".bak")).read_text() == original
    text = p.read_text()
    assert COMPLAINT in text
    # every comment of the author's file is still there
    assert all(line.strip() in text for line in original.splitlines() if line.strip().startswith("#"))
    assert [i for i in validate_file(p, atlas) if i.severity == "error"] == []
    b = load_scenario(p, atlas)
    assert b.patient.presenting_complaint == COMPLAINT
    assert b.patient.findings[-1].locus.xyz == (-110.0, 70.0, 930.0) and b.patient.findings[-1].locus.snap is False
    # undoing back to the saved case is not an unsaved change; undoing further is
    a.undo()
    assert a.dirty
    a.redo()
    assert not a.dirty


def test_new_case_saved_validates_and_reopens_the_same(atlas, tmp_path):
    a = Authoring.new(atlas, "S1", "left", "buttock and calf pain")
    a.set_field("title", "Buttock and calf pain")
    a.set_field("author", "Dr Test")
    a.set_field("history", HISTORY)
    a.set_field("complaint", COMPLAINT)
    a.add_point("gluteus_maximus_l", (110.0, 80.0, 900.0))
    p = a.save(tmp_path / "mine.yaml")
    assert p.is_file() and not (tmp_path / "mine.yaml.bak").exists()  # nothing replaced, no backup
    assert "# Written by `imssim scenario new`" in p.read_text()  # the template's comments kept
    assert [i for i in validate_file(p, atlas) if i.severity == "error"] == []
    again = Authoring.open(p, atlas)
    assert again.scenario.model_dump() == a.scenario.model_dump()
    # saving again over it keeps a backup
    a.set_field("age", 60)
    a.save()
    assert (tmp_path / "mine.yaml.bak").is_file()


def test_preview_is_the_case_as_it_stands(atlas, tmp_path):
    from imssim.core.training.case import BodyBuilds, open_case

    a = Authoring.new(atlas, "L5", "right", "chronic low back pain")
    a.set_field("history", HISTORY)
    case = open_case(a.preview(), BodyBuilds(atlas))
    assert case.scenario.patient.history == HISTORY and case.scenario.path is None
