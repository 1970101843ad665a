"""The trainee's window, driven through its real handlers (pytest-qt, under Xvfb).

The 3D view needs a real OpenGL context: pytest-xvfb starts a virtual X server when no
DISPLAY is set (Qt's 'offscreen' platform cannot host QOpenGLWidget).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt", reason="pytest-qt is needed to drive the window")

from PySide6 import QtCore, QtGui  # noqa: E402

from imssim.core.model.atlas import Atlas, Landmark, Structure  # noqa: E402
from imssim.core.engines.needle import Placement  # noqa: E402
from imssim.render.views import world_to_display  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
Qt = QtCore.Qt


@pytest.fixture(autouse=True)
def _recordings(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_RECORDINGS_DIR", str(tmp_path / "recordings"))
    # finished attempts go to a private progress store (SQLite in the test's data folder)
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMSSIM_TRAINEE", "tester")
    monkeypatch.delenv("IMSSIM_DB_URL", raising=False)


@pytest.fixture(autouse=True)
def questions(monkeypatch):
    """The window's yes/no questions (leaving an exam), answered Yes; the list holds each title."""
    from PySide6 import QtWidgets

    asked = []

    def question(parent, title, text, *a, **k):
        asked.append(title)
        return QtWidgets.QMessageBox.Yes

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    return asked


def make(qtbot, atlas, index=None, mode="practice"):
    from imssim.qt.window import MainWindow

    w = MainWindow(atlas, mode=mode, index=index)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitActive(w)  # window shortcuts (keys) need the window active
    w.view3d.interactor.setFocus()
    w.controller.view("posterior")
    return w


@pytest.fixture
def win(qtbot, atlas, index):
    return make(qtbot, atlas, index)


def click_world(w, point):
    """Click (through the controller's click handler) on the pixel showing a world point."""
    w.controller.render()
    x, y = world_to_display(w.view3d, point)
    w.controller.on_click(x, y)


def _box(sid, lo, hi, kind, harm=None, name=None):
    import trimesh

    m = trimesh.creation.box(bounds=[lo, hi])
    return Structure(sid, name or sid, kind, "midline", "thoracic", m.vertices, m.faces, harm=harm)


@pytest.fixture
def toy_atlas():
    """Skin over a muscle over a 'lung' (danger) over a bone slab: a needle from behind meets each."""
    return Atlas("toy", [
        _box("skin", (-100, -60, 0), (100, 60, 300), "skin", name="skin"),
        _box("trap", (-90, 30, 10), (90, 55, 290), "muscle", name="test muscle"),  # depth 5-30
        _box("lung", (-90, 0, 10), (90, 25, 290), "organ", harm="pneumothorax", name="test lung"),  # 35-60
        _box("rib", (-95, -20, 5), (95, -10, 295), "bone", name="test bone"),  # from depth 70
    ], [Landmark("T6_spinous", "T6 spinous process", (0.0, 60.0, 150.0))])


def test_window_shows_the_body_and_saves_a_picture(win, tmp_path):
    p = tmp_path / "w.png"
    assert win.save_screenshot(str(p))
    img = QtGui.QImage(str(p))
    assert img.width() >= 1200 and img.height() >= 750
    # the 3D view is not blank: many distinct colours where the body is drawn
    v = win.view3d.geometry()
    cols = {img.pixel(x, y) for x in range(v.x() + 10, v.right() - 10, 9) for y in range(v.y() + 40, v.bottom(), 9)}
    assert len(cols) > 200
    # every preset view, layer and region control exists and the structure list names the atlas
    assert set(win.view_buttons) >= {"posterior", "lateral", "neck", "thorax", "lumbar", "buttock", "leg"}
    assert {"skin", "muscle", "bone"} <= set(win.kind_checks)
    assert "lumbar" in win.region_checks
    assert win.structure_model.rowCount() == len(win.atlas.structures)


def test_preset_views_aim_at_their_landmarks(win, atlas):
    for name, lm in (("lumbar", "L3_spinous"), ("neck", "C4_spinous"), ("thorax", "T6_spinous")):
        win.view_buttons[name].click()
        f = np.array(win.view3d.camera.focal_point)
        assert np.linalg.norm(f[2] - atlas.landmark(lm).xyz[2]) < 60, name
        assert np.array(win.view3d.camera.position)[1] > f[1]  # from behind


