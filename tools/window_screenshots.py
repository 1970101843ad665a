"""Screenshots of the trainee's window in its main states, for docs/img/ (run under Xvfb).

    PYTHONPATH=src:tests xvfb-run -a -s "-screen 0 1600x1200x24" python tools/window_screenshots.py [OUTDIR] [--only progress|author]

Every picture is taken from the real window, driven through its handlers. The progress
store, settings and recordings are private temporary folders (nothing of the user's is
read or written); the Progress tab's pictures start from three course sessions of trainee
"ann" saved through the core (tests/progress_helpers.py drives them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from imssim.core.engines.needle import Placement
from imssim.core.model.store import load_builtin
from imssim.qt.app import application, make_window
from imssim.render.views import world_to_display


def settle(app, n=6, w=None):
    """Let Qt draw; with ``w``, also wait for its twitch/release animation and messages."""
    import time

    for _ in range(n):
        app.processEvents()
    if w is not None:
        end = time.monotonic() + 6.0
        while time.monotonic() < end and (
                (getattr(w, "_anim", None) is not None and w._anim.isActive())
                or w._last_release_due > time.monotonic()):
            app.processEvents()
            time.sleep(0.02)
        for _ in range(n):
            app.processEvents()


def click_world(w, p):
    w.controller.render()
    w.controller.on_click(*world_to_display(w.view3d, p))


def intercostal_entry(c):
    """A perpendicular entry over the right thorax that reaches the pleura between two ribs."""
    for cranial in range(0, 30, 3):
        for lat in range(35, 80, 5):
            pl = Placement.from_landmark(c.index, "T6_spinous", depth=50, lateral_mm=lat, side="right",
                                         cranial_mm=-cranial)
            tr = c.index.query(pl.entry, pl.direction, 50)
            if tr.breaches and not tr.bone_contact:
                return pl
    raise SystemExit("no intercostal entry found")


def to_locus(c, structure):
    """A needle through the skin straight at the scenario's trigger locus in ``structure``."""
    locus = next(l for l in c.session.physiology.loci if l.structure == structure)
    target = np.asarray(locus.xyz, float)
    hit = c.index.snap_to_skin(target + np.array([0, 200.0, 0]), [0, -1.0, 0])
    d = target - hit.point
    depth = float(np.linalg.norm(d))
    c.set_tool("needle")
    n = c.place_needle_at(hit.point, hit.normal)
    c.aim_at(target)
    for _ in range(int(depth)):
        c.advance(1.0)
    c.advance(depth - int(depth))
    return n


def _private_folders() -> None:
    import os
    import tempfile

    os.environ.setdefault("IMSSIM_RECORDINGS_DIR", tempfile.mkdtemp(prefix="imssim-shots-"))
    os.environ["IMSSIM_DATA_DIR"] = tempfile.mkdtemp(prefix="imssim-shots-data-")
    os.environ["IMSSIM_CONFIG_DIR"] = tempfile.mkdtemp(prefix="imssim-shots-config-")
    os.environ.pop("IMSSIM_DB_URL", None)
    os.environ["IMSSIM_TRAINEE"] = "ann"


