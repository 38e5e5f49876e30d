"""The error every command raises for bad input: one line, exit code 2."""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2, no traceback."""