def test_layer_toggles_and_structure_filter(win, atlas):
    bone = next(s.id for s in atlas if s.kind == "bone")
    win.kind_checks["bone"].setChecked(False)
    assert not win.controller.scene.actors[bone].GetVisibility()
    win.kind_checks["bone"].setChecked(True)
    win.kind_sliders["bone"].setValue(40)
    assert abs(win.controller.scene.actors[bone].GetProperty().GetOpacity() - 0.4) < 1e-6
    win.filter_edit.setText("multifidus L5")
    rows = [win.structure_proxy.index(r, 0).data() for r in range(win.structure_proxy.rowCount())]
    assert rows and all("multifidus L5" in r for r in rows)
    ix = win.structure_proxy.index(0, 0)
    win.structure_list.clicked.emit(ix)
    assert win.controller.selected == win.structure_proxy.data(ix, Qt.UserRole)
    assert win.controller.overlay.highlighted == [win.controller.selected]


def test_hover_names_a_structure_and_exam_hides_it(win, atlas):
    win.view_buttons["lumbar"].click()
    win.kind_checks["skin"].setChecked(False)
    x, y = world_to_display(win.view3d, atlas.landmark("L4_spinous").xyz + [0, 5, 0])
    name = win.controller.on_hover(x, y)
    assert name and win.hover_label.text() == name
    win.set_mode("exam")
    assert win.controller.on_hover(x, y) is None and win.hover_label.text() == ""
    assert not win.structure_list.isVisible()
    assert win.timer_label.text().startswith("EXAM")


def test_needle_by_click_wheel_and_keys_reaches_multifidus(win, atlas, index, qtbot):
    win.view_buttons["lumbar"].click()
    target = Placement.from_landmark(index, "L5_spinous", depth=30, lateral_mm=15, side="right")
    qtbot.keyClick(win, Qt.Key_N)
    assert win.controller.tool == "needle"
    click_world(win, target.entry)
    n = win.controller.current
    assert n is not None and np.linalg.norm(n.entry - np.array(target.entry)) < 3.0
    # advance with real wheel events sent to the 3D view: the needle goes in, the camera stays
    cam = np.array(win.view3d.camera.position)
    pos = QtCore.QPointF(200, 200)
    for _ in range(17):
        ev = QtGui.QWheelEvent(pos, pos, QtCore.QPoint(), QtCore.QPoint(0, 120), Qt.NoButton, Qt.NoModifier,
                               Qt.NoScrollPhase, False)
        QtCore.QCoreApplication.sendEvent(win.view3d.interactor, ev)
    assert np.allclose(cam, win.view3d.camera.position)
    assert n.depth == pytest.approx(17.0)
    # on to 25 mm: multifidus L5 lies at 23-26 mm here under 2.8 mm of skin, 13 mm of
    # lumbar fat (average build) and the latissimus aponeurosis
    for _ in range(8):
        qtbot.keyClick(win, Qt.Key_Up)
    assert n.depth == pytest.approx(25.0)
    r = win.controller.readout()
    assert r["tip_id"].startswith("multifidus_L"), (r, win.r_layers.text())
    assert "multifidus" in win.r_tip.text()
    assert win.r_layers.text().startswith("skin")
    assert "25.0 mm" in win.r_depth.text()
    # aiming below the fat is a redirection: withdraws to the subcutaneous layer
    qtbot.keyClick(win, Qt.Key_A)
    assert n.medial_deg == pytest.approx(2.0) and n.depth == pytest.approx(5.0)
    assert "medial" in win.r_angles.text()
    # a second needle, then remove it
    click_world(win, Placement.from_landmark(index, "L4_spinous", depth=0, lateral_mm=12, side="right").entry)
    assert len(win.controller.needles) == 2 and win.r_needle.text().startswith("2 of 2")
    qtbot.keyClick(win, Qt.Key_Delete)
    assert len(win.controller.needles) == 1


def test_clicking_off_the_body_places_nothing(win):
    win.controller.set_tool("needle")
    win.controller.on_click(3, 3)
    assert not win.controller.needles
    assert "missed the body" in win.feedback_view.toPlainText()


