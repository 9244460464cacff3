"""The errors and warnings jaxpref raises, below every other module (they import nothing of jaxpref)."""

__all__ = ["DataError", "DegenerateDataWarning", "IdentifiabilityWarning"]


class DataError(ValueError):
    """Bad input data or options: the message names the column or argument and how to fix it."""


class DegenerateDataWarning(UserWarning):
    """The data cannot inform the fit (one user, or the same answer everywhere)."""


class IdentifiabilityWarning(UserWarning):
    """The data do not (or barely) pin down a parameter: mu against P_eta, or P_eta's shape
    with too few labels per user (docs/identifiability.md)."""
