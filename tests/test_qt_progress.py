"""The window's Progress tab, "Continue course", a progress database that is down, and the
confirmation before leaving an exam (issue 17's window part, issue 18's last item).

Driven through the real window under Xvfb (pytest-qt); the dialogs are patched."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt", reason="pytest-qt is needed to drive the window")

from PySide6 import QtCore, QtWidgets  # noqa: E402

from imssim.core.engines.needle import Placement  # noqa: E402

Qt = QtCore.Qt
CASE = "l5-radiculopathy-low-back"


@pytest.fixture(autouse=True)
def _private(tmp_path, monkeypatch):
    """A private recordings folder, data folder (SQLite progress store) and settings."""
    monkeypatch.setenv("IMSSIM_RECORDINGS_DIR", str(tmp_path / "recordings"))
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMSSIM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("IMSSIM_TRAINEE", "ann")
    monkeypatch.delenv("IMSSIM_DB_URL", raising=False)


@pytest.fixture
def answers(monkeypatch):
    """QMessageBox.question patched: answers are taken from the list (Yes when it is empty);
    ``answers.asked`` holds each question's title."""
    B = QtWidgets.QMessageBox

    class Answers(list):
        asked: list = []

    a = Answers()
    a.asked = []

    def question(parent, title, text, *args, **kw):
        a.asked.append(title)
        return a.pop(0) if a else B.Yes

    monkeypatch.setattr(B, "question", question)
    return a


def make(qtbot, atlas, index):
    from imssim.qt.window import MainWindow

    w = MainWindow(atlas, index=index)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def needle_at_locus(w, structure="multifidus_L5_r"):
    """A needle through the skin at the case's trigger locus in ``structure`` (through the controller)."""
    c = w.controller
    locus = next(l for l in c.session.physiology.loci if l.structure == structure)
    target = np.asarray(locus.xyz, float)
    hit = c.index.snap_to_skin(target + np.array([0, 200.0, 0]), [0, -1.0, 0])
    c.set_tool("needle")
    # the L5 locus lies ~51 mm under the skin straight behind it (the axis of the muscle,
    # under the fascia and the erector spinae): a 60 mm needle
    c.set_needle_length(60.0)
    n = c.place_needle_at(hit.point, hit.normal)
    depth = c.aim_at(target)
    c.advance(depth)
    return n


def treat_segment(w, pistons=6):
    """The L5 segment treated in the window: the right L5 multifidus needled at its locus and pistoned."""
    c = w.controller
    needle_at_locus(w)
    assert c.readout()["tip_id"] == "multifidus_L5_r"
    for _ in range(pistons):
        c.piston()


def test_a_finished_session_appears_in_the_progress_tab(qtbot, atlas, index, answers):
    w = make(qtbot, atlas, index)
    assert w.progress.trainee == "ann" and "ann" in w.trainee_action.text()
    assert w.open_scenario(CASE)
    treat_segment(w)
    w.finish_button.click()
    # saved at once: the report says so, and the status bar
    assert "Saved to ann's progress" in w.report_dialog.note.text()
    assert "Saved to ann's progress" in w.status.currentMessage()
    w.report_dialog.close()
    w.show_progress()
    assert w.central.currentWidget() is w.progress_view
    assert not w.explore_dock.isVisible() and not w.needle_dock.isVisible()  # the tab takes the window
    qtbot.waitUntil(lambda: not w.progress_view.dirty, timeout=20000)
    pv = w.progress_view
    assert pv.table.rowCount() == 1
    cells = [pv.table.item(0, k).text() for k in range(pv.table.columnCount())]
    assert cells[1] == CASE and cells[2] == "practice" and cells[3] == ""  # not a course session
    assert cells[5] == f"{w.controller.report.total:.0f}%"
    assert cells[6] == ("pass" if w.controller.report.passed else "FAIL")
    # the same plots as `imssim progress --html`
    assert pv.plot_titles()[:3] == ["Score over attempts", "Each metric's trend",
                                    "Level error and danger clearance over time"]
    assert all(not pm.isNull() and pm.width() > 500 for _, pm in pv._pixmaps)
    assert "1 session(s)" in pv.info.text() and "sqlite" in pv.info.text()
    # a second attempt appears on top of the table
    w.show_progress(False)
    assert w.explore_dock.isVisible() and w.needle_dock.isVisible()
    w.new_attempt()
    w.finish()
    w.report_dialog.close()
    w.show_progress()
    qtbot.waitUntil(lambda: not w.progress_view.dirty, timeout=20000)
    assert pv.table.rowCount() == 2 and pv.table.item(0, 0).text() == "2"