def test_bone_stops_the_needle_and_danger_stops_the_attempt(qtbot, toy_atlas):
    w = make(qtbot, toy_atlas)
    c = w.controller
    w.length_combo.setCurrentIndex(w.length_combo.findData(75))
    c.set_tool("needle")
    click_world(w, (20.0, 60.0, 150.0))
    n = c.current
    assert n.side == "left" and abs(n.entry[1] - 60) < 1e-3
    c.advance(20)  # skin -> muscle
    assert c.readout()["tip_id"] == "trap"
    assert c.readout()["clearance_mm"] == pytest.approx(15, abs=1.5)
    c.advance(20)  # into the lung: practice mode stops the attempt
    assert "lung" in c.needles[0].breached
    assert n.stopped and "pneumothorax" in n.stopped
    assert "STOPPED" in w.r_clear.text()
    d = n.depth
    c.advance(5)
    assert n.depth == d  # cannot go further until withdrawn
    assert "Attempt stopped" in w.feedback_view.toPlainText()
    c.withdraw(40)
    assert not n.stopped
    c.set_mode("exam")
    c.advance(75)  # exam: recorded, not stopped, and bone stops the needle at 70 mm
    assert not n.stopped
    assert n.traversal.bone_contact is not None and n.traversal.bone_contact.structure == "rib"
    assert n.depth == pytest.approx(70.0, abs=0.5)
    assert c.readout()["tip"] == "(hidden)"
    assert "Danger event recorded" in w.feedback_view.toPlainText()


def test_help_and_about(win, atlas):
    d = win.show_help()
    rows = win.shortcut_rows()
    assert any(k == "Up" for k, _ in rows) and any(k == "Wheel" for k, _ in rows)
    assert "[Up]" in win.actions["Up"].toolTip()
    assert atlas.attributions[0].source in win.about_html()
    win.show_about().close()
    d.close()


