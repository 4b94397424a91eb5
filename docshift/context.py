"""The runtime state of one command or flow run in one object, as Alembic's Config → ScriptDirectory →
MigrationContext: the settings in force, the migration scripts they point at, and the database."""

from collections.abc import Iterable
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


def migrated_collections(scripts: ScriptDirectory) -> list[str]:
    """The collections every step of every migration changes."""
    return sorted({m.collection for _, m in scripts.units()})


def looks_mistyped(present: Iterable[str], scripts: ScriptDirectory) -> bool:
    """A database (given by its collection names) with neither a docshift ledger nor any collection the migrations
    change: most likely a mistyped name, not one to read as "version 1, all pending"."""
    wanted = migrated_collections(scripts)
    present = set(present)
    return bool(wanted) and LEDGER not in present and not present.intersection(wanted)


def check_database(ctx: RunContext, new_database: bool = False) -> None:
    """Refuse a database that looks mistyped (looks_mistyped) before anything reads it or writes a ledger into it;
    `new_database` says it is meant."""
    db, scripts = ctx.db, ctx.scripts
    if new_database or not looks_mistyped(db.list_collection_names(), scripts):
        return
    try:
        others = [n for n in db.client.list_database_names() if n not in ("admin", "config", "local")]
        where = f"databases on this server: {', '.join(others) or 'none'}"
    except OperationFailure:
        where = "this server does not let docshift list its databases"
    raise DatabaseError(f"database {db.name!r} has no docshift ledger and none of the collections the migrations change "
                        f"({', '.join(migrated_collections(scripts))}), so nothing was done; {where}. Check --database "
                        f"(DOCSHIFT_DATABASE), or if it is a new database, run `docshift migrate --new-database` to start "
                        f"its ledger")
