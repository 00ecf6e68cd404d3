"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class NumbiasError(Exception):
    """A problem with the user's input (file, column, scale, model, server answer)."""
