"""Screenshots of the trainee's window in its main states, for docs/img/ (run under Xvfb).

    PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" python tools/window_screenshots.py [OUTDIR]

Every picture is taken from the real window, driven through its handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imssim.core.needle import Placement
from imssim.core.store import load_builtin
from imssim.qt.app import application, make_window
from imssim.render.views import world_to_display


def settle(app, n=6):
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


def main(out: Path) -> None:
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

    if hasattr(w, "open_scenario"):
        w.open_scenario("l5-radiculopathy-low-back")
        w.tabs.setCurrentIndex(0)
        c.view("lumbar")
        shot("case-brief")
    # needling: right multifidus at L5
    c.view("lumbar")
    w.tabs.setCurrentIndex(1)
    c.set_tool("needle")
    pl = Placement.from_landmark(c.index, "L5_spinous", depth=0, lateral_mm=12, side="right")
    click_world(w, pl.entry)
    c.aim(d_medial=6)
    for _ in range(30):
        c.advance(1.0)
    shot("needling")
    # thorax: danger
    c.view("thorax")
    pl = intercostal_entry(c)
    click_world(w, pl.entry)
    for _ in range(60):
        c.advance(1.0)
        if c.current.stopped:
            break
    shot("danger")
    w.close()
    for p in shots:
        print("wrote", p)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img"))
