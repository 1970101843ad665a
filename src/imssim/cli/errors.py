"""Errors that the CLI reports as one clear line (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a missing file, a broken scenario, an unknown name."""