def test_continue_course_opens_the_next_session_with_the_earlier_releases(qtbot, atlas, index, answers):
    w = make(qtbot, atlas, index)
    # nothing to continue yet: said, nothing changes
    s0 = w.controller.session
    assert not w.continue_course()
    assert "No course started yet" in w.last_error and CASE in w.last_error
    assert w.controller.session is s0
    w.error_box.close()
    # a course case open: Continue course starts its first session
    assert w.open_scenario(CASE)
    assert w.continue_course()
    c = w.controller
    ps = c.patient_state
    assert ps is not None and ps.session == 1 and ps.case == CASE
    assert "Course: session 1 of 8" in w.brief.toPlainText()
    start = dict(ps.supersensitivity)
    treat_segment(w)
    w.finish()
    assert "Course session 1 is done; next time: session 2" in w.report_dialog.note.text()
    w.report_dialog.close()
    saved = w.progress.last_saved
    assert saved.row_id is not None and saved.record.course_session == 1
    released = {k for k, v in saved.next_state.supersensitivity.items() if v < start[k] - 1e-6}
    assert "multifidus_L5_r" in released
    w.close()

    # another day, a fresh window with no case open: Continue course finds the course
    w2 = make(qtbot, atlas, index)
    assert w2.controller.scenario is None
    assert w2.continue_course()
    c2 = w2.controller
    ps2 = c2.patient_state
    assert c2.scenario.id == CASE and ps2.session == 2
    # the patient as session 1 left them: the releases carried over, in the physiology too
    for k in start:
        assert ps2.supersensitivity[k] == pytest.approx(saved.next_state.supersensitivity[k])
        assert c2.session.muscle_state(k).supersensitivity == pytest.approx(ps2.supersensitivity[k])
    assert ps2.supersensitivity["multifidus_L5_r"] < start["multifidus_L5_r"]
    brief = w2.brief.toPlainText()
    assert "Course: session 2 of 8" in brief and "Pain" in brief
    assert "multifidus" in brief.lower() and "since the first session" in brief
    # the recording starts from that patient (a replay reproduces it)
    from imssim.core.training.recording import read_recording

    head = read_recording(c2.recording_path).header
    assert head["patient_state"]["session"] == 2
    treat_segment(w2)
    w2.finish()
    w2.report_dialog.close()
    assert w2.progress.last_saved.record.course_session == 2
    w2.show_progress()
    qtbot.waitUntil(lambda: not w2.progress_view.dirty, timeout=30000)
    pv = w2.progress_view
    assert [pv.table.item(r, 3).text() for r in range(pv.table.rowCount())] == ["2", "1"]
    assert "session 3 of 8 is next" in pv.info.text()
    assert {"The course's patient recovery curve", "Each muscle's release over the course"} <= set(pv.plot_titles())
    # Continue course from the Progress tab opens session 3 in the 3D view
    pv.continue_button.click()
    assert w2.central.currentWidget() is w2.view3d and c2.patient_state.session == 3


def test_a_database_that_is_down_is_named_and_loses_nothing(qtbot, atlas, index, answers, tmp_path, monkeypatch):
    from imssim.core.training.progress import pending_for

    db = tmp_path / "server" / "progress.sqlite"
    db.mkdir(parents=True)  # a folder where the database file should be: it cannot be opened
    url = f"sqlite:///{db}"
    monkeypatch.setenv("IMSSIM_DB_URL", url)
    w = make(qtbot, atlas, index)
    assert w.open_scenario(CASE)
    # Continue course cannot read the course: the message names the database, nothing changes
    s0 = w.controller.session
    assert not w.continue_course()
    assert str(db) in w.last_error and w.controller.session is s0
    w.error_box.close()
    # finishing: the attempt is kept, and the message says where and names the database
    treat_segment(w)
    w.finish()
    box = w.error_box
    assert box.isVisible() and "cannot be reached" in box.text() and str(db) in box.text()
    assert "not lost" in box.text() and str(db) in box.detailedText()
    assert "not saved" in w.report_dialog.note.text().lower() or "kept" in w.report_dialog.note.text()
    box.close()
    w.report_dialog.close()
    kept = pending_for(url)
    assert len(kept) == 1 and w.progress.waiting() == 1
    total = w.controller.report.total
    # the Progress tab says the database is down and that one attempt waits
    w.show_progress()
    qtbot.waitUntil(lambda: not w.progress_view.dirty, timeout=20000)
    pv = w.progress_view
    assert "cannot reach the progress database" in pv.info.text() and str(db) in pv.info.text()
    assert "1 finished attempt(s) waiting" in pv.info.text() and pv.save_button.isEnabled()
    # still down: trying again keeps it
    pv.save_button.click()
    assert len(pending_for(url)) == 1
    w.error_box.close()
    # the database is back: the waiting attempt is saved, nothing lost
    db.rmdir()
    pv.save_button.click()
    assert pending_for(url) == [] and w.progress.waiting() == 0
    assert pv.table.rowCount() == 1 and pv.table.item(0, 5).text() == f"{total:.0f}%"
    assert not pv.save_button.isEnabled()


