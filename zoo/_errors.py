"""The one exception base of the project.

It lives in ``zoo`` because ``zoo`` is the lowest layer (the harness imports the zoo, never the other way round);
``cnnbench.errors`` re-exports it. The CLI turns any :class:`CnnbenchError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class CnnbenchError(Exception):
    """A mistake the user can fix; the message says how, in one line."""


class UnknownModelError(CnnbenchError, KeyError):
    """A model name that the registry does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadOverrideError(CnnbenchError, TypeError):
    """A keyword given to ``create_model`` that the model's builder does not take."""
