"""Start the trainee's window (``imssim run``), or render it to a PNG (``--screenshot``)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys

from ..app.errors import UserError

ORG, APP = "imssim", "imssim"


def _start_xvfb() -> subprocess.Popen | None:
    """A private virtual screen for ``--screenshot`` when there is no display.

    The 3D view needs a real OpenGL context: Qt's 'offscreen' platform cannot host it.
    """
    exe = shutil.which("Xvfb")
    if exe is None:
        return None
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    num = b""
    with os.fdopen(r, "rb") as f:
        while not num.endswith(b"\n"):
            c = f.read(1)
            if not c:
                break
            num += c
    if not num.strip():
        proc.kill()
        return None
    os.environ["DISPLAY"] = ":" + num.decode().strip()
    atexit.register(proc.terminate)
    return proc


def ensure_display(offscreen: bool) -> None:
    from ..app.display import has_display

    if has_display():
        return
    if offscreen and _start_xvfb() is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
        return
    raise UserError("no display and no Xvfb to draw the window on; install the 'xvfb' package "
                    "(sudo apt-get install xvfb) or run under xvfb-run")


def application():
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setOrganizationName(ORG)
        app.setApplicationName(APP)
    return app


def make_window(atlas, mode: str = "practice", index=None, record: bool = True):
    from .window import MainWindow

    return MainWindow(atlas, mode=mode, index=index, record=record)


def run(atlas, args) -> int:
    """Open the window on ``atlas`` (and ``args.scenario`` when the scenario engine exists)."""
    screenshot = getattr(args, "screenshot", None)
    ensure_display(offscreen=bool(screenshot))
    app = application()
    mode = getattr(args, "mode", None)
    win = make_window(atlas, mode=mode or "practice", record=not screenshot)  # a picture is not an attempt
    from ..core.training.scenario import DEFAULT_SCENARIO_ID

    scenario = getattr(args, "scenario", None) or DEFAULT_SCENARIO_ID
    if mode == "author":
        # Author mode: the case named (or none yet: New... or Open... in the Author panel)
        win.set_mode("author")
        if getattr(args, "scenario", None) and not win.author_open(args.scenario):
            win.close()
            raise UserError(win.author.last_error or f"cannot open {args.scenario}")
    elif not win.open_scenario(scenario, mode=mode):
        win.close()
        raise UserError(win.last_error)
    if screenshot:
        # the case is open (open_scenario returns once its body build and index are loaded):
        # frame its region, then draw
        win.resize(1280, 800)
        win.show()
        for _ in range(5):
            app.processEvents()
        win.controller.frame_case()
        for _ in range(3):
            app.processEvents()
        ok = win.save_screenshot(screenshot)
        win.close()
        app.processEvents()
        if not ok:
            raise UserError(f"{screenshot}: could not write the PNG")
        print(f"wrote {screenshot}")
        return 0
    win.show()
    return int(app.exec())
