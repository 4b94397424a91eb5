"""A run's state and options: plain values that a checkpoint stores and any process can be given."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .. import storage
from ..ledger import CHECKPOINT, as_utc, now


@dataclass
class RunState:
    """A run's progress as its checkpoint records it (beside its step's identity): enough for any process to resume it."""

    run_id: str
    total: int
    count_before: int
    last_id: Any = None
    started: bool = False
    done: int = 0
    matched: int = 0
    changed: int = 0
    batches: int = 0
    validated: int | None = None
    """Documents checked against the target model as they were written; None for a run started by a docshift that
    did not count them (verification then reads the documents)."""
    resumed: int = 0
    quarantined: list = field(default_factory=list)
    dump: str | None = None
    started_at: Any = None
    flow_run_id: str | None = None
    partition: int | None = None
    partitioned: bool = False
    ranged: bool = False
    """Its documents were updated on the server by `_id` ranges (docshift.engine.ranges); the rest go per document."""
    none_below: int | None = None
    """The step's new version, when the run's ranges left no document of the collection below it (counted once after
    them): no per-document pass, and verification takes that count. Not checkpointed: a resumed run counts again."""
    finished: bool = False

    @classmethod
    def from_checkpoint(cls, saved: dict) -> "RunState":
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})

    @property
    def checkpoint_id(self) -> str:
        """Where this state's batches checkpoint: the run's own checkpoint, or its partition's."""
        return CHECKPOINT if self.partition is None else f"{CHECKPOINT}.{self.partition}"

    @property
    def backup(self) -> str:
        return storage.backup_name(self.run_id)

    @property
    def progress(self) -> dict:
        """What every batch checkpoints."""
        return {k: getattr(self, k) for k in ("last_id", "started", "done", "matched", "changed", "batches", "validated",
                                              "quarantined")}

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started (across resumes)."""
        return (now() - as_utc(self.started_at)).total_seconds()

    @property
    def rate(self) -> float:
        """Documents per second since the run started."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0


class MigrateOptions(BaseModel):
    """A `migrate` run's options as a user gives them: command-line flags, or the `migrate` deployment's parameters."""

    batch_size: int | None = Field(None, ge=1, description="Documents per batch (env DOCSHIFT_BATCH_SIZE); unset: sized "
                                                           "to the batch time.")
    max_failures: int = Field(0, ge=0, description="Documents that may fail and be quarantined before the run rolls back.")
    window_minutes: float | None = Field(None, ge=0, description="Maintenance window: pause at a checkpoint when it ends.")
    partitions: int | None = Field(None, ge=1, le=64, description="`_id` ranges migrated in parallel (env "
                                                                  "DOCSHIFT_PARTITIONS).")
    allow_changed: bool = Field(False, description="Run although applied migration files were edited.")
    new_database: bool = Field(False, description="Start a ledger in a database that has none of the migrated "
                                                  "collections yet (else refused as a mistyped name).")


@dataclass(frozen=True)
class RunOptions:
    """How a step runs, in plain values that any process can be given (a Dask worker, a deployment's run)."""

    batch_size: int | None = None
    max_failures: int = 0
    deadline: datetime | None = None
    partitions: int = 1
