"""Issue 17, the course: a case run as 8 sessions, the patient's state carried over; the case's
objectives in the score; every session saved (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from imssim.core.training.course import Course, CourseError, PatientState
from imssim.core.training.progress import ProgressStore, course_state_for, save_finished
from imssim.core.training.scenario import ScenarioError, derive_targets, load_scenario
from imssim.core.training.session import Session

from needle_helpers import needle_into
from progress_helpers import db_url, treat_targets, treat_well  # noqa: F401  (fixture)


def _wrong_segment_targets(scenario, atlas):
    """The targets the case would have one segment up (e.g. L3 for an L5 case): wrong-segment treatment."""
    from imssim.core.model.atlas import SEGMENTS

    seg = scenario.diagnosis.segments[0]
    up = SEGMENTS[SEGMENTS.index(seg) - 2]
    wrong = scenario.model_copy(update={"diagnosis": scenario.diagnosis.model_copy(update={"segments": [up]})})
    return [t.structure for t in derive_targets(wrong, atlas) if t.structure not in
            {m.structure for m in scenario.supersensitive_muscles}][:6]


def _run_course(atlas, index, sc, how, store=None, who="ann"):
    course = Course(sc, atlas)
    state = course.start()
    reports, states = [], [state]
    wrong = _wrong_segment_targets(sc, atlas)
    for k in range(course.sessions):
        if store is not None:
            state = course_state_for(store, sc, who, atlas)
        s = Session(atlas, sc, seed=k, index=index, patient_state=state)
        r = treat_well(s) if how == "good" else treat_targets(s, wrong)
        if store is not None:
            state = save_finished(s, who, store=store, scenario=sc, state=state, atlas=atlas).next_state
        else:
            state = course.advance(state, r)
        reports.append(r)
        states.append(state)
    return reports, states


def test_eight_good_sessions_resolve_the_patient_and_wrong_segment_ones_do_not(atlas, index, l5):
    assert l5.course is not None and l5.course.sessions == 8
    good, gs = _run_course(atlas, index, l5, "good")
    bad, bs = _run_course(atlas, index, l5, "wrong")
    # good treatment: the segment is treated each time, the patient resolves within the course
    assert all(r.passed for r in good)
    assert gs[-1].resolved and gs[-1].pain <= 1 and gs[-1].tender == []
    assert gs[-1].rom_percent > 95 > gs[0].rom_percent
    burdens = [s.burden for s in gs]
    assert all(b2 < b1 for b1, b2 in zip(burdens, burdens[1:4]))  # falls session after session at first
    first_resolved = next(k for k, s in enumerate(gs) if s.resolved)
    assert first_resolved <= l5.course.expected_sessions  # as fast as the case expects, or faster
    # wrong segment: nothing releases; the patient is no better (slightly worse) after 8 sessions
    assert not any(r.passed for r in bad)
    assert not any(s.resolved for s in bs)
    assert bs[-1].burden >= 1.0 and bs[-1].pain >= gs[0].pain
    assert set(bs[-1].tender) == {m.structure for m in l5.supersensitive_muscles}


def test_exam_findings_change_from_session_to_session(atlas, index, l5):
    course = Course(l5, atlas)
    s0 = course.start()
    first = Session(atlas, l5, seed=0, index=index, patient_state=s0)
    gm = next(m.structure for m in l5.supersensitive_muscles if "gluteus" in m.structure)
    assert first.feel(gm).tender and first.feel(gm).taut_band
    at_first = first.feel(gm).supersensitivity
    r = treat_well(first)
    s1 = course.advance(s0, r)
    assert s1.session == 2 and s1.pain < s0.pain
    later = Session(atlas, l5, seed=1, index=index, patient_state=s1)
    assert later.feel(gm).supersensitivity < at_first * 0.5  # carried over: the next session starts lower
    assert later.muscle_state(gm).shortening < first.muscle_state(gm).initial * first.muscle_state(gm).max_shortening
    text = " ".join(s1.findings(atlas) + s1.changes_since_last(atlas))
    assert f"pain {s1.pain}/10" in text and f"Pain {s0.pain}/10 last time" in text


def test_local_needling_without_the_segment_holds_little_and_relapses(atlas, index, l5):
    """Twitches in the peripheral muscles but no paraspinal needle: the release mostly comes back."""
    course = Course(l5, atlas)
    st = course.start()
    peripheral = [m.structure for m in l5.supersensitive_muscles if not m.structure.startswith("multifidus")]
    s = Session(atlas, l5, seed=0, index=index, patient_state=st)
    r = treat_well(s, only=peripheral)
    assert any(v["twitches"] for k, v in r.muscles.items() if k in peripheral)
    assert not course.segment_treated(r)
    nxt = course.advance(st, r)
    for k in peripheral:  # at most off_segment_carry_over of the release held
        released = st.supersensitivity[k] - r.muscles[k]["end"]
        assert nxt.supersensitivity[k] >= st.supersensitivity[k] - l5.course.off_segment_carry_over * released - 1e-9
    # a patient who had improved flares after relapse.after_missed_sessions untreated sessions
    improved = PatientState.from_dict({**st.to_dict(), "supersensitivity": {k: v * 0.5 for k, v in
                                                                            st.supersensitivity.items()}})
    empty = Session(atlas, l5, seed=0, index=index, patient_state=improved).finish(t=1.0)
    a = course.advance(improved, empty)
    b = course.advance(a, empty)
    assert not a.history[-1]["relapse"] and b.history[-1]["relapse"]
    assert b.burden > a.burden + 0.1
    assert "flared" in " ".join(b.changes_since_last(atlas))


def test_one_paraspinal_needle_no_longer_passes_a_case_that_asks_for_the_myotome(index, l5):
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s = Session(index.atlas, l5, seed=0, index=index)
    s.insert_needle(e, d, depth, length_mm=75)
    r = s.finish()
    assert r.total >= l5.scoring.pass_mark  # the number alone would pass ...
    assert not r.passed  # ... but the case's objectives are not met
    assert r.summary.startswith("FAIL (objectives)") and "peripheral myotome: 0 of" in r.summary
    assert {o["name"]: o["met"] for o in r.objectives} == {"paraspinal": True, "peripheral": False}
    # the same needle plus a peripheral myotome muscle passes
    s2 = Session(index.atlas, l5, seed=0, index=index)
    s2.insert_needle(e, d, depth, length_mm=75)
    e2, d2, dep2 = needle_into(index, "gluteus_medius_r")
    s2.insert_needle(e2, d2, dep2, length_mm=75)
    r2 = s2.finish()
    assert r2.passed and r2.objectives_met


def test_objectives_can_be_relaxed_by_the_case(atlas, index, l5):
    relaxed = l5.model_copy(update={"scoring": l5.scoring.model_copy(update={
        "objectives": l5.scoring.objectives.model_copy(update={"peripheral_min": 0})})})
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s = Session(atlas, relaxed, seed=0, index=index)
    s.insert_needle(e, d, depth, length_mm=75)
    assert s.finish().passed


def test_course_block_is_validated_with_line_numbers(tmp_path, l5):
    src = (l5.path if l5.path else None)
    text = open(src).read().replace("  expected_sessions: 6", "  expected_sessions: 12")
    with pytest.raises(ScenarioError) as e:
        load_scenario(tmp_path / "x.yaml", text=text)
    msg = str(e.value)
    assert "expected_sessions (12) is more than the course's sessions (8)" in msg and ":" in msg
    text2 = open(src).read().replace("  sessions: 8", "  sesions: 8")
    with pytest.raises(ScenarioError, match="sessions"):
        load_scenario(tmp_path / "y.yaml", text=text2)


def test_three_shipped_cases_have_a_course_and_a_case_without_one_says_so(atlas):
    from imssim.core.training.scenario import library

    with_course = [p.stem for p in library() if load_scenario(p).course is not None]
    assert len(with_course) >= 3
    plain = next(p for p in library() if load_scenario(p).course is None)
    with pytest.raises(CourseError, match="has no course"):
        Course(load_scenario(plain, atlas), atlas)


def test_every_course_session_is_saved_with_the_patient_before_and_after(atlas, index, l5, db_url):
    with ProgressStore(db_url) as store:
        reports, states = _run_course(atlas, index, l5, "good", store=store, who="ann")
        rows = store.sessions(student="ann", with_needles=True)
        assert [r["course_session"] for r in rows] == list(range(1, 9))
        assert [round(r["total"], 2) for r in rows] == [round(x.total, 2) for x in reports]
        assert all(len(r["needles"]) == r["needle_count"] == len(x.needles) for r, x in zip(rows, reports))
        assert rows[0]["patient"]["before"]["pain"] == l5.course.initial_pain
        assert rows[-1]["patient"]["after"]["resolved"] is True
        assert rows[0]["events"].get("twitch", 0) > 0
        # the next session would start a fresh course (this one is complete)
        assert course_state_for(store, l5, "ann", atlas).session == 1


def test_a_course_session_recording_replays_from_the_state_it_started_in(atlas, index, l5, tmp_path):
    from imssim.core.training.recording import read_recording

    course = Course(l5, atlas)
    s0 = course.start()
    s1 = course.advance(s0, treat_well(Session(atlas, l5, seed=0, index=index, patient_state=s0)))
    live = Session(atlas, l5, seed=3, index=index, patient_state=s1, record_to=tmp_path / "s2.jsonl")
    r = treat_well(live)
    rec = read_recording(tmp_path / "s2.jsonl")
    assert rec.header["patient_state"]["session"] == 2
    again = Session.replay(rec, atlas, l5, index=index)
    assert [e.to_dict() for e in again.events][: len(rec.events)] == rec.events  # as `imssim replay` checks
    assert len(rec.events) == len(live.events) and any(e["kind"] == "twitch" for e in rec.events)
    assert again.finish().total == r.total and again.finished.muscles == r.muscles
    # without the state the same actions meet a fresher patient: different events
    import dataclasses

    bare = dataclasses.replace(rec, header={k: v for k, v in rec.header.items() if k != "patient_state"})
    fresh = Session.replay(bare, atlas, l5, index=index)
    assert fresh.finish().muscles != r.muscles
