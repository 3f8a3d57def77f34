"""The one error type a stage turns into a clear one-line message and a non-zero exit."""


class InputError(Exception):
    """Bad user input: a file, column or parameter is wrong. The message names it and the fix."""


class NotRun(Exception):
    """A method cannot run on this data at this budget (e.g. a supervised method whose training
    span holds no labelled anomaly). Not an error: the stage records ``not run: <reason>``."""
