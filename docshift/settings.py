"""The one settings object: CLI flags over DOCSHIFT_* environment variables over the project's settings file
(`docshift.toml`, or `[tool.docshift]` in `pyproject.toml`) over defaults."""

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import SettingsError
from .spec import check_timezone

SETTINGS_FILE = "docshift.toml"
PYPROJECT = "pyproject.toml"
PATH_SETTINGS = ("migrations_dir", "backup_dir")
"""Folders, which a settings file gives relative to itself."""
PROJECT_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
"""A project name: part of its Prefect deployments' names (`migrate/<project>`), so lowercase letters, digits, dashes."""


def deployment_slug(text: str) -> str:
    """`text` as a name docshift gives deployments: lowercase letters and digits, words joined by single dashes."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def project_folder() -> Path:
    """The project's folder: the one that holds its settings file, else the working directory."""
    found = find_settings_file()
    return found.parent if found else Path.cwd().resolve()


def default_project(folder: Path | None = None) -> str:
    """The `project` setting when none is given: the name of the project's folder (of `folder`), made a valid name."""
    return deployment_slug((folder or project_folder()).resolve().name) or "docshift"


class Settings(BaseSettings):
    """Where the database and the migration files are, and how runs behave."""

    model_config = SettingsConfigDict(env_prefix="DOCSHIFT_", extra="ignore")

    mongodb_uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27018/"),
        description="MongoDB connection string; a secret so that it is never printed with its password.",
    )
    database: str = Field("docshift_demo", description="Database whose collections are migrated.")
    databases: str | None = Field(
        None, description="The fleet of `docshift fleet`: database names (comma-separated), globs over the server's "
                          "names (`tenant_*`), or `module:function` of the project returning names.")
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
    plan_check_documents: int = Field(
        1000, ge=1, le=1_000_000,
        description="Documents per step that `plan` and the pre-flight transform in memory and check for values the "
                    "server refuses (docshift.servers.refused_value).",
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
    orchestration_timeout_seconds: float = Field(
        60.0, gt=0, description="How long a `docshift` run waits for its Prefect API to answer again before it stops."
    )
    partition_stall_seconds: float = Field(
        600.0, gt=0, description="How long a partition may go without a checkpoint before its run pauses as stalled "
                                 "(keeping the lock: the stuck task may still write).")
    alert_url: SecretStr | None = Field(
        None, description="Where `docshift alerts setup` sends notifications (JSON POST); a secret: it may carry a token."
    )
    alert_secret: str | None = Field(
        None, description="Name of a Prefect Secret block holding the alert URL, instead of `alert_url`."
    )
    project: str = Field(
        default_factory=default_project,
        description="This project's name on the Prefect server: its deployments are `migrate/<project>`, "
                    "`expand/<project>-<name>`, …, so projects sharing a server never overwrite each other's; "
                    "default: the name of the folder of the settings file (else of the working directory).")
    work_pool: str = Field("docshift", min_length=1, description="Prefect process work pool of `docshift deploy`'s deployments.")
    timezone: str = Field("UTC", description="Timezone of deployment schedules that name none (IANA name).")
    verify_schedule: str | None = Field(
        "0 6 * * *", description="When the `verify` deployment re-checks the current version (cron); empty: never."
    )
    fleet_schedule: str | None = Field(
        "0 2 * * 6", description="The release window in which the `migrate-fleet` deployment runs (cron or RRULE; "
                                 "deployed paused: resume it for a release); empty: by hand only."
    )
    prune_keep_last: int | None = Field(
        None, ge=0, description="After each successful run, prune backups beyond the N newest (never one still needed).")
    prune_older_than: str | None = Field(
        None, pattern=r"^\d+(\.\d+)?[smhdw]$",
        description="After each successful run, prune backups older than this (`30d`, `12h`; never one still needed).")
    models: dict[str, str] = Field(
        default_factory=dict, description="The application's model of each collection, `module:Class` (imported "
                                          "relative to the settings file's folder), that `docshift check` compares "
                                          "with the latest target_model.")
    fault: str | None = Field(
        None, pattern=r"^[a-z-]+:[1-9][0-9]*(:raise|:hang:[0-9.]+)?$",
        description="For the fault suite only: `POINT:N` kills the process at the N-th pass through engine point POINT "
                    "(`POINT:N:raise` raises there instead; `POINT:N:hang:S` stops there for S seconds, a stuck task).",
    )

    @field_validator("project")
    @classmethod
    def _project_name(cls, name: str) -> str:
        if not PROJECT_NAME.match(name):
            raise ValueError(f"{name!r} is not a project name: lowercase letters, digits and dashes "
                             f"(e.g. {deployment_slug(name) or 'shop'!r})")
        return name

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        return check_timezone(name)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        """Flags (init arguments), then the environment, then the settings file."""
        return init_settings, env_settings, SettingsFileSource(settings_cls, find_settings_file())


class EnvironmentSettings(Settings):
    """Flags and environment only: what `docshift init` writes into a new settings file."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return init_settings, env_settings


def find_settings_file(start: Path | None = None) -> Path | None:
    """The settings file docshift reads: `docshift.toml`, or a `pyproject.toml` with a `[tool.docshift]` table, in
    `start` (default: the working directory) or the nearest folder above it."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / SETTINGS_FILE).is_file():
            return candidate / SETTINGS_FILE
        pyproject = candidate / PYPROJECT
        if pyproject.is_file() and "docshift" in read_toml(pyproject).get("tool", {}):
            return pyproject
    return None


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read it as TOML: {exc}") from exc


def read_toml_table(path: Path) -> dict:
    """docshift's settings in a settings file: all of docshift.toml, or [tool.docshift] of pyproject.toml."""
    data = read_toml(path)
    return data.get("tool", {}).get("docshift", {}) if path.name == PYPROJECT else data


class SettingsFileSource(PydanticBaseSettingsSource):
    """The settings file through pydantic-settings' own TOML sources, with two additions: folders in it are relative
    to the file (not to wherever docshift runs), and a key docshift does not know is an error, not silently ignored."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole table at once

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        read_toml(self.path)  # a syntax error becomes one plain message naming the file
        # pydantic-settings' TOML source; its PyprojectTomlConfigSettingsSource would look only for pyproject.toml
        header = ("tool", "docshift") if self.path.name == PYPROJECT else ()
        source = TomlConfigSettingsSource(self.settings_cls, self.path, toml_table_header=header)
        unknown = sorted(set(source.toml_data) - set(self.settings_cls.model_fields))
        if unknown:
            raise SettingsError(f"{self.path}: unknown setting(s) {', '.join(unknown)}; known: "
                                f"{', '.join(self.settings_cls.model_fields)}")
        values = source()
        for key in PATH_SETTINGS:
            if key in values:
                values[key] = self.path.parent / Path(values[key]).expanduser()
        return values


_overrides: dict = {}


def configure(**overrides) -> None:
    """Set values that win over the environment (the CLI's flags) for every later get_settings()."""
    _overrides.clear()
    _overrides.update({k: v for k, v in overrides.items() if v is not None})


def overridden() -> set[str]:
    """The settings the command line set: they hold in this process only (a Dask worker reads its own environment)."""
    return set(_overrides)


def get_settings(database: str | None = None, read_file: bool = True) -> Settings:
    """The settings in force: CLI flags over DOCSHIFT_* environment over the settings file over defaults; a run's
    `database` parameter (one deployment, several databases; rehearsals) over all. `read_file=False` skips the file."""
    try:
        settings = (Settings if read_file else EnvironmentSettings)(**_overrides)
    except ValidationError as exc:
        where = find_settings_file() if read_file else None
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid settings: {problems} (from the command-line flags, DOCSHIFT_* environment "
                            f"variables{f' or {where}' if where else ''})") from exc
    return settings.model_copy(update={"database": database}) if database else settings
