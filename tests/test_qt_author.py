"""Author mode in the window (pytest-qt under Xvfb, real clicks on the 3D view): write a
case from the template, place tender points on the body, save, validate, reopen, undo/redo,
preview it as a student."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt", reason="pytest-qt is needed to drive the window")

from PySide6 import QtCore, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from imssim.core.engines.needle import Placement  # noqa: E402
from imssim.render.views import world_to_display  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
Qt = QtCore.Qt
HISTORY = "Two years of low back pain after lifting a crate; since spring it spreads down the right leg."
COMPLAINT = "An aching low back and a burning pain along the outside of my right shin."


@pytest.fixture(autouse=True)
def _private(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_RECORDINGS_DIR", str(tmp_path / "recordings"))
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMSSIM_TRAINEE", "tester")
    monkeypatch.delenv("IMSSIM_DB_URL", raising=False)


@pytest.fixture
def asked(monkeypatch):
    """The window's questions; each answer is popped from ``answers`` (default: Discard)."""
    B = QtWidgets.QMessageBox
    log = {"titles": [], "answers": []}

    def question(parent, title, text, *a, **k):
        log["titles"].append(title)
        return log["answers"].pop(0) if log["answers"] else B.Discard

    monkeypatch.setattr(B, "question", question)
    return log


@pytest.fixture
def win(qtbot, atlas, index, asked):
    from imssim.qt.window import MainWindow

    w = MainWindow(atlas, index=index)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitActive(w)
    return w


def click_on(w, qtbot, point):
    """A real left click (press and release) on the pixel showing a world point."""
    w.controller.render()
    x, y = world_to_display(w.view3d, point)
    r = w.view3d.interactor.devicePixelRatioF()
    pos = QtCore.QPoint(int(round(x / r)), int(round(w.view3d.interactor.height() - 1 - y / r)))
    QTest.mouseClick(w.view3d.interactor, Qt.LeftButton, Qt.NoModifier, pos)
    qtbot.wait(10)


def type_into(qtbot, widget, text):
    widget.setFocus()
    if isinstance(widget, QtWidgets.QLineEdit):
        widget.selectAll()
        qtbot.keyClicks(widget, text)
        qtbot.keyClick(widget, Qt.Key_Return)
    else:
        widget.selectAll()
        widget.clear()
        qtbot.keyClicks(widget, text)
        widget.clearFocus()  # committed when the box loses the focus


def test_author_a_case_from_scratch_save_validate_reopen(win, qtbot, atlas, index, tmp_path, asked, monkeypatch):
    from imssim.core.training.scenario import load_scenario, validate_file

    win.set_mode("author")
    assert win.author.active and win.author_dock.isVisible() and not win.needle_dock.isVisible()
    assert win.author_new("L5", "right", "chronic low back pain")
    p = win.author_panel
    a = win.author.authoring
    assert a is not None and a.path is None and win.controller.tool == "point"
    # the form
    type_into(qtbot, p.edits["title"], "Low back and shin pain")
    type_into(qtbot, p.edits["author"], "Dr Test")
    type_into(qtbot, p.edits["complaint"], COMPLAINT)
    type_into(qtbot, p.edits["history"], HISTORY)
    assert a.scenario.title == "Low back and shin pain" and a.scenario.patient.history == HISTORY
    assert a.scenario.patient.presenting_complaint == COMPLAINT
    # click on the body beside L5: a tender point in the muscle under the click
    win.controller.view("lumbar")
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=18, side="right")
    n0, rows0 = len(a.scenario.patient.findings), p.point_list.count()
    assert rows0 == len(a.points) == 3  # the template's tender points (no position: the muscle is felt)
    click_on(win, qtbot, pl.entry)
    f = a.scenario.patient.findings[-1]
    assert len(a.scenario.patient.findings) == n0 + 1 and f.kind == "tender_point"
    assert f.structure is not None and atlas.structures[f.structure].kind == "muscle"
    assert f.locus.xyz is not None and f.locus.snap is True
    assert win.controller.overlay.marker_count("author") == 1
    assert p.point_list.count() == rows0 + 1 and len(win.controller.overlay._markers["author"]) == 2  # + its number and "right multifidus" in p.point_list.item(rows0).text().lower()
    # double-click the point: what palpation finds there
    monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *a_, **k: ("Tender, ropy band; he jumps.", True))
    p.tabs.setCurrentIndex(1)  # the Tender points tab
    item = p.point_list.item(rows0)
    p.point_list.scrollToItem(item)
    qtbot.waitExposed(p.point_list)
    vp = p.point_list.viewport()
    at = p.point_list.visualItemRect(item).center()
    QTest.mouseClick(vp, Qt.LeftButton, Qt.NoModifier, at)  # an item view takes a double click after a press
    QTest.mouseDClick(vp, Qt.LeftButton, Qt.NoModifier, at)
    assert a.scenario.patient.findings[-1].description == "Tender, ropy band; he jumps."
    assert "he jumps" in p.point_text.text()
    # on the skin
    p.snap_combo.setCurrentIndex(1)
    pl2 = Placement.from_landmark(index, "L4_spinous", depth=0, lateral_mm=20, side="right")
    click_on(win, qtbot, pl2.entry)
    assert a.scenario.patient.findings[-1].locus.snap is False
    assert win.controller.overlay.marker_count("author") == 2
    # a miss says so and adds nothing
    win.controller.on_click(3, 3)
    assert len(a.points) == rows0 + 2 and "missed the body" in win.status.currentMessage()
    # supersensitive muscles: the myotome listed first; tick one
    first = p.muscle_list.item(0)
    assert first.font().bold()
    row = next(i for i in range(p.muscle_list.count()) if p.muscle_list.item(i).data(Qt.UserRole) == "gluteus_medius_r")
    assert p.muscle_list.item(row).font().bold()  # L5 supplies it
    p.muscle_list.item(row).setCheckState(Qt.Checked)
    assert "gluteus_medius_r" in a.supersensitive
    # save as (a new case has no file yet: the dialog asks for one)
    out = tmp_path / "my-case.yaml"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a_, **k: (str(out), ""))
    p.save_button.click()
    assert out.is_file() and not win.author.dirty and "unsaved" not in p.file_label.text()
    errors = [i for i in validate_file(out, atlas) if i.severity == "error"]
    assert errors == []
    from imssim.cli import main

    assert main(["scenario", "validate", str(out)]) == 0  # `imssim scenario validate` accepts it
    # reopen: the same case
    again = load_scenario(out, atlas)
    assert again.model_dump() == a.scenario.model_dump()
    saved = a.scenario
    assert win.author_open(str(out))
    assert win.author.authoring.scenario.model_dump() == saved.model_dump()
    assert win.controller.overlay.marker_count("author") == 2


