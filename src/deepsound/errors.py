"""Errors a user can cause and fix themselves.

The CLI prints these as one line and exits non-zero, without a stack trace:
they name the file and what is wrong with it. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class DeepSoundError(Exception):
    """Base class of user-facing errors (bad input, missing weights, bad options)."""

    exit_code = 2


class MediaError(DeepSoundError):
    """A file that is missing, not media, corrupt, or lacks the stream a step needs."""


class WeightsError(DeepSoundError):
    """A weight file that is missing (offline), fails its checksum, or does not fit the model."""

    exit_code = 3


class ConfigError(DeepSoundError):
    """An unknown component name, an impossible option combination."""


class OutputError(DeepSoundError):
    """An output folder that cannot be created or written."""
