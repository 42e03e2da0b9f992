"""Errors that speak to the user. One base, :class:`CnnbenchError`, defined in the zoo (the lowest layer)."""

from zoo._errors import BadOverrideError, CnnbenchError, UnknownModelError

__all__ = ["CnnbenchError", "UnknownModelError", "BadOverrideError", "NoMatchError", "first_line", "reason"]


class NoMatchError(CnnbenchError):
    """A wildcard pattern that matches no registered model."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its type's name when it has none): what a one-line
    error quotes of a library's multi-line failure."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def reason(err: BaseException, limit: int = 160) -> str:
    """``Type: first line``, cut to ``limit`` characters: a failed row's reason."""
    return f"{type(err).__name__}: {first_line(err)}"[:limit]
