"""Exceptions that carry a message meant for the user (the CLI prints it, the app shows it)."""


class FinetuneError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelNotAvailable(FinetuneError):
    """The model cannot be loaded: not a folder, not cached, and the Hub is unreachable."""


class DataError(FinetuneError):
    """The training or evaluation text is unusable (missing, empty, binary, too short)."""


class OutOfMemory(FinetuneError):
    """Training ran out of GPU or CPU memory; the message names the settings to lower."""


class DiskFull(FinetuneError):
    """A checkpoint or the final model could not be written: no space left on the disk."""
