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
"""`<prefix><run id>` holds a run's pre-images; `<prefix><run id>.changes` what the run wrote to each document."""
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


def probe(db: Database) -> Collection:
    """A new scratch collection of its own for one probe (concurrent pre-flights do not share one)."""
    return db[PROBE_PREFIX + uuid.uuid4().hex[:12]]
