"""User-facing errors.

Anything that is the user's to fix (a path, a class folder, a flag, a weights file) raises a
:class:`TransTailorError`. The CLI prints its message as one line and exits non-zero; the Python
API lets it propagate so callers can catch it.
"""


class TransTailorError(Exception):
    """A problem with the user's input or environment; the message says what to fix."""


class ConfigError(TransTailorError):
    """An invalid option value or configuration file."""


class DataError(TransTailorError):
    """A data set that is missing, malformed or inconsistent."""


class ModelError(TransTailorError):
    """An unknown model name, or weights that cannot be obtained or do not fit."""


class RunFileError(TransTailorError):
    """A file of a run folder that is missing, truncated or not what TransTailor wrote."""