def test_cli_screenshot_starts_the_real_window_offscreen(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    p = subprocess.run([sys.executable, "-m", "imssim.cli", "run", "--screenshot", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    img = QtGui.QImage(str(out))
    assert img.width() == 1280 and img.height() == 800
    rec = Path(os.environ["IMSSIM_RECORDINGS_DIR"])
    assert not rec.exists() or not any(rec.iterdir())  # a picture is not an attempt: nothing recorded


def test_scenario_brief_palpation_segment_and_targets(win, atlas, index):
    assert win.open_scenario("l5-radiculopathy-low-back")
    c = win.controller
    text = win.brief.toPlainText()
    assert "46-year-old male" in text and "Complaint" in text and "Palpate" in text
    assert "L5" not in win.segments_label.text()
    # palpate beside L5 (the scenario's tender point is 15 mm right of the spinous process)
    c.set_tool("palpate")
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=15, side="right")
    click_world(win, pl.entry)
    assert any(f["kind"] == "tender_point" for f in c.palpated)
    assert "Tender point" in win.feedback_view.toPlainText()
    assert c.overlay.marker_count("palpation") == 1
    # far from every finding: nothing
    far = Placement.from_landmark(index, "acromion_l", depth=0, approach="posterior")
    c.palpate_at(far.entry, far.normal)
    assert c.palpated[-1]["kind"] == "none"
    win.segment_combo.setCurrentText("L5")
    win.mark_button.click()
    assert c.marked_segments == ["L5"] and "L5" in win.segments_label.text()
    win.targets_check.setChecked(True)
    tid = c.targets[0].structure
    col = c.scene.actors[tid].GetProperty().GetColor()
    assert col[1] > 0.7 and col[0] < 0.3  # green
    win.set_mode("exam")
    assert not win.targets_check.isEnabled() and not c.targets_visible
    assert c.scene.actors[tid].GetProperty().GetColor()[1] < 0.7


def test_bad_scenario_file_is_reported_and_keeps_the_work(win, tmp_path, index):
    win.controller.set_tool("needle")
    pl = Placement.from_landmark(index, "L4_spinous", depth=0, lateral_mm=15, side="right")
    win.controller.place_needle_at(pl.entry, pl.normal)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nid: Bad Id\n")
    assert not win.open_scenario(str(bad))
    assert "bad.yaml" in win.last_error
    assert len(win.controller.needles) == 1


def test_quiz_choice_and_pick_structure(win, atlas):
    assert win.open_scenario("l5-radiculopathy-low-back")
    win.set_mode("quiz")
    # quiz mode hides names: no structure list or filter, no hover names (docs/window.md)
    assert not win.structure_list.isVisible() and not win.filter_edit.isVisible()
    assert win.controller.on_hover(640, 400) is None and win.hover_label.text() == ""
    qp = win.quiz_panel
    assert win.tabs.currentIndex() == 2 and "segment" in qp.question.text()
    qp.buttons[1].setChecked(True)  # L4: wrong
    qp.answer_button.click()
    assert "Not quite" in qp.result.text()
    qp.buttons[2].setChecked(True)  # L5: right
    qp.answer_button.click()
    assert "Right." in qp.result.text()
    qp.next_button.click()
    assert win.controller.quiz_pending == 1 and qp.pick_hint.isVisible()
    # answer by clicking the body: aim at the right L5 multifidus with the skin hidden
    win.controller.view("lumbar")
    win.kind_checks["skin"].setChecked(False)
    target = atlas.structures["multifidus_L5_r"]
    c = win.controller
    # a surface point of the muscle facing the camera
    cam = np.array(win.view3d.camera.position)
    v = target.vertices
    p = v[np.argmin(np.linalg.norm(v - cam, axis=1))]
    x, y = world_to_display(win.view3d, p + (cam - p) / np.linalg.norm(cam - p) * 0.5)
    sid = c.pick(x, y)
    c.on_click(x, y)
    r = c.quiz_answers[1]
    assert r["answer"] == sid and r["correct"] == (sid == "multifidus_L5_r")
    assert c.quiz_pending is None
    assert "Answered 2 of 2" in qp.total.text()


def _to_locus(win, index, structure="multifidus_L5_r"):
    """Put a needle through the skin straight at the scenario's trigger locus in ``structure``."""
    c = win.controller
    locus = next(l for l in c.session.physiology.loci if l.structure == structure)
    target = np.asarray(locus.xyz, float)
    hit = index.snap_to_skin(target + np.array([0, 200.0, 0]), [0, -1.0, 0])
    d = target - hit.point
    depth = float(np.linalg.norm(d))
    c.set_tool("needle")
    # the case's shortest needle that reaches (the L5 locus lies ~51 mm straight behind it)
    c.set_needle_length(min(x for x in (25.0, 40.0, 50.0, 60.0, 75.0) if x > depth + 2.0))
    n = c.place_needle_at(hit.point, hit.normal)
    assert c.aim_at(target) == pytest.approx(depth)
    c.advance(depth)
    return n


def test_grasp_twitch_release_score_and_export(win, index, qtbot, tmp_path):
    assert win.open_scenario("l5-radiculopathy-low-back")
    c = win.controller
    n = _to_locus(win, index)
    assert c.readout()["tip_id"] == "multifidus_L5_r"
    grip = c.readout()["resistance"]  # grasped before any twitch
    twitches = []
    from imssim.app.events import Twitch

    c.listeners.append(lambda e: isinstance(e, Twitch) and twitches.append(e))
    for _ in range(12):
        if twitches:
            break
        qtbot.keyClick(win, Qt.Key_T)  # piston
    assert twitches and twitches[0].structure == "multifidus_L5_r"
    assert "twitch" in win.feedback_view.toPlainText().lower()
    # the grasp is felt as resistance, which eases as the muscle releases
    r = c.readout()
    assert r["feel"].startswith("grasped") and win.r_feel.text() == r["feel"]
    assert r["grasped"] and "c0392b" in win.r_resist.styleSheet()  # red while the muscle grips
    assert win.r_resist.value() == round(100 * r["resistance"]) >= 40
    # the muscle contracts during the pulse, then returns to rest; the release is said after it
    qtbot.waitUntil(lambda: "releases" in win.feedback_view.toPlainText(), timeout=5000)
    assert c.readout()["resistance"] < grip  # each twitch released some of the grip
    qtbot.waitUntil(lambda: c.scene.actors["multifidus_L5_r"].GetUserMatrix() is None, timeout=5000)
    c.pulse_frame("multifidus_L5_r", 0.1, n.k, 2.0)
    assert c.scene.actors["multifidus_L5_r"].GetUserMatrix() is not None
    c.pulse_frame("multifidus_L5_r", 0.0, n.k, 0.0)
    win.mark_button.click()  # nothing chosen (no default segment: it would be a hint)
    assert c.marked_segments == []
    win.segment_combo.setCurrentText("L5")
    win.mark_button.click()
    win.finish_button.click()
    d = win.report_dialog
    text = d.text.toPlainText()
    assert c.report.summary in text and "Targets not reached" in text and "Segment call: L5, as in this case." in text
    assert c.overlay.marker_count("missed") == len(c.missed_targets()) > 0
    # labels do not pile up: targets close together (the leg's muscles) share one label
    from imssim.app.controller import LABEL_GROUP_MM

    anchors = np.array([a for a, _ in c.missed_labels])
    assert 0 < len(anchors) <= 5
    assert all(np.linalg.norm(a - b) > LABEL_GROUP_MM for i, a in enumerate(anchors) for b in anchors[i + 1:])
    files = win.export(tmp_path / "out")
    assert [f.suffix for f in files] == [".json", ".txt", ".jsonl"]
    import json

    rep = json.loads(files[0].read_text())
    assert rep["total"] == pytest.approx(c.report.total, abs=0.01) and rep["marked_segments"] == ["L5"]


def test_interrupted_session_resumes_from_its_recording(qtbot, atlas, index):
    w1 = make(qtbot, atlas, index)
    assert w1.open_scenario("l5-radiculopathy-low-back")
    n = _to_locus(w1, index)
    w1.controller.withdraw(4)
    depth, entry = n.depth, n.entry.copy()
    # examine, call the segment and answer a quiz question too
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=15, side="right")
    found = w1.controller.palpate_at(pl.entry, pl.normal)
    assert found
    w1.controller.mark_segment("L5")
    q0 = w1.controller.quiz[0]
    ans = w1.controller.answer_quiz(0, q0.answers[0])
    path = w1.controller.recording_path
    assert path.exists() and path.stat().st_size > 0  # written as the session goes
    w1.close()  # "interrupted": never finished
    w2 = make(qtbot, atlas, index)
    assert w2.resume(path)
    c = w2.controller
    assert c.scenario.id == "l5-radiculopathy-low-back" and len(c.needles) == 1
    assert c.needles[0].depth == pytest.approx(depth) and np.allclose(c.needles[0].entry, entry)
    # the palpation marker, the segment call and the quiz answer are shown again
    assert c.overlay.marker_count("palpation") == 1
    assert [f["kind"] for f in c.palpated] == [f["kind"] for f in found]
    assert c.marked_segments == ["L5"] and "L5" in w2.segments_label.text()
    assert c.quiz_answers[0]["correct"] == ans["correct"] is True
    assert "Answered 1 of" in w2.quiz_panel.total.text()
    c.advance(2)
    assert c.needles[0].depth == pytest.approx(depth + 2)
    r = c.finish()
    assert r.segment_call == {"marked": ["L5"], "case": ["L5"], "right": True,
                              "sentence": "Segment call: L5, as in this case."}


def test_lists_and_text_fields_keep_their_keys(win, atlas, index, qtbot):
    """Up/Down move the needle from the 3D view, but walk the structure list when it has
    the focus (and type into the filter field); the list is in natural order (T2 before T10)."""
    target = Placement.from_landmark(index, "L5_spinous", depth=20, lateral_mm=10, side="right")
    qtbot.keyClick(win, Qt.Key_N)
    click_world(win, target.entry)
    n = win.controller.current
    assert n is not None
    win.view3d.interactor.setFocus()
    qtbot.keyClick(win, Qt.Key_Up)
    depth = n.depth
    assert depth == pytest.approx(1.0)
    names = [win.structure_proxy.index(r, 0).data() for r in range(win.structure_proxy.rowCount())]
    assert names.index("T2 vertebra  (bone)") < names.index("T10 vertebra  (bone)")
    lst = win.structure_list
    lst.setFocus()
    lst.setCurrentIndex(win.structure_proxy.index(0, 0))
    qtbot.keyClick(lst, Qt.Key_Down)
    qtbot.keyClick(lst, Qt.Key_Down)
    assert lst.currentIndex().row() == 2
    assert n.depth == pytest.approx(depth)  # the needle did not move
    assert win.controller.selected == win.structure_proxy.index(2, 0).data(Qt.UserRole)
    qtbot.keyClick(lst, Qt.Key_Up)
    assert lst.currentIndex().row() == 1 and n.depth == pytest.approx(depth)
    # typing a letter that is also a shortcut (N, S, A ...) goes into the filter field
    win.filter_edit.setFocus()
    qtbot.keyClicks(win.filter_edit, "sartorius")
    assert win.filter_edit.text() == "sartorius" and win.controller.tool == "needle"
    qtbot.keyClick(win.filter_edit, Qt.Key_Left)
    qtbot.keyClick(win.filter_edit, Qt.Key_Delete)
    assert win.filter_edit.text() == "sartoriu" and len(win.controller.needles) == 1
    win.view3d.interactor.setFocus()
    qtbot.keyClick(win, Qt.Key_Up)
    assert n.depth == pytest.approx(depth + 1.0)


def test_the_case_body_build_sets_skin_fat_and_depths(win, atlas, index, qtbot):
    """A lean patient's case shows and needles through the lean build's skin and fat; an
    average one brings the average build back (kept, not rebuilt)."""
    c = win.controller
    x, z = -40.0, atlas.get("vertebra_L3").centroid[2]

    def fat_mm():
        hit = c.index.snap_to_skin(np.array([x, 800.0, z]), [0, -1.0, 0])
        tr = c.index.query(hit.point, [0, -1.0, 0], 40.0)
        return sum(iv.exit_depth - iv.entry_depth for iv in tr.intervals if iv.kind == "subcutaneous"), hit.point[1]

    avg_fat, avg_skin_y = fat_mm()
    assert win.open_scenario("thoracic-pneumothorax-risk")  # habitus: lean
    assert c.scenario.patient.habitus == "lean" and c.atlas.meta["habitus"] == "lean"
    assert c.index is not index and c.session.index is c.index and win.atlas is c.atlas
    lean_fat, lean_skin_y = fat_mm()
    assert lean_fat < avg_fat - 1.5 and lean_skin_y < avg_skin_y - 1.5
    # the scene shows the lean skin: its actor's mesh is the lean mesh
    shown = c.scene.actors["skin"].mapper.GetInput()
    assert shown.GetNumberOfPoints() == len(c.atlas.get("skin").vertices)
    assert np.allclose(np.asarray(shown.GetPoints().GetData())[:5], c.atlas.get("skin").vertices[:5], atol=1e-3)
    assert win.open_scenario("l5-radiculopathy-low-back")  # average build
    assert c.atlas.meta["habitus"] == "average" and c.index is index


def test_slice_view_follows_the_needle(win, atlas, index, qtbot):
    assert win.slice_dock.isHidden() and "V" in dict(win.shortcut_rows())
    win.view_buttons["lumbar"].click()
    win.controller.set_tool("needle")
    click_world(win, Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=22, side="right").entry)
    qtbot.keyClick(win, Qt.Key_V)  # the shortcut shows the dock
    assert not win.slice_dock.isHidden() and win.actions["V"].isChecked()
    sv = win.slice_view
    assert sv.slice is not None and sv.depth == 0.0
    for _ in range(3):
        win.controller.advance(5.0)
    n = win.controller.current
    assert sv.depth == pytest.approx(n.depth) == pytest.approx(15.0)
    assert sv.cache.computed == 1  # advancing moves the tip on the same cut
    assert sv.tip_label == win.controller.readout()["tip"] and sv.tip_label in win.r_tip.text()
    # the picture: outlines drawn over the dark background, with the needle in it
    img = sv.grab().toImage()
    cols = {img.pixel(x, y) for x in range(0, img.width(), 3) for y in range(0, img.height(), 3)}
    assert len(cols) > 20
    win.slice_plane.setCurrentIndex(1)
    assert sv.slice.plane == "transverse" and sv.cache.computed == 2
    win.controller.aim(d_medial=4.0)  # a new direction is a new cut
    assert sv.cache.computed == 3
    # exam mode: the tip is not named in the slice either
    win.set_mode("exam")
    win.controller.advance(1.0)
    assert sv.tip_label == "(hidden)"
    qtbot.keyClick(win, Qt.Key_V)
    assert win.slice_dock.isHidden() and not win.actions["V"].isChecked()


