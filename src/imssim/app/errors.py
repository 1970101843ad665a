"""Errors the application reports to the user as one line (the CLI maps them to exit 2)."""


class UserError(Exception):
    """Bad input or usage: the message is shown as one line (exit code 2 from the CLI)."""