def progress_shots(out: Path) -> list[Path]:
    """The Progress tab after four sessions of a course (three saved through the core, the
    fourth finished in the window after File > Continue course), and the continued course's brief."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from progress_helpers import treat_targets, treat_well

    from imssim.core.training.progress import ProgressStore, course_state_for, save_finished
    from imssim.core.training.scenario import derive_targets, load_scenario
    from imssim.core.training.session import Session
    from imssim.core.engines.traversal import TissueIndex

    app = application()
    atlas = load_builtin()
    index = TissueIndex(atlas)
    sc = load_scenario("l5-radiculopathy-low-back", atlas)
    wrong = sc.model_copy(update={"diagnosis": sc.diagnosis.model_copy(update={"segments": ["L3"]})})
    wrong_targets = [t.structure for t in derive_targets(wrong, atlas)][:4]
    with ProgressStore() as st:  # sessions 1-3: the wrong segment, then the L5 multifidus, then two muscles
        plan = [None, ({"multifidus_L5_r"}, 1), ({"multifidus_L5_r", "gluteus_medius_r"}, 2)]
        for k, how in enumerate(plan):
            state = course_state_for(st, sc, "ann", atlas)
            s = Session(atlas, sc, seed=k, index=index, patient_state=state)
            treat_targets(s, wrong_targets) if how is None else treat_well(s, pistons=how[1], only=how[0])
            save_finished(s, "ann", store=st, scenario=sc, state=state, atlas=atlas)
    w = make_window(atlas, index=index)
    w.resize(1280, 900)
    w.show()
    settle(app)
    shots = []
    w.continue_course()  # session 4, the patient as sessions 1-3 left them
    c = w.controller
    c.view("lumbar")
    settle(app)
    p = out / "window-course.png"
    w.save_screenshot(str(p))
    shots.append(p)
    to_locus(c, "multifidus_L5_r")
    for _ in range(8):
        c.piston()
    settle(app, 6, w)
    w.finish()
    settle(app)
    w.report_dialog.close()
    w.show_progress()
    for _ in range(3):
        settle(app)
        if not w.progress_view.dirty:
            break
    w.progress_view.refresh()
    settle(app)
    p = out / "window-progress.png"
    w.save_screenshot(str(p))
    shots.append(p)
    # further down the tab: the course's recovery and each muscle's release
    sb = w.progress_view.plots.verticalScrollBar()
    sb.setValue(sb.maximum())
    settle(app)
    p = out / "window-progress-course.png"
    w.save_screenshot(str(p))
    shots.append(p)
    w.close()
    return shots


def author_shots(out: Path) -> list[Path]:
    """Author mode: a new L5 case from the template, the form filled in, tender points placed
    by clicking the body, supersensitive muscles ticked (the myotome listed first)."""
    import tempfile

    app = application()
    w = make_window(load_builtin())
    w.resize(1280, 800)
    w.show()
    settle(app)
    c = w.controller
    shots = []

    def shot(name):
        settle(app)
        p = out / f"window-{name}.png"
        w.save_screenshot(str(p))
        shots.append(p)

    w.set_mode("author")
    w.author_new("L5", "right", "chronic low back pain")
    a, panel = w.author.authoring, w.author_panel
    a.set_field("title", "Low back and lateral shin pain")
    a.set_field("author", "A. Instructor")
    a.set_field("age", 52)
    a.set_field("sex", "male")
    a.set_field("complaint", "An aching low back and a burning pain along the outside of my right shin.")
    a.set_field("history", "Two years of low back pain after lifting a crate; since spring it spreads down "
                           "the right leg to the top of the foot. Worse sitting, eased by walking.")
    w.author._changed()
    c.view("lumbar")
    settle(app)
    for level, lat in (("L5_spinous", 18), ("L4_spinous", 20)):
        click_world(w, Placement.from_landmark(c.index, level, depth=0, lateral_mm=lat, side="right").entry)
    gm = c.atlas.structures["gluteus_medius_r"].centroid
    o = np.asarray(gm) + np.array([0.0, 300.0, 0.0])
    w.author.place_ray(o, np.array([0.0, -1.0, 0.0]))
    for sid in ("gluteus_medius_r", "tibialis_anterior_r"):
        if sid in c.atlas.structures:
            w.author.set_supersensitive(sid)
    w.author.save(Path(tempfile.mkdtemp()) / "low-back-shin.yaml")
    a.set_field("age", 53)  # an unsaved edit: the title bar and the panel say so
    w.author._changed()
    panel.tabs.setCurrentIndex(0)
    shot("author")
    panel.tabs.setCurrentIndex(1)
    shot("author-points")
    panel.tabs.setCurrentIndex(2)
    shot("author-muscles")
    w.author.authoring = None
    w.close()
    return shots


def main(out: Path) -> None:
    _private_folders()
    out.mkdir(parents=True, exist_ok=True)
    if "--only" in sys.argv and sys.argv[sys.argv.index("--only") + 1] == "progress":
        for p in progress_shots(out):
            print("wrote", p)
        return
    if "--only" in sys.argv and sys.argv[sys.argv.index("--only") + 1] == "author":
        for p in author_shots(out):
            print("wrote", p)
        return
    app = application()
    atlas = load_builtin()
    w = make_window(atlas)
    w.resize(1280, 800)
    w.show()
    settle(app)
    c = w.controller
    shots = []

    def shot(name):
        settle(app)
        p = out / f"window-{name}.png"
        w.save_screenshot(str(p))
        shots.append(p)

    w.open_scenario("l5-radiculopathy-low-back")
    c.view("lumbar")
    shot("case-brief")
    # palpation + needling the right multifidus at L5
    c.set_tool("palpate")
    pl = Placement.from_landmark(c.index, "L5_spinous", depth=0, lateral_mm=15, side="right")
    click_world(w, pl.entry)
    w.segment_combo.setCurrentText("L5")
    w.mark_button.click()
    n = to_locus(c, "multifidus_L5_r")
    w.tabs.setCurrentIndex(1)
    settle(app, 6, w)  # the twitches the advance provoked have played out
    shot("needling")
    # twitch: piston until the muscle answers, then show the pulse at its peak
    tw = []
    from imssim.app.events import Twitch

    c.listeners.append(lambda e: isinstance(e, Twitch) and tw.append(e))
    for _ in range(30):
        if tw:
            break
        c.piston()
    if tw:
        anim = getattr(w, "_anim", None)
        if anim is not None:
            anim.stop()
        c.pulse_frame(tw[0].structure, 0.12, n.k, jolt_mm=2.5)
        shot("twitch")
        c.pulse_frame(tw[0].structure, 0.0, n.k, 0.0)
    # a second needle in gluteus medius (peripheral L5 myotome), with a longer needle
    c.view("buttock")
    c.set_needle_length(75)
    to_locus(c, "gluteus_medius_r")
    settle(app, 20)
    c.view("posterior")
    w.finish()
    settle(app)
    p = out / "window-score-report.png"
    w.save_screenshot(str(p))
    # the dialog is its own window: compose it over the main window's picture (left side,
    # so the missed targets stay visible on the body)
    from PySide6 import QtGui

    base = QtGui.QPixmap(str(p))
    dlg = w.report_dialog.grab()
    painter = QtGui.QPainter(base)
    painter.drawPixmap(8, 56, dlg)
    painter.end()
    base.save(str(p))
    shots.append(p)
    w.report_dialog.close()
    # thorax: danger (a new attempt, straight through an intercostal space)
    w.open_scenario("l5-radiculopathy-low-back")
    c.set_needle_length(50)
    c.view("thorax")
    w.tabs.setCurrentIndex(1)
    pl = intercostal_entry(c)
    c.set_tool("needle")
    click_world(w, pl.entry)
    for _ in range(60):
        c.advance(1.0)
        if c.current.stopped:
            break
    shot("danger")
    # the same needle in the slice view (sagittal: ribs in section, the pleura in red)
    w.show_slice(True)
    settle(app, 10)
    shot("slice")
    w.show_slice(False)
    # quiz
    w.open_scenario("l5-radiculopathy-low-back", mode="quiz")
    c.view("lumbar")
    w.quiz_panel.buttons[2].setChecked(True)
    w.quiz_panel.answer_button.click()
    shot("quiz")
    w.close()
    shots += progress_shots(out)
    for p in shots:
        print("wrote", p)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else Path("docs/img"))