def test_undo_redo_in_the_window_and_unsaved_changes_on_close(win, qtbot, index, tmp_path, asked, monkeypatch):
    win.set_mode("author")
    win.author_new("L5", "right", "chronic low back pain")
    a, p = win.author.authoring, win.author_panel
    p.age.setValue(61)
    p.age.editingFinished.emit()
    assert a.scenario.patient.age == 61
    win.controller.view("lumbar")
    n = len(a.points)
    click_on(win, qtbot, Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=18, side="right").entry)
    assert len(a.points) == n + 1 and p.undo_button.isEnabled()
    win.view3d.interactor.setFocus()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)  # Ctrl+Z: the point goes
    assert len(a.points) == n and win.controller.overlay.marker_count("author") == 0
    p.undo_button.click()  # the age goes back
    assert a.scenario.patient.age == 45 and p.age.value() == 45
    p.redo_button.click()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert a.scenario.patient.age == 61 and len(a.points) == n + 1
    assert win.controller.overlay.marker_count("author") == 1
    # closing with unsaved changes asks; Cancel keeps the window open
    B = QtWidgets.QMessageBox
    asked["answers"] = [B.Cancel]
    assert not win.close() and win.isVisible() and asked["titles"][-1] == "Unsaved changes"
    # Save: asks for a file, writes it; then the window closes
    out = tmp_path / "closing.yaml"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a_, **k: (str(out), ""))
    asked["answers"] = [B.Save]
    assert win.close()
    assert out.is_file() and "age: 61" in out.read_text()


def test_edit_a_library_case_keeps_a_backup_and_preview_as_student(win, qtbot, index, tmp_path, asked):
    import shutil

    from imssim.core.training.scenario import library_dir

    src = tmp_path / "l5-radiculopathy-low-back.yaml"
    shutil.copy(library_dir() / src.name, src)
    original = src.read_text()
    win.set_mode("author")
    assert win.author_open(str(src))
    a, p = win.author.authoring, win.author_panel
    placed = sum(1 for _, f in a.points if f.locus is not None)
    assert placed >= 1 and win.controller.overlay.marker_count("author") == placed
    type_into(qtbot, p.edits["complaint"], COMPLAINT)
    assert a.dirty and "unsaved" in p.file_label.text() and win.windowTitle().endswith("*")
    # preview as student: the case as it stands, in practice mode
    p.preview_button.click()
    c = win.controller
    assert not win.author.active and c.mode == "practice" and win.mode_combo.currentText() == "practice"
    assert c.scenario is not None and c.scenario.patient.presenting_complaint == COMPLAINT
    assert COMPLAINT in win.brief.toPlainText() and win.needle_dock.isVisible()
    assert c.overlay.marker_count("author") == 0
    assert c.recording_path is None  # a preview is not an attempt: not recorded (nor saved to progress)
    # palpating there finds the case's tender point (beside L5, as the file has it)
    c.set_tool("palpate")
    pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=15, side="right")
    c.palpate_at(pl.entry, pl.normal)
    assert any(f["kind"] == "tender_point" for f in c.palpated)
    # back to Author mode: the edits (and their history) are still there; save keeps NAME.bak
    win.set_mode("author")
    assert win.author.active and win.author.authoring is a and a.dirty and a.can_undo
    assert win.author_save() == src
    assert (tmp_path / (src.name + ".bak")).read_text() == original
    assert COMPLAINT in src.read_text()


def test_cli_run_mode_author_offers_author(tmp_path):
    from imssim.cli.main import build_parser

    args = build_parser().parse_args(["run", "--mode", "author", "l5-radiculopathy-low-back"])
    assert args.mode == "author" and args.scenario == "l5-radiculopathy-low-back"
