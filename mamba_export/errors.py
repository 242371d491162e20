"""The exception family of mamba-export.

Every error a user can cause derives from :class:`MambaExportError`, so the CLI can
turn it into one line that names the problem and the fix (exit code 2) while
programming errors keep their traceback.
"""


class MambaExportError(Exception):
    """Base class of every error a user can cause."""


class InputShapeError(MambaExportError, ValueError):
    """A tensor given to one of our ops (SelectiveScan, CausalConv1d) or to an exported graph breaks the contract."""


class UnsupportedModelError(MambaExportError):
    """The checkpoint is not an architecture this exporter knows."""


class CheckpointError(MambaExportError):
    """The checkpoint is missing, unreadable or corrupt."""


class CustomOpsNotFoundError(MambaExportError):
    """The SelectiveScan custom-op library is not built or cannot be found."""


class OutputExistsError(MambaExportError):
    """The output folder exists and ``--force`` was not given."""


class OutputNotWritableError(MambaExportError):
    """The output folder cannot be created or written."""


class ExportFolderError(MambaExportError):
    """A folder given to the runtime is not a complete mamba-export output."""


class ParityError(MambaExportError):
    """An exported graph disagrees with the PyTorch model beyond its tolerance."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class BackendUnavailableError(MambaExportError):
    """A requested backend or execution provider is not available here."""


class BuildError(MambaExportError):
    """Building the custom-op library failed."""


class InvalidRequestError(MambaExportError, ValueError):
    """A request to the completion server is malformed (the server answers 400 with this message)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ServerBusyError(MambaExportError):
    """The completion server's queue is full (the server answers 503); retry later or add replicas."""
