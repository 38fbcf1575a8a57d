"""The one error tree of ``pipeline``.

::

    PipelineError                      root: catch this to catch everything we raise
    ├── ConfigError                    bad YAML, unknown key, missing ${VAR}, bad option (exit 2)
    ├── DependencyError                this Python lacks the project's dependencies (exit 2)
    ├── RegistryError                  (exit 2)
    │   ├── UnknownStageError          name not registered; lists the names that are
    │   └── StageLoadError             entry point failed to import; keeps the cause
    └── StageError                     a stage failed while running (exit 1)
        ├── ExtractError
        │   └── TransientExtractError  (+ TransientError) 429, 5xx, reset, timeout, bad JSON on 200
        ├── TransformError
        ├── LoadError
        │   ├── TransientLoadError     (+ TransientError)
        │   ├── CommitConflict         another run holds or changed this day
        │   ├── OutsideLake            a key read back from the lake points outside it: never acted on
        │   └── RegressionRefused      the new day would replace a good one with far fewer rows
        └── ReportError

    TransientError                     marker mixin: "retrying may help"

Retry decorators retry only ``TransientError``; everything else is fatal at once.
Messages never carry secrets: stages build them from redacted values only.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1
    outcome: str | None = None
    """What the failure did to the lake, in a few words; the CLI prints it on the error's line."""


class TransientError(Exception):
    """Marker mixin: the operation may succeed if retried."""


class ConfigError(PipelineError):
    """The configuration or the command line is invalid."""

    exit_code = 2


class DependencyError(PipelineError):
    """The interpreter lacks the project's dependencies: the wrong Python, or a venv never set up."""

    exit_code = 2


class RegistryError(PipelineError):
    """A stage could not be found or loaded."""

    exit_code = 2


class UnknownStageError(RegistryError):
    """No stage of that kind is registered under that name."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        names = ", ".join(self.available) or "(none)"
        super().__init__(f"unknown {kind} {name!r}; registered {kind}s: {names}")


class StageLoadError(RegistryError):
    """An entry point exists but importing it failed."""

    def __init__(self, kind: str, name: str, distribution: str, cause: BaseException) -> None:
        self.kind = kind
        self.name = name
        self.distribution = distribution
        super().__init__(
            f"could not load {kind} {name!r} from distribution {distribution!r}: {type(cause).__name__}: {cause}"
        )


class StageError(PipelineError):
    """A stage failed while the pipeline was running."""

    kind = "stage"

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        self.stage = stage
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.kind} {self.stage!r}: {message}" if self.stage else message


class ExtractError(StageError):
    """The extractor failed."""

    kind = "extractor"


class TransientExtractError(ExtractError, TransientError):
    """An extract failure worth retrying (429, 5xx, reset, timeout)."""


class TransformError(StageError):
    """The transformer failed."""

    kind = "transformer"


class LoadError(StageError):
    """The loader failed."""

    kind = "loader"
    applied: bool | None = None
    """For a failed write: ``False`` when the store certainly did not apply it (it answered the only attempt
    with an error); ``None`` when nobody can tell (a lost answer, a retry after one)."""


class TransientLoadError(LoadError, TransientError):
    """A load failure worth retrying."""


class CommitConflict(LoadError):
    """Another run is committing the same day and feed, or committed it since this run began."""


class OutsideLake(LoadError):
    """A key or path read back from the lake (a manifest, a lock record) points outside it; never acted on."""


class RegressionRefused(LoadError):
    """The regression guard refused to replace a good day with a much smaller one."""


class ReportError(StageError):
    """A reporter failed."""

    kind = "reporter"