def test_needle_moves_draw_fast_frames_that_match_full_frames(win, index, qtbot):
    win.backdrop.mode = "on"  # as on a machine without a GPU ("auto" turns it on there)
    # the camera-motion LOD (tests/test_render_lod.py) off: on the larger body its frames
    # interleave with the backdrop's and this test is about the backdrop alone
    win.lod.mode = "off"
    win.view_buttons["lumbar"].click()
    win.controller.set_tool("needle")
    click_world(win, Placement.from_landmark(index, "L4_spinous", depth=0, lateral_mm=15, side="right").entry)
    qtbot.waitUntil(lambda: not win._render_pending)
    fast0 = win.backdrop.fast_frames
    for _ in range(6):
        qtbot.keyClick(win, Qt.Key_Up)
        qtbot.waitUntil(lambda: not win._render_pending)
    assert win.backdrop.fast_frames >= fast0 + 4
    assert win.backdrop.render() == "fast"
    fast = win.backdrop.pixels()
    win.backdrop.invalidate()
    assert win.backdrop.render() == "full"
    assert np.array_equal(fast, win.backdrop.pixels())
    # rotating the view is never a reused picture
    win.controller.view("posterior")
    assert win.backdrop.render() == "full"


def test_nearby_missed_targets_share_a_label():
    from imssim.app.controller import group_labels

    pts = [(0, 0, 0), (0, 0, 50), (0, 0, 500), (10, 0, 30), (0, 0, 60), (0, 0, 1000)]
    names = ["fibularis longus", "fibularis brevis", "gluteus medius", "tibialis anterior", "EDL", "far"]
    out = group_labels(pts, names, radius_mm=100, max_labels=2, per_label=3)
    assert len(out) == 2  # three clusters, at most two labels
    (a0, t0), (a1, t1) = out
    assert np.allclose(a0, (0, 0, 0)) and t0 == "missed: fibularis longus\nfibularis brevis\ntibialis anterior\n+ 1 more"
    assert np.allclose(a1, (0, 0, 500)) and t1 == "missed: gluteus medius"


