"""One exception hierarchy for seisgrid: every error a user can act on is a SeisgridError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os


class SeisgridError(Exception):
    """Base class: the message names the input, what was expected and what to do."""


class ConfigError(SeisgridError):
    """A setting or a command-line value is invalid."""


class StorageError(SeisgridError):
    """A path or URL cannot be opened, or a store is not what was expected."""


class ClusterError(SeisgridError):
    """A cluster that did not come up: batch jobs that never started, a scheduler that stopped answering."""


class InputFileError(SeisgridError):
    """One input file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
