"""The ``imssim`` command: one entry point with subcommands.

Each subcommand group lives in its own module with a ``register(subparsers)`` function
that adds its parser(s) and sets ``func`` (a callable taking the parsed args and returning
an exit code). Qt and pyvista are imported only inside the commands that need them.

Exit codes (README, "Exit codes"): 0 ok / passed, 1 failed grade (or failed validation),
2 bad input or usage, 3 internal error. Errors are one line on stderr; the traceback is
printed only with ``--debug`` or ``IMSSIM_DEBUG=1``.
"""

from __future__ import annotations

from .main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, build_parser, main

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]