def test_a_slow_renderer_shows_fewer_frames_of_a_twitch_not_a_slow_motion_one(win, qtbot, monkeypatch):
    import time

    c = win.controller
    real = c.pulse_frame
    calls = []

    def slow_frame(*a, **k):  # every frame takes 0.2 s, as on software OpenGL
        calls.append(a)
        time.sleep(0.2)
        real(*a, **k)

    monkeypatch.setattr(c, "pulse_frame", slow_frame)
    win._animate("multifidus_L5_r", None, "twitch", amplitude=1.0, duration=0.3)
    qtbot.waitUntil(lambda: not win._anim.isActive(), timeout=5000)
    assert 1 <= win.anim_frames <= 4  # a frame-counted pulse would have drawn 18 at 0.2 s each
    assert calls[-1][1] == 0.0 and c.scene.actors["multifidus_L5_r"].GetUserMatrix() is None  # back at rest


def test_releases_are_said_in_the_order_of_their_twitches(win, qtbot):
    c = win.controller
    from imssim.app.events import Release

    c.emit(Release("multifidus_L5_r", None, "first release", 0.3))
    c.emit(Release("multifidus_L5_r", None, "second release", 0.05))
    qtbot.waitUntil(lambda: "second release" in win.feedback_view.toPlainText(), timeout=5000)
    text = win.feedback_view.toPlainText()
    assert "first release" in text and text.index("first release") < text.index("second release")


