"""``imssim run [SCENARIO]``: start the simulator (also what a bare ``imssim`` does)."""

from __future__ import annotations

import sys


NO_DISPLAY_HELP = """\
imssim: no display found, so the simulator window cannot open.
  - On a desktop, run imssim from a graphical session (DISPLAY or WAYLAND_DISPLAY set).
  - Over SSH, use 'ssh -X' or run under a virtual screen:  xvfb-run -a imssim
  - Without any screen, render a picture instead:  imssim run --screenshot out.png
  - Qt on Debian needs:  sudo apt-get install libegl1 libgl1 libglx-mesa0 libgl1-mesa-dri \\
      libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \\
      libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0"""


from ..app.display import has_display  # noqa: E402 - re-exported for callers of imssim.cli.run


def cmd_run(args) -> int:
    from .atlas import load

    screenshot = getattr(args, "screenshot", None)
    if not screenshot and not has_display():
        print(NO_DISPLAY_HELP, file=sys.stderr)
        return 2  # README, "Exit codes": 3 is kept for internal errors
    atlas = load(args)
    from ..qt import app as qt_app  # Qt is imported here only, when the window opens

    return int(qt_app.run(atlas, args) or 0)


def register(sub) -> None:
    p = sub.add_parser("run", help="start the simulator (optionally on a scenario)")
    p.add_argument("scenario", nargs="?", help="scenario file or library id (default: the default scenario)")
    p.add_argument("--mode", choices=["practice", "quiz", "exam", "author"],
                   help="override the scenario's mode; author: write or edit the case (SCENARIO, or none: New...)")
    p.add_argument("--screenshot", metavar="FILE", help="render off-screen, save a PNG and exit")
    p.set_defaults(func=cmd_run)
