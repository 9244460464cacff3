"""`DataError`, in a module with no imports so that every layer (and the CLI's start-up) can raise it."""


class DataError(ValueError):
    """Bad input data: the message names the column or argument and how to fix it."""