def test_resume_skips_refused_actions_and_a_failed_resume_changes_nothing(qtbot, atlas, index, tmp_path):
    """Issue 22: a crashed session with actions refused live (advance a removed needle,
    insert deeper than the needle) resumes; a damaged recording leaves the window's
    session, case and recording folder as they were."""
    from imssim.core.training.session import Session, SessionError
    from imssim.core.training.recording import recordings_dir

    from needle_helpers import needle_into

    sc_atlas, path = atlas, tmp_path / "crashed.jsonl"
    from imssim.core.training.scenario import load_scenario

    l5 = load_scenario("l5-radiculopathy-low-back", sc_atlas)
    s = Session(sc_atlas, l5, seed=5, index=index, record_to=path)
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, length_mm=75, t=1.0)
    s.insert_needle(e, d, depth - 4, length_mm=75, t=2.0)
    s.remove(0, t=3.0)
    for call in (lambda: s.advance(0, 2.0, t=4.0), lambda: s.insert_needle(e, d, 80.0, length_mm=50, t=5.0)):
        with pytest.raises(SessionError):
            call()
    s.recorder.close()  # the process died here: never finished
    w = make(qtbot, atlas, index)
    assert w.resume(path), w.last_error
    c = w.controller
    assert len(c.needles) == 1 and [a["name"] for a in c.session.skipped] == ["advance", "insert"]
    good_session, good_rec = c.session, c.recording_path
    assert good_rec.name.endswith("-resumed.jsonl") and good_rec.exists()
    # a damaged copy: the resume fails with a one-line reason and nothing changes
    bad = tmp_path / "damaged.jsonl"
    import json

    lines = path.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if '"name":"remove"' in ln)
    lines[k] = json.dumps({**json.loads(lines[k]), "needle": "x"})
    bad.write_text("\n".join(lines) + "\n")
    before = sorted(p.name for p in recordings_dir().iterdir())
    assert not w.resume(bad)
    assert "damaged.jsonl: line" in w.last_error and "needle" in w.last_error
    assert c.session is good_session and c.recording_path == good_rec and len(c.needles) == 1
    assert sorted(p.name for p in recordings_dir().iterdir()) == before  # no stray partial file
    # exports never overwrite an earlier attempt's report
    c.finish()
    first = w.export(tmp_path / "out")
    second = w.export(tmp_path / "out")
    assert [f.name for f in second[:2]] == ["l5-radiculopathy-low-back-report-2.json",
                                            "l5-radiculopathy-low-back-report-2.txt"]
    assert all(f.exists() for f in first + second) and len({f.name for f in first + second}) == 6


