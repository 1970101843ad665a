"""Issue 18: the session is the one owner of an attempt; the app controller is a view over it.

Driven through the app controller with an off-screen plotter (no Qt widgets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imssim.core.engines.needle import Placement


@pytest.fixture
def ctl(tmp_path, monkeypatch, atlas, index):
    import pyvista as pv

    from imssim.app.controller import Controller

    monkeypatch.setenv("IMSSIM_RECORDINGS_DIR", str(tmp_path / "rec"))
    pl = pv.Plotter(off_screen=True, window_size=[400, 300])
    c = Controller(atlas, pl, index=index)
    c.render = lambda: None  # no frames needed here
    c.load_scenario("l5-radiculopathy-low-back")
    yield c
    c.session.close()
    pl.close()


def _beside_l5(c):
    return Placement.from_landmark(c.index, "L5_spinous", depth=0, lateral_mm=15, side="right")


def _records(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_trace_per_needle_move(ctl, monkeypatch):
    c = ctl
    pl = _beside_l5(c)
    c.set_tool("needle")
    calls = []
    real = c.index.query
    monkeypatch.setattr(c.index, "query", lambda *a, **k: calls.append(a) or real(*a, **k))
    c.place_needle_at(pl.entry, pl.normal)
    assert calls == []  # poised on the skin: nothing traced
    for move in (lambda: c.advance(10), lambda: c.advance(1), lambda: c.withdraw(2), c.piston,
                 lambda: c.aim(d_medial=4.0)):
        n = len(calls)
        move()
        assert len(calls) == n + 1  # the session's trace; the readout is built from it
    r = c.readout()
    assert r["tip_id"] == c.session.samples[-1].tip_structure or r["bone"]
    assert c.current.traversal is c.session.traces[c.current.k]


def test_leaving_an_exam_ends_the_attempt_and_is_recorded(ctl):
    c = ctl
    c.set_mode("exam")
    assert c.mode == "exam"
    recs = _records(c.recording_path)
    assert recs[0]["mode"] == "practice"  # the header: the mode it started in; then every change
    assert [(r["name"], r["mode"]) for r in recs[1:] if r.get("name") == "mode"] == [("mode", "exam")]
    pl = _beside_l5(c)
    c.set_tool("needle")
    c.place_needle_at(pl.entry, pl.normal)
    c.advance(20)
    path = c.recording_path
    c.set_mode("practice")  # what the Mode drop-down does
    assert c.finished and c.report is not None
    assert "exam to practice" in c.session.ended_by
    recs = _records(path)
    acts = [r for r in recs if r.get("type") == "action"]
    assert [a["name"] for a in acts][-2:] == ["mode", "finish"]
    assert acts[-2]["mode"] == "practice" and acts[-2]["previous"] == "exam"
    assert recs[-1]["type"] == "report" and recs[-1]["ended_by"] == c.session.ended_by
    # the replay (imssim replay, resume) ends it the same way
    from imssim.core.training.session import Session

    s = Session.replay(path, c.atlas, c.scenario, index=c.index)
    assert s.phase == "finished" and s.ended_by == c.session.ended_by
    assert s.finished.total == pytest.approx(c.report.total)


def test_entering_an_exam_mid_attempt_starts_a_clean_one(ctl):
    c = ctl
    pl = _beside_l5(c)
    c.palpate_at(pl.entry, pl.normal)
    c.mark_segment("L5")
    first = c.recording_path
    c.set_mode("exam")
    assert c.recording_path != first and c.mode == "exam"
    assert c.marked_segments == [] and c.palpated == [] and c.needles == []
    assert not c.labels_visible and not c.settings.targets_shown


def test_quiz_and_exam_hide_names_even_when_the_case_shows_them(ctl):
    c = ctl
    c.session.scenario.modes.quiz.labels = True  # a case that would show them: the mode wins
    c.set_mode("quiz")
    assert not c.labels_visible and not c.settings.targets_shown
    sid = c.targets[0].structure
    c.select_structure(sid)
    assert c.selected is None and "cannot be looked up" in c.feedback[-1][2]


def test_quiz_panel_and_score_agree_on_every_question_type(ctl, atlas):
    c = ctl
    items = c.quiz
    kinds = {q.type for q in items}
    assert kinds == {"multiple_choice", "pick_structure"}
    mc = next(i for i, q in enumerate(items) if q.type == "multiple_choice")
    pick = next(i for i, q in enumerate(items) if q.type == "pick_structure")
    # a single index or a list, a structure id or its name: one verdict, the session's
    right = items[pick].answer[0]
    cases = [(mc, items[mc].answers[0]), (mc, list(items[mc].answers)), (mc, [0]),
             (pick, atlas.get(right).name), (pick, atlas.get(right).id), (pick, None)]
    for i, ans in cases:
        r = c.answer_quiz(i, ans)
        assert r["correct"] == c.session.quiz_answers[c.session.quiz_results[i].item], (i, ans)
    c.answer_quiz(mc, items[mc].answers[0])
    c.answer_quiz(pick, atlas.get(right).name)  # a name: right, and scored right
    shown = {i: a["correct"] for i, a in c.quiz_answers.items()}
    rep = c.finish()
    assert shown == {mc: True, pick: True}
    assert rep.quiz["correct"] == sum(shown.values()) == 2


def test_nothing_alters_a_finished_attempt_and_a_new_one_starts_clean(ctl):
    c = ctl
    pl = _beside_l5(c)
    c.set_tool("needle")
    c.place_needle_at(pl.entry, pl.normal)
    c.advance(15)
    c.mark_segment("L5")
    rep = c.finish()
    before = (len(c.session.needles), len(c.session.samples), list(c.marked_segments), len(c.session.palpations))
    c.place_needle_at(pl.entry, pl.normal)
    c.advance(5)
    c.piston()
    c.palpate_at(pl.entry, pl.normal)
    c.mark_segment("S1")
    c.answer_quiz(0, 1)
    assert (len(c.session.needles), len(c.session.samples), list(c.marked_segments),
            len(c.session.palpations)) == before
    assert len(c.needles) == 1 and c.session.quiz_results == {} and c.report is rep
    assert "finished and scored" in c.feedback[-1][2]
    old = c.recording_path
    c.new_attempt()
    assert c.recording_path != old and not c.finished
    assert c.needles == [] and c.marked_segments == [] and c.palpated == [] and c.quiz_answers == {}
    assert c.feedback == [] and c.overlay.marker_count("missed") == 0


def test_every_key_that_cannot_act_says_why(ctl):
    c = ctl
    said = []
    for key in ("Up", "Down", "T", "R", "A", "Tab", "Delete"):
        n = len(c.feedback)
        assert c.on_key(key)
        assert len(c.feedback) == n + 1, key
        said.append(c.feedback[-1][2])
    assert all("press N" in s or "No needles" in s for s in said)
    pl = _beside_l5(c)
    c.place_needle_at(pl.entry, pl.normal)
    for key, words in (("T", "through the skin"), ("Down", "nothing to withdraw"), ("R", "not in yet")):
        c.on_key(key)
        assert words in c.feedback[-1][2], key
    c.advance(3)  # skin and fat: not a muscle
    if c.readout()["tip_id"] is None or c.atlas.structures[c.readout()["tip_id"]].kind != "muscle":
        c.on_key("T")
        assert any("between structures" in f[2] for f in c.feedback[-3:])


def test_palpation_lives_in_the_session_and_resumes(ctl, tmp_path):
    c = ctl
    pl = _beside_l5(c)
    found = c.palpate_at(pl.entry, pl.normal)
    assert any(f["kind"] == "tender_point" for f in found)
    assert c.session.palpations and c.session.palpations[-1].found
    path = c.recording_path
    from imssim.core.training.session import resume_case

    case, s = resume_case(path, c.bodies)
    assert [p.kinds for p in s.palpations] == [p.kinds for p in c.session.palpations]
    s.close()


def test_tightness_in_words():
    from imssim.core.engines.wording import tightness, tightness_change

    assert tightness(0.9) == "marked" and tightness(0.5) == "moderate" and tightness(0.05) == "eased"
    assert tightness_change(0.90, 0.63) == "tightness eased: marked -> moderate"


def test_the_reported_total_time_is_the_session_time(atlas, index, l5):
    from imssim.core.training.session import Session

    from needle_helpers import needle_into

    s = Session(atlas, l5, index=index)
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, t=10.0)
    rep = s.finish(t=95.0)
    tech = rep.metric("technique")
    assert tech.details[0]["total_time_s"] == pytest.approx(95.0)
    assert "total 95 s" in tech.sentence and "mm²" not in tech.sentence


def test_open_case_reads_the_scenario_once_and_keeps_one_index_per_build(atlas, index, monkeypatch):
    from imssim.core.training import case as case_mod
    from imssim.core.training.scenario import loader

    bodies = case_mod.BodyBuilds(atlas, index)
    reads = []
    real = loader.load_document_and_scenario
    monkeypatch.setattr("imssim.core.training.scenario.files.load_document_and_scenario",
                        lambda *a, **k: reads.append(a) or real(*a, **k))
    c1 = case_mod.open_case("l5-radiculopathy-low-back", bodies)
    assert len(reads) == 1
    assert c1.atlas is atlas and c1.index is index and c1.scenario.id == "l5-radiculopathy-low-back"
    assert c1.loci and all(isinstance(p, np.ndarray) or p is None for _, p in c1.loci)


def test_placements_resting_on_bone_are_sampled_as_a_session_samples_them(index, l5):
    """grade_placements' batch goes through the session's sample path: a needle stopped by
    bone names the muscle just above it exactly as a live move does (one rule, in scoring)."""
    from imssim.core.engines.needle import Needle
    from imssim.core.training.placements import NeedleSpec
    from imssim.core.training.session import grade_placements

    specs = []
    for lm, lat in (("L5_spinous", 15), ("L4_spinous", 20), ("L3_spinous", 25), ("L5_spinous", 30)):
        pl = Placement.from_landmark(index, lm, depth=110, lateral_mm=lat, side="right")
        specs.append(NeedleSpec(pl, Needle(125.0, 0.25)))
    fast, fs = grade_placements(index.atlas, l5, specs, index, batch=True, return_session=True)
    slow, ss = grade_placements(index.atlas, l5, specs, index, batch=False, return_session=True)
    on_bone = [k for k, s in enumerate(ss.samples) if s.bone is not None]
    assert on_bone, "no needle reached bone: choose deeper placements"
    for k in on_bone:
        assert fs.samples[k].tip_structure == ss.samples[k].tip_structure
        assert fs.samples[k].bone == ss.samples[k].bone
    assert fast.total == pytest.approx(slow.total, abs=1e-6)
