"""The one settings object, read from DOCSHIFT_* environment variables and overridden by CLI flags."""

from pathlib import Path

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
    batch_size: int = Field(1000, gt=0, le=100_000, description="Documents read and written per batch.")
    batches_per_task: int = Field(
        10, gt=0, description="Batches per Prefect task run: orchestration costs per task, not per document."
    )
    lock_lease_seconds: float = Field(
        60.0, gt=0, description="Lease of the migration lock; a crashed run's lock expires after this."
    )
    server_timeout_ms: int = Field(5000, gt=0, description="How long to wait for the server before giving up.")
    fault: str | None = Field(
        None, pattern=r"^[a-z-]+:[1-9][0-9]*$",
        description="For the fault suite only: `POINT:N` kills the process at the N-th pass through engine point POINT.",
    )


_overrides: dict = {}


def configure(**overrides) -> None:
    """Set values that win over the environment (the CLI's flags) for every later get_settings()."""
    _overrides.clear()
    _overrides.update({k: v for k, v in overrides.items() if v is not None})


def get_settings() -> Settings:
    """The settings in force: CLI flags over DOCSHIFT_* environment over defaults."""
    return Settings(**_overrides)
