"""One exception hierarchy. The CLI maps BadInput to exit code 2 and the rest to exit code 1."""


class BackfillError(Exception):
    """Base class: a failure a person can act on; its message is one line."""

    exit_code = 1


class BadInput(BackfillError):
    """The request is invalid; nothing was written."""

    exit_code = 2


class WorkFailed(BackfillError):
    """The work itself failed (dbt error, validation failed, lock held)."""

    exit_code = 1


class LockHeld(WorkFailed):
    """Another backfill of the same model holds the lock."""


class ValidationFailed(WorkFailed):
    """The staged rows did not pass validation; production is unchanged."""

    def __init__(
        self,
        message: str,
        failures: list[dict[str, object]] | None = None,
        staging: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.staging = staging  # where the rejected rows are kept for inspection
