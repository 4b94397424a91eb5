"""Every collection docshift writes in the user's database besides the user's own, named in this one module."""

import uuid

from pymongo.collection import Collection
from pymongo.database import Database

LEDGER = "_migrations"
"""Current version, history entries, checkpoints, phases, the lock (docshift.ledger reads and writes it)."""
QUARANTINE = "_quarantine"
"""Documents whose migration function raised, left unchanged (docshift.engine.quarantine)."""
BACKUPS = "_backups"
"""The catalog of backup files: one entry per run (docshift.engine.backups)."""
BACKUP_PREFIX = "_docshift_backup."
"""`<prefix><run id>` holds a run's pre-images; `<prefix><run id>.changes` what the run wrote to each document;
`<prefix><run id>.ranges` the `_id` ranges it updated on the server (a migration declared as an update)."""
KEPT_PREFIX = "_docshift_dropped_"
"""`<prefix><run id>` is a collection that a run dropped (or a copy that its undo removed), renamed whole: stored
bytes and indexes as they were. No dot after the prefix: FerretDB refuses to rename to a name with a dot."""
SUFFIXES = (".changes", ".ranges")
"""Of a run's backup collections besides its pre-images: change records, ranges updated on the server."""


def kept_name(run_id: str) -> str:
    return KEPT_PREFIX + run_id


def run_collections(names: list[str], run_id: str) -> list[str]:
    """Of `names`, the collections that hold run `run_id`'s backup: pre-images, change records, ranges, a kept
    collection."""
    base = backup_name(run_id)
    return [n for n in names if n in (base, *(base + s for s in SUFFIXES), kept_name(run_id))]


def backup_run_id(name: str) -> str | None:
    """The run whose backup collection `name` is, or None for any other collection."""
    for prefix in (BACKUP_PREFIX, KEPT_PREFIX):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            for suffix in SUFFIXES:
                rest = rest.removesuffix(suffix)
            return rest
    return None


def is_docshift_collection(name: str) -> bool:
    return name in (LEDGER, QUARANTINE, BACKUPS) or backup_run_id(name) is not None


PROBE_PREFIX = "_docshift_probe."
"""`<prefix><random>`: a scratch collection where the pre-flight stores transformed documents, to see whether the
server can (docshift.engine.probe); dropped at once."""


def backup_name(run_id: str) -> str:
    return BACKUP_PREFIX + run_id


def pre_images(db: Database, run_id: str) -> Collection:
    """The run's pre-images: each document as it was just before the run changed it."""
    return db[backup_name(run_id)]


def changes(db: Database, run_id: str) -> Collection:
    """What the run wrote to each document, so that rollback can tell whether anyone wrote after it."""
    return db[backup_name(run_id) + ".changes"]


def ranges(db: Database, run_id: str) -> Collection:
    """The `_id` ranges the run updated on the server, and the fields it set there (docshift.engine.ranges)."""
    return db[backup_name(run_id) + ".ranges"]


def probe(db: Database) -> Collection:
    """A new scratch collection of its own for one probe (concurrent pre-flights do not share one)."""
    return db[PROBE_PREFIX + uuid.uuid4().hex[:12]]