def test_exam_mode_cannot_be_left_without_ending_the_attempt(win, index, qtbot):
    """Issue 18: the Mode drop-down during an exam ends (and records) the attempt; after
    Finish a click places nothing and says why; a new attempt starts with an empty log."""
    assert win.open_scenario("l5-radiculopathy-low-back")
    c = win.controller
    win.mode_combo.setCurrentText("exam")
    assert c.mode == "exam" and win.timer_label.text().startswith("EXAM")
    assert not win.structure_list.isVisible() and not win.targets_check.isEnabled()
    c.set_tool("needle")
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=12, side="right")
    click_world(win, pl.entry)
    c.advance(10)
    win.mode_combo.setCurrentText("practice")  # leaving the exam (confirmed: the fixture says Yes)
    assert c.finished and "exam to practice" in c.session.ended_by
    assert win.report_dialog.isVisible() and "ended early" in win.report_dialog.text.toPlainText()
    n = len(c.needles)
    click_world(win, pl.entry)
    assert len(c.needles) == n and "finished and scored" in win.status.currentMessage()
    qtbot.keyClick(win, Qt.Key_Up)
    assert "finished and scored" in win.status.currentMessage()
    win.new_action.trigger()
    assert not c.finished and c.needles == [] and win.feedback_view.toPlainText() == ""
    assert win.report_dialog is None and win.segments_label.text() == "Marked: none"


def test_segment_picker_accepts_typing_and_fits_the_window(win, qtbot):
    assert win.open_scenario("l5-radiculopathy-low-back")
    combo = win.segment_combo
    assert combo.isEditable() and combo.maxVisibleItems() <= 12
    combo.lineEdit().setFocus()
    qtbot.keyClicks(combo.lineEdit(), "l5")
    qtbot.keyClick(combo.lineEdit(), Qt.Key_Return)
    assert win.controller.marked_segments == ["L5"] and "L5" in win.segments_label.text()
    combo.setEditText("X9")
    win.mark_button.click()
    assert win.controller.marked_segments == ["L5"] and "not a spinal segment" in win.status.currentMessage()
