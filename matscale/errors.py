"""Error types that carry a user-facing message.

Every mistake a user can make (a bad path, a corrupt file, a wrong setting) raises one of
these with a single message saying what is wrong and what to do; the CLI prints the message
without a traceback and exits non-zero. Programming errors stay ordinary exceptions.
"""


class MatscaleError(Exception):
    """Base class: the message is shown to the user as is."""


class DataError(MatscaleError):
    """Missing, empty, corrupt or inconsistent data (files, labels, fractions, subsets)."""


class ConfigError(MatscaleError):
    """An invalid setting: unknown architecture or size, out-of-range value, bad device."""


class CheckpointError(MatscaleError):
    """A checkpoint that is missing, corrupt or belongs to another configuration."""


class FitError(MatscaleError):
    """A scaling-law fit that cannot be made or did not converge."""
