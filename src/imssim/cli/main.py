"""The ``imssim`` entry point: parse the command line, run the subcommand, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from .errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _bad_input_errors() -> tuple:
    """Errors that mean the user's input (a file, a name) is bad: exit 2, one line."""
    from ..core.model.atlas import AtlasFileError, AtlasLookupError
    from ..core.training.placements import PlacementsError
    from ..core.training.recording import RecordingError
    from ..core.safefile import SafeFileError
    from ..core.training.scenario import ScenarioError
    from ..core.training.session import SessionError

    return (UserError, AtlasFileError, AtlasLookupError, PlacementsError, RecordingError, SafeFileError,
            ScenarioError, SessionError)

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
    p.add_argument("--debug", action="store_true", help="print the traceback of an internal error "
                                                        "(also IMSSIM_DEBUG=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"imssim.cli.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse exits 2
    debug = bool(getattr(args, "debug", False)) or os.environ.get("IMSSIM_DEBUG", "") not in ("", "0")
    try:
        if getattr(args, "atlas", None) is not None:
            from ..core.model.store import check_name

            check_name(args.atlas, allow_builtin=True, what="--atlas")
        if not getattr(args, "func", None):
            # no subcommand: start the simulator on the default scenario
            from .run import cmd_run

            args.scenario = None
            args.screenshot = None
            args.mode = None
            return cmd_run(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the one place errors become exit codes
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(e, _bad_input_errors()):
            if getattr(e, "issues", None):  # ScenarioError: the first problem, and how many more
                more = len(e.issues) - 1
                msg = str(e.issues[0]) + (f" (and {more} more)" if more else "")
            else:
                msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            msg = " ".join(msg.split())
            print(f"imssim: error: {msg}", file=sys.stderr)
            return EXIT_BAD_INPUT
        msg = " ".join(str(e).split())[:300]
        hint = "" if debug else " (run with --debug or IMSSIM_DEBUG=1 for the traceback)"
        print(f"imssim: internal error: {type(e).__name__}: {msg}{hint}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
