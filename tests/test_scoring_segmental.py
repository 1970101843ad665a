"""Done-means of issue #6 (scoring): segmental logic on the built-in atlas with shipped scenarios."""

from __future__ import annotations

import json

import pytest

from imssim.core.training.placements import parse
from imssim.core.training.scenario import load_scenario
from imssim.core.training.session import Session, grade_placements

from needle_helpers import needle_into


@pytest.fixture(scope="module")
def s1(atlas):
    return load_scenario("s1-radiculopathy-piriformis", atlas)


def grade_one(index, scenario, sid, approach="posterior", seed=0):
    e, d, depth = needle_into(index, sid, approach)
    s = Session(index.atlas, scenario, seed=seed, index=index)
    s.insert_needle(e, d, depth, length_mm=75)
    return s.finish()


def test_right_l5_multifidus_is_a_target_with_level_error_0(index, l5):
    r = grade_one(index, l5, "multifidus_L5_r")
    n = r.needles[0]
    assert n["structure"] == "multifidus_L5_r" and n["target"] is True
    assert r.metric("level_error").value == 0
    assert r.metric("level_error").details[0]["level_error"] == 0
    assert "on segment L5" in n["sentence"] and "It is a target" in n["sentence"]
    assert r.families["level_accuracy"] == 1.0


def test_l3_multifidus_gives_level_error_2(index, l5):
    r = grade_one(index, l5, "multifidus_L3_r")
    n = r.needles[0]
    assert n["structure"] == "multifidus_L3_r" and n["target"] is False
    assert r.metric("level_error").value == 2
    assert "2 levels from the affected segment" in r.metric("level_error").details[0]["sentence"]
    assert "off segment" in n["sentence"]
    # worse than the right level on level accuracy and in total
    good = grade_one(index, l5, "multifidus_L5_r")
    assert r.families["level_accuracy"] < good.families["level_accuracy"]
    assert r.total < good.total


def test_vastus_lateralis_is_off_segment_in_an_s1_case(index, s1):
    r = grade_one(index, s1, "vastus_lateralis_r", approach="right")
    n = r.needles[0]
    assert n["structure"] == "vastus_lateralis_r"
    assert n["target"] is False
    assert set(n["segments"]) == {"L2", "L3", "L4"}
    assert "femoral nerve (L2-L4): off segment (the case is S1)" in n["sentence"]
    assert r.families["targeting"] == 0.0


def test_sentence_names_muscle_nerve_roots_and_segment(index, l5):
    r = grade_one(index, l5, "gluteus_medius_r", approach="posterior")
    s = r.needles[0]["sentence"]
    assert s.startswith("Needle 1 is in the right gluteus medius, supplied by the superior gluteal nerve (L4-S1): "
                        "on segment L5. It is a target.")
    assert s.endswith(("Twitch elicited.", "No twitch."))


def _t4_anterior(index):
    # through the intercostal space above the 5th rib (at the spinous tip's height the rib stops it)
    doc = {"version": 1, "needles": [{"landmark": "T4_spinous", "lateral_mm": 45, "side": "right", "cranial_mm": 8,
                                      "direction": [0, -1, 0], "depth": 60, "length_mm": 75}]}
    return parse(doc, index)


def test_deep_needle_over_t4_aimed_anteriorly_breaches_pleura_and_fails(index, l5):
    specs = _t4_anterior(index)
    for batch in (True, False):
        r = grade_placements(index.atlas, l5, specs, index, batch=batch)
        b = r.metric("breaches")
        assert [x["structure"] for x in b.details] == ["lung_r"]
        # skin to pleura measured 48 mm there (thick erector spinae in the source)
        assert b.details[0]["harm"] == "pneumothorax" and 40 <= b.details[0]["depth_mm"] <= 55
        assert r.safety_failed and not r.passed
        assert r.summary.startswith("FAIL (safety)")


def test_thoracic_case_pleura_breach_fails(atlas, index):
    # the shipped thoracic case names muscles the atlas3 stage adds (rhomboids, thoracic multifidus)
    sc = load_scenario("thoracic-pneumothorax-risk", atlas)
    r = grade_placements(atlas, sc, _t4_anterior(index), index)
    assert r.safety_failed and not r.passed
    assert any(e["structure"] == "lung_r" for e in r.metric("breaches").details)


def test_breach_does_not_fail_when_the_scenario_says_so(index, l5):
    lenient = l5.model_copy(update={"safety": l5.safety.model_copy(update={"breach_fails": False})})
    r = grade_placements(index.atlas, lenient, _t4_anterior(index), index)
    assert r.metric("breaches").value == 1 and not r.safety_failed
    assert r.families["safety"] == 0.0


