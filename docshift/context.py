"""The runtime state of one command or flow run in one object, as Alembic's Config → ScriptDirectory →
MigrationContext: the settings in force, the migration scripts they point at, and the database."""

from dataclasses import dataclass

from pymongo.database import Database

from .db import connect
from .loader import ScriptDirectory
from .settings import Settings


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    scripts: ScriptDirectory
    db: Database

    @classmethod
    def open(cls, settings: Settings) -> "RunContext":
        """Load the migration files first (a broken file is reported before any connection), then connect."""
        scripts = ScriptDirectory.load(settings.migrations_dir)
        return cls(settings, scripts, connect(settings))
