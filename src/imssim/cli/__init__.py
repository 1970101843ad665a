"""The ``imssim`` command: one entry point with subcommands.

Each subcommand group lives in its own module with a ``register(subparsers)`` function
that adds its parser(s) and sets ``func`` (a callable taking the parsed args and returning
an exit code). Qt and pyvista are imported only inside the commands that need them.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from .errors import UserError

#: Modules under imssim.cli that register subcommands, in help order.
COMMAND_MODULES = ["run", "atlas", "scenario", "score", "progress"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(
        prog="imssim",
        description="Interactive 3D training simulator for Intramuscular Stimulation (IMS).",
    )
    p.add_argument("--version", action="version", version=f"imssim {__version__}")
    p.add_argument("--atlas", help="atlas to use (default: the selected one, normally 'builtin')")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # no subcommand: start the simulator on the default scenario
        from .run import cmd_run

        args.scenario = None
        args.screenshot = None
        args.mode = None
        return cmd_run(args)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"imssim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
