"""The runtime state of one command or flow run in one object, as Alembic's Config → ScriptDirectory →
MigrationContext: the settings in force, the migration scripts they point at, and the database."""

from dataclasses import dataclass

from pymongo.database import Database
from pymongo.errors import OperationFailure

from .db import connect
from .errors import DatabaseError
from .loader import ScriptDirectory
from .settings import Settings
from .storage import LEDGER


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


def check_database(ctx: RunContext, new_database: bool = False) -> None:
    """Refuse a database with neither a docshift ledger nor any collection the migrations change, most likely a
    mistyped name, before anything reads it as "version 1, all pending" or writes a ledger into it; `new_database`
    says it is meant."""
    db, scripts = ctx.db, ctx.scripts
    wanted = sorted({m.collection for _, m in scripts.units()})
    if new_database or not wanted:
        return
    present = set(db.list_collection_names())
    if LEDGER in present or present.intersection(wanted):
        return
    try:
        others = [n for n in db.client.list_database_names() if n not in ("admin", "config", "local")]
        where = f"databases on this server: {', '.join(others) or 'none'}"
    except OperationFailure:
        where = "this server does not let docshift list its databases"
    raise DatabaseError(f"database {db.name!r} has no docshift ledger and none of the collections the migrations change "
                        f"({', '.join(wanted)}), so nothing was done; {where}. Check --database (DOCSHIFT_DATABASE), or "
                        f"if it is a new database, run `docshift migrate --new-database` to start its ledger")
