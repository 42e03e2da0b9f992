"""Errors that speak to the user. One base, :class:`CnnbenchError`, defined in the zoo (the lowest layer)."""

from zoo._errors import BadOverrideError, CnnbenchError, UnknownModelError

__all__ = ["CnnbenchError", "UnknownModelError", "BadOverrideError", "NoMatchError"]


class NoMatchError(CnnbenchError):
    """A wildcard pattern that matches no registered model."""
