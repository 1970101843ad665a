"""Frame times of the real window while the view moves, under Xvfb (software OpenGL).

    PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_motion.py

Drives imssim's MainWindow (1280x800, default case, lumbar close-up) with real Qt mouse
events on the 3D view: a drag-rotate (20 mouse moves with the button held), needle moves
(wheel steps through the window's handler) and preset view changes. Each is timed from the
event to the end of the frame it causes. The naive way, in the same run: the same window
with simplified frames switched off (``InteractionLOD.mode = "off"``: every frame full).
Goals (issue 21): drag-rotate frame < 100 ms median, needle move < 33 ms, preset view
change < 150 ms to the first new frame.
"""

from __future__ import annotations

import datetime
import os
import re
import statistics
import sys
import tempfile
import time


def main() -> int:
    os.environ.setdefault("IMSSIM_RECORDINGS_DIR", tempfile.mkdtemp(prefix="imssim-bench-"))
    from PySide6 import QtCore, QtGui, QtWidgets

    from imssim.core.model.store import load_builtin
    from imssim.core.engines.traversal import TissueIndex
    from imssim.qt.window import MainWindow

    Qt = QtCore.Qt
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    atlas = load_builtin()
    index = TissueIndex(atlas)
    w = MainWindow(atlas, index=index)
    w.resize(1280, 800)
    w.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    c = w.controller
    c.load_scenario("l5-radiculopathy-low-back")
    c.view("lumbar")
    app.processEvents()
    t0 = time.perf_counter()
    w.lod._ensure_lod()  # built once per atlas (cached on disk)
    t_lod = time.perf_counter() - t0
    caps = w.view3d.render_window.ReportCapabilities() or ""
    m = re.search(r"OpenGL renderer string:\s*(.+)", caps)
    gl = m.group(1).strip() if m else "unknown"
    iren = w.view3d.interactor
    rw = w.view3d.render_window
    frames: list[float] = []
    ends: list[float] = []
    kinds_seen: list[str] = []
    starts: list[float] = []
    durs: list[float] = []
    def _st(*a):
        starts.append(time.perf_counter())
        if os.environ.get("BENCH_DEBUG") == "2":
            import traceback

            traceback.print_stack(limit=7)

    rw.AddObserver("StartEvent", _st)
    rw.AddObserver("EndEvent", lambda *a: (ends.append(time.perf_counter()), durs.append(ends[-1] - starts[-1]),
                                           kinds_seen.append(w.lod.last_frame)), -1.0)

    def settle():
        for _ in range(30):
            app.processEvents()
            time.sleep(0.02)

    def mouse(kind, x, y, buttons):
        p = QtCore.QPointF(x, y)
        ev = QtGui.QMouseEvent(kind, p, p, Qt.LeftButton if kind != QtCore.QEvent.MouseMove else Qt.NoButton,
                               buttons, Qt.NoModifier)
        QtCore.QCoreApplication.sendEvent(iren, ev)

    def drag(n=20):
        cx, cy = iren.width() / 2, iren.height() / 2
        mouse(QtCore.QEvent.MouseButtonPress, cx, cy, Qt.LeftButton)
        out, kinds = [], []
        for k in range(1, n + 1):
            t = time.perf_counter()
            ends.clear()
            kinds_seen.clear()
            mouse(QtCore.QEvent.MouseMove, cx + 6 * k, cy + 2 * k, Qt.LeftButton)
            app.processEvents()
            if ends:
                out.append(ends[-1] - t)
                kinds.append(kinds_seen[0])
                if os.environ.get("BENCH_DEBUG"):
                    print(" move", k, len(ends), "frames", [round(x * 1e3) for x in durs[-len(ends):]], kinds_seen)
        mouse(QtCore.QEvent.MouseButtonRelease, cx + 6 * n, cy + 2 * n, Qt.NoButton)
        settle()
        return out, kinds

    def presets():
        out, kinds = [], []
        for name in ("thorax", "lumbar", "buttock", "lumbar", "neck", "lumbar"):
            t = time.perf_counter()
            ends.clear()
            kinds_seen.clear()
            c.view(name)
            t_call = time.perf_counter() - t
            while not ends and time.perf_counter() - t < 5:
                app.processEvents()
            out.append(ends[0] - t)
            if os.environ.get("BENCH_DEBUG"):
                print(" preset", name, f"call {t_call * 1e3:.0f} ms, frame {durs[len(durs) - len(ends)] * 1e3:.0f} ms,",
                      f"first frame ends {(ends[0] - t) * 1e3:.0f} ms", kinds_seen)
            kinds.append(kinds_seen[0])
            settle()
        return out, kinds

    def needle_moves(n=30):
        from imssim.core.engines.needle import Placement

        pl = Placement.from_landmark(index, "L5_spinous", depth=0, lateral_mm=15, side="right")
        c.place_needle_at(pl.entry, pl.normal)
        settle()
        out = []
        for k in range(n):
            t = time.perf_counter()
            ends.clear()
            (c.advance if k < 20 else c.withdraw)(1.0)
            while not ends and time.perf_counter() - t < 5:
                app.processEvents()
            out.append(ends[-1] - t)
        return out

    settle()
    res = {}
    for mode in ("off", "on"):
        w.lod.mode = mode
        c.view("lumbar")
        settle()
        res[mode] = dict(drag=drag(), presets=presets())
    w.lod.mode = "on"
    c.view("lumbar")
    settle()
    moves = needle_moves()
    med = statistics.median
    load = os.getloadavg()
    print(f"run            {datetime.datetime.now(datetime.timezone.utc):%d %b %Y %H:%M} UTC, {os.cpu_count()} CPU cores, "
          f"load average {load[0]:.1f} (1 min) {load[1]:.1f} (5 min); OpenGL renderer: {gl}")
    print(f"window         3D view {iren.width()}x{iren.height()}, {len(atlas.structures)} structures, "
          f"{sum(len(s.faces) for s in atlas) / 1e3:.0f}k triangles; simplified meshes "
          f"{sum(len(f) for _, f in w.lod._lod_poly.values()) / 1e3:.0f}k triangles for the "
          f"{len(w.lod._lod_poly)} large structures, ready in {t_lod:.2f} s")
    fails = []
    d_on, d_off = res["on"]["drag"][0], res["off"]["drag"][0]
    p_on, p_off = res["on"]["presets"][0], res["off"]["presets"][0]
    print(f"drag-rotate    median {med(d_on) * 1e3:.0f} ms, max {max(d_on) * 1e3:.0f} ms per frame while moving "
          f"({res['on']['drag'][1].count('lod')}/{len(d_on)} simplified) vs every frame full {med(d_off) * 1e3:.0f} ms "
          f"-> {med(d_off) / med(d_on):.1f}x (goal < 100 ms)")
    print(f"preset view    median {med(p_on) * 1e3:.0f} ms, max {max(p_on) * 1e3:.0f} ms to the first new frame "
          f"({res['on']['presets'][1].count('lod')}/{len(p_on)} simplified, the full one follows when still) "
          f"vs full {med(p_off) * 1e3:.0f} ms -> {med(p_off) / med(p_on):.1f}x (goal < 150 ms)")
    print(f"needle move    median {med(moves) * 1e3:.1f} ms, max {max(moves) * 1e3:.1f} ms (handler + frame; "
          f"goal < 33 ms)")
    fails += ["drag"] if med(d_on) >= 0.1 else []
    fails += ["preset"] if med(p_on) >= 0.15 else []
    fails += ["needle"] if med(moves) >= 0.033 else []
    w.close()
    if fails:
        print("NOT MET: " + ", ".join(fails))
    return 0


if __name__ == "__main__":
    sys.exit(main())
