"""Errors raised by mlkit. Every message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["MlkitError", "ParameterError", "DataError"]


class MlkitError(Exception):
    """Base class of every error mlkit raises on purpose."""


class ParameterError(MlkitError, ValueError):
    """Raised when a notebook or function parameter has an unknown name, a wrong type or a bad value."""


class DataError(MlkitError, ValueError):
    """Raised when data cannot be used: a missing file or column, a target that does not fit the task, too few rows."""