def test_leaving_an_exam_asks_first(qtbot, atlas, index, answers):
    from imssim.core.training.progress import ProgressStore
    from imssim.core.training.recording import read_recording

    No, Yes = QtWidgets.QMessageBox.No, QtWidgets.QMessageBox.Yes
    w = make(qtbot, atlas, index)
    assert w.open_scenario(CASE)
    c = w.controller
    w.mode_combo.setCurrentText("exam")
    assert c.mode == "exam" and answers.asked == []  # entering an exam asks nothing
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=12, side="right")
    c.set_tool("needle")
    c.place_needle_at(pl.entry, pl.normal)
    c.advance(8)
    s = c.session
    changes = list(s.mode_changes)
    # cancelled: nothing changes
    answers += [No, No, No, No, No]
    w.mode_combo.setCurrentText("practice")
    assert c.mode == "exam" and w.mode_combo.currentText() == "exam" and s.mode_changes == changes
    assert not w.open_scenario("s1-radiculopathy-piriformis")
    w.new_action.trigger()
    assert not w.resume(c.recording_path)
    assert not w.close()  # closing the window
    assert answers.asked == ["Leave the exam?"] * 5
    assert w.isVisible() and c.session is s and not c.finished and c.scenario.id == CASE
    assert len(c.needles) == 1 and s.mode == "exam"
    # confirmed: the exam ends, scored as it stood, recorded, and kept in the progress store
    assert w.open_scenario("s1-radiculopathy-piriformis")
    assert s.finished is not None and s.ended_by == "another case was opened"
    assert c.scenario.id == "s1-radiculopathy-piriformis" and c.session is not s
    assert "The exam ended" in w.status.currentMessage()
    rec = read_recording(s.recorder.path)
    fin = [a for a in rec.actions if a["name"] == "finish"]
    assert len(fin) == 1 and fin[0]["ended_by"] == "another case was opened"
    assert [r for r in rec.records if r.get("type") == "report"][0]["mode"] == "exam"
    # leaving by switching the mode, confirmed
    w.mode_combo.setCurrentText("exam")
    s2 = c.session
    w.mode_combo.setCurrentText("practice")
    assert s2.finished is not None and "exam to practice" in s2.ended_by
    # and by closing the window, confirmed
    w.new_action.trigger()  # after Finish: a new attempt (asks nothing: no exam is running)
    w.mode_combo.setCurrentText("exam")
    s3 = c.session
    assert answers.asked == ["Leave the exam?"] * 7
    assert s3 is not s2 and c.exam_running
    w.close()
    assert not w.isVisible() and s3.finished is not None and s3.ended_by == "the window was closed"
    with ProgressStore() as st:
        rows = st.summary_rows("ann")
    assert [(r["case_id"], r["mode"]) for r in rows] == [(CASE, "exam"), ("s1-radiculopathy-piriformis", "exam"),
                                                         ("s1-radiculopathy-piriformis", "exam")]


def test_an_attempt_finished_before_a_name_is_given_waits_for_it(qtbot, atlas, index, answers, monkeypatch):
    from imssim.core.training.progress import ProgressStore, remembered_trainee

    monkeypatch.delenv("IMSSIM_TRAINEE")
    w = make(qtbot, atlas, index)
    assert w.progress.trainee is None and w.trainee_action.text() == "Trainee..."
    assert w.open_scenario(CASE)
    treat_segment(w, pistons=1)
    w.finish()
    d = w.report_dialog
    assert "Not saved to your progress yet" in d.note.text() and d.name_button.isVisible()
    assert w.progress.waiting() == 1
    # the trainee says who they are: the waiting attempt is saved for them, and the name is remembered
    monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *a, **k: ("bob", True))
    d.name_button.click()
    assert w.progress.trainee == "bob" and remembered_trainee() == "bob" and w.progress.waiting() == 0
    assert "Saved to bob's progress" in d.note.text() and not d.name_button.isVisible()
    with ProgressStore() as st:
        assert [r["trainee"] for r in st.summary_rows()] == ["bob"]
