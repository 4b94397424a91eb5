"""The one error hierarchy: everything a user can cause ends as a DocshiftError with a plain message."""


class DocshiftError(Exception):
    """An error the user can understand and act on; the CLI prints its message and exits non-zero."""


class MigrationFileError(DocshiftError):
    """A migration file cannot be used: it does not import, or what it defines is wrong."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path


class TargetError(DocshiftError):
    """The requested target version does not exist."""


class DatabaseError(DocshiftError):
    """The database cannot be reached, authenticated to, or used."""


class LockHeldError(DocshiftError):
    """Another run holds the migration lock of this database."""


class LockLostError(DocshiftError):
    """This run's lease lock was broken or expired while it ran; it stopped at its last checkpoint."""


class RollbackPendingError(DocshiftError):
    """A rollback was interrupted; it must be finished before anything else runs."""


class ChangedMigrationError(DocshiftError):
    """An applied migration's file no longer matches the checksum recorded when it ran."""


class BackupError(DocshiftError):
    """A backup cannot be written, is missing, or does not match its recorded checksum."""


class PhaseError(DocshiftError):
    """An expand-contract phase cannot start: the phase before it has not completed and verified, or it was refused."""


class ThrottleError(DocshiftError):
    """The throttle waited too long for replication to catch up (or to be measurable); the run stopped at a checkpoint."""


class TransformError(DocshiftError):
    """A migration's up or down function failed or returned something unusable for one document."""


class VerificationFailed(DocshiftError):
    """A migration's result did not pass its checks."""


class MigrationFailed(DocshiftError):
    """A migration run failed; its changes were rolled back (or left resumable when rollback was impossible)."""


class AlertSetupError(DocshiftError):
    """Alerts cannot be set up: no alert URL configured, no such Secret block, or no Prefect server to hold them."""


class SettingsError(DocshiftError):
    """The settings cannot be used: an unreadable settings file, an unknown key in it, or an invalid value."""


class ProjectError(DocshiftError):
    """`docshift init` or `docshift new` would overwrite a file, or cannot write where it was told to."""


class DeployError(DocshiftError):
    """`docshift deploy` cannot make the deployments: no Prefect server, a bad schedule, a clash of names."""


class LookupRefused(DocshiftError):
    """A migration function looked up a collection it does not declare in `reads` (or one of docshift's own)."""


class OperationError(DocshiftError):
    """A collection-level step cannot run: its collection or index is not as it needs, the data violates a unique
    index, or the server lacks a feature it needs."""


class ConnectionClosedAfterWrite(ConnectionError):
    """The server closed the connection while docshift wrote, yet answers otherwise and stored each value when tried
    alone. Not a DocshiftError: retried, but once only (tasks/retry.py): the same write closing it again is no
    network trouble."""


class RestoreRefused(DocshiftError):
    """Restoring a backup would leave documents behind or ahead of the recorded version, or a run is unfinished."""


class Interrupted(DocshiftError):
    """A run stopped at a batch boundary because it was asked to (SIGINT, SIGTERM, its orchestration gone)."""


class PartitionStalled(DocshiftError):
    """A partition made no checkpoint for DOCSHIFT_PARTITION_STALL_SECONDS: its run paused, the lock kept."""


class RehearsalFailed(DocshiftError):
    """A rehearsal's migration failed on the scratch copy: the real run would fail the same way."""


class OrchestrationError(DocshiftError):
    """The Prefect server a command needs could not be started or reached, or its API failed during the run."""


class FleetError(DocshiftError):
    """A fleet selector that selects nothing, or what must not be migrated; a fleet run that halted."""
