"""Screenshots of the trainee's window in its main states, for docs/img/ (run under Xvfb).

    PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" python tools/window_screenshots.py [OUTDIR]

Every picture is taken from the real window, driven through its handlers.
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


def main(out: Path) -> None:
    import os
    import tempfile

    os.environ.setdefault("IMSSIM_RECORDINGS_DIR", tempfile.mkdtemp(prefix="imssim-shots-"))
    out.mkdir(parents=True, exist_ok=True)
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
    for p in shots:
        print("wrote", p)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img"))