def test_batch_and_per_needle_grading_agree(index, l5):
    needles = []
    for sid, ap in [("multifidus_L5_r", "posterior"), ("gluteus_medius_r", "posterior"),
                    ("multifidus_L3_r", "posterior")]:
        e, d, depth = needle_into(index, sid, ap)
        needles.append({"entry": e.tolist(), "direction": d.tolist(), "depth": depth, "length_mm": 75})
    specs = parse({"version": 1, "needles": needles}, index)
    fast = grade_placements(index.atlas, l5, specs, index, batch=True)
    slow = grade_placements(index.atlas, l5, specs, index, batch=False)
    assert [n["structure"] for n in fast.needles] == [n["structure"] for n in slow.needles] == [
        "multifidus_L5_r", "gluteus_medius_r", "multifidus_L3_r"]
    assert fast.total == pytest.approx(slow.total, abs=1e-6)
    assert json.loads(json.dumps(fast.to_dict()))["needles"][0]["target"] is True


def test_symptom_site_only_needles_are_counted(atlas, index, l5):
    # a painful muscle outside the segment: needling only it is local dry needling, not IMS
    from imssim.core.training.scenario import PainArea

    assert "piriformis_r" not in {t.structure for t in Session(atlas, l5, index=index).targets}
    patient = l5.patient.model_copy(update={"pain": [PainArea(region="buttock", side="right", structure="piriformis_r")]})
    sc = l5.model_copy(update={"patient": patient})
    r = grade_one(index, sc, "piriformis_r", approach="posterior")
    cov = r.metric("coverage")
    assert cov.details[0]["symptom_site_only_share"] == 1.0
    assert "1 of 1 needles treated a symptom site only" in cov.sentence
    ok = grade_one(index, sc, "gluteus_medius_r", approach="posterior")
    assert ok.metric("coverage").details[0]["symptom_site_only_share"] == 0.0
    assert ok.families["coverage"] > r.families["coverage"]


def test_needle_resting_on_bone_counts_in_the_muscle_just_above(atlas):
    from imssim.core.training.scoring.base import BONE_MUSCLE_MM, muscle_above_bone
    from imssim.core.engines.traversal import Interval

    ivs = [Interval("skin", "skin", 0, 2, True), Interval("multifidus_L5_r", "muscle", 10, 36, True)]
    assert muscle_above_bone(ivs, 40.0, atlas) == "multifidus_L5_r"
    assert muscle_above_bone(ivs, 36.0 + BONE_MUSCLE_MM + 1, atlas) is None


def test_quiz_answers_enter_the_total(atlas, index):
    sc = load_scenario("quiz-segmental-reasoning", atlas)
    assert sc.scoring.quiz_weight > 0 and sc.quiz
    right = Session(atlas, sc, index=index)
    wrong = Session(atlas, sc, index=index)
    for k, q in enumerate(sc.quiz):
        good = q.answer if q.type == "multiple_choice" else q.answer[0]
        assert right.answer_quiz(k, good if not isinstance(good, list) or len(good) > 1 else good[0], t=k)
        bad = ([i for i in range(len(q.choices)) if i not in q.answer][0] if q.type == "multiple_choice"
               else "right vastus lateralis")
        assert not wrong.answer_quiz(k, bad, t=k)
    a, b = right.finish(), wrong.finish()
    assert a.quiz["correct"] == len(sc.quiz) and b.quiz["correct"] == 0
    assert a.total > b.total


def test_needle_zone_limits_are_reported(atlas, index):
    from imssim.core.training.scenario import NeedleZone

    sc = load_scenario("l5-radiculopathy-low-back", atlas)
    zone = NeedleZone(landmark="L5_spinous", radius_mm=80, max_length_mm=30, reason="test zone")
    sc = sc.model_copy(update={"safety": sc.safety.model_copy(update={"zones": [zone]})})
    e, d, depth = needle_into(index, "multifidus_L5_r")
    for length, n in ((75, 1), (30, 0)):
        s = Session(atlas, sc, index=index)
        s.insert_needle(e, d, min(depth, length), length_mm=length)
        m = s.finish().metric("needle_zones")
        assert m.value == n
        if n:
            assert "(75 mm) is longer than the 30 mm allowed within 80 mm of L5_spinous: test zone." in m.sentence


def test_time_limit_refuses_actions_after_it_but_still_scores(index, l5):
    from imssim.core.training.session import SessionError

    timed = l5.model_copy(update={"safety": l5.safety.model_copy(update={"time_limit_s": 60.0})})
    e, d, depth = needle_into(index, "multifidus_L5_r", "posterior")
    s = Session(index.atlas, timed, seed=0, index=index)
    k = s.insert_needle(e, d, depth, length_mm=75, t=10.0)
    with pytest.raises(SessionError, match="time is up"):
        s.advance(k, 2.0, t=61.0)
    with pytest.raises(SessionError, match="time is up"):
        s.insert_needle(e, d, depth, length_mm=75, t=70.0)
    assert len(s.needles) == 1
    r = s.finish(t=75.0)  # finishing is always allowed
    assert r.metric("breaches").value == 0 and 0.0 <= r.total <= 100.0  # percent
    # without a limit the same late move is fine
    free = Session(index.atlas, l5, seed=0, index=index)
    k = free.insert_needle(e, d, depth, length_mm=75, t=10.0)
    free.withdraw(k, 2.0, t=61.0)
