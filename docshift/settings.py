"""The one settings object, read from DOCSHIFT_* environment variables and overridden by CLI flags."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the database and the migration files are, and how runs behave."""

    model_config = SettingsConfigDict(env_prefix="DOCSHIFT_", extra="ignore")

    mongodb_uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27018/"),
        description="MongoDB connection string; a secret so that it is never printed with its password.",
    )
    database: str = Field("docshift_demo", description="Database whose collections are migrated.")
    migrations_dir: Path = Field(Path("migrations"), description="Folder of NNNN_slug.py migration files.")
    backup_dir: Path = Field(Path("backups"), description="Where backup files (mongodump format) of every run go.")
    backup_gzip: bool = Field(False, description="Gzip backup files, as `mongodump --gzip` does.")
    batch_size: int | None = Field(
        None, gt=0, le=100_000, description="Documents per batch, fixed; unset: sized to batch_time_seconds."
    )
    batch_time_seconds: float = Field(0.5, gt=0, description="Target time per batch when the batch size adapts.")
    batch_pause_seconds: float = Field(0.0, ge=0, description="Pause between batches, to leave the server room.")
    max_replication_lag_seconds: float | None = Field(
        10.0, gt=0, description="On a replica set, wait between batches while secondaries lag more than this."
    )
    throttle_max_wait_seconds: float = Field(
        600.0, gt=0, description="Longest wait for replication lag before the run stops at its checkpoint."
    )
    batches_per_task: int = Field(
        10, gt=0, description="Batches per Prefect task run: orchestration costs per task, not per document."
    )
    partitions: int = Field(
        1, ge=1, le=64, description="`_id` ranges migrated in parallel tasks, each with its own checkpoint."
    )
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where partitions run: threads of the flow's process, or Dask workers (prefect-dask)."
    )
    dask_address: str | None = Field(None, description="A running Dask scheduler; unset: a local cluster of processes.")
    dask_workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster.")
    lock_lease_seconds: float = Field(
        60.0, gt=0, description="Lease of the migration lock; a crashed run's lock expires after this."
    )
    soak_seconds: float = Field(
        86400.0, ge=0, description="Minimum time between an expand-contract change's contract and its cleanup."
    )
    server_timeout_ms: int = Field(5000, gt=0, description="How long to wait for the server before giving up.")
    alert_url: SecretStr | None = Field(
        None, description="Where `docshift alerts setup` sends notifications (JSON POST); a secret: it may carry a token."
    )
    alert_secret: str | None = Field(
        None, description="Name of a Prefect Secret block holding the alert URL, instead of `alert_url`."
    )
    prune_keep_last: int | None = Field(
        None, ge=0, description="After each successful run, prune backups beyond the N newest (never one still needed).")
    prune_older_than: str | None = Field(
        None, pattern=r"^\d+(\.\d+)?[smhdw]$",
        description="After each successful run, prune backups older than this (`30d`, `12h`; never one still needed).")
    fault: str | None = Field(
        None, pattern=r"^[a-z-]+:[1-9][0-9]*(:raise)?$",
        description="For the fault suite only: `POINT:N` kills the process at the N-th pass through engine point POINT "
                    "(`POINT:N:raise` raises there instead).",
    )


_overrides: dict = {}


def configure(**overrides) -> None:
    """Set values that win over the environment (the CLI's flags) for every later get_settings()."""
    _overrides.clear()
    _overrides.update({k: v for k, v in overrides.items() if v is not None})


def get_settings(database: str | None = None) -> Settings:
    """The settings in force: CLI flags over DOCSHIFT_* environment over defaults; a run's `database` parameter
    (one deployment, several databases; rehearsals) over all."""
    settings = Settings(**_overrides)
    return settings.model_copy(update={"database": database}) if database else settings
