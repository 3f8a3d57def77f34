"""The one error type a stage turns into a clear one-line message and a non-zero exit."""


class InputError(Exception):
    """Bad user input: a file, column or parameter is wrong. The message names it and the fix."""
