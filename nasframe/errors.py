"""Errors that nasframe raises for bad input.

Every error a user can cause (a typo in a config, a malformed arch string, a missing data path) is a
:class:`NasframeError`, whose message names the problem. The CLI prints it as one line and exits with
status 2 instead of showing a traceback.
"""


class NasframeError(Exception):
    """Base class of all user-facing nasframe errors."""


class UnknownNameError(NasframeError, KeyError):
    """A registry was asked for a name it does not know (space, sampler, selector, dataset)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidArchError(NasframeError, ValueError):
    """An architecture (mapping or native string) is not a member of its search space."""


class ConfigError(NasframeError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(NasframeError, OSError):
    """A data set could not be found or read."""


class NonFiniteLossError(NasframeError, FloatingPointError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class CheckpointError(NasframeError, RuntimeError):
    """A checkpoint is missing, corrupt, or was written for another space or version."""
