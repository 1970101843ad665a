"""Errors that the CLI reports as one clear line (no traceback)."""

from ..app.errors import UserError

__all__ = ["UserError"]
