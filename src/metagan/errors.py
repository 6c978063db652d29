"""User-facing errors.

Every error a user can cause (bad data, bad config, bad checkpoint, a diverging run) is a
``MetaganError`` whose message says what went wrong and what to do. The CLI prints the message and
exits with a non-zero status; the Python API lets it propagate.
"""
from __future__ import annotations


class MetaganError(Exception):
    """Base class: a problem the user can fix; the message says how."""

    exit_code = 2


class ConfigError(MetaganError):
    """Unknown preset, unknown config key, or a value of the wrong type or range."""


class DataError(MetaganError):
    """Missing, corrupt or insufficient data (files, checksums, images, class sizes)."""


class CheckpointError(MetaganError):
    """A checkpoint that is missing, corrupt, or belongs to another model."""


class OutputError(MetaganError):
    """An output path a command refuses: a file in the way of a folder, an existing file or a non-empty folder
    without --overwrite, one of the command's own inputs, or a place that cannot be written."""


class TrainingDiverged(MetaganError):
    """A loss or gradient became NaN or inf; nothing was written."""

    exit_code = 3
