"""Backup retention: which runs' backups may go (`docshift backups prune`, and after successful runs when
DOCSHIFT_PRUNE_KEEP_LAST / DOCSHIFT_PRUNE_OLDER_THAN are set), and removing them.

Never pruned, whatever the options: the backups a `down` still needs (every `up` run of a migration since it was last
reverted: Ledger.pre_image_runs, which also covers a dropped collection's kept copy), the latest finished run's (that
`docshift rollback --run` undoes), and an unfinished run's. Each kept backup says why.
"""

import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pymongo.database import Database

from .. import storage
from ..errors import TargetError
from ..ledger import Ledger, as_utc, now
from ..servers import UNSUPPORTED
from .cursor import collection_count

AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `45s` as a timedelta; a TargetError (one plain line) otherwise."""
    match = AGE.match(text.strip())
    if not match:
        raise TargetError(f"cannot read the age {text!r}: give a number and a unit, e.g. 30d, 12h, 90m, 2w")
    return timedelta(**{UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class Backup:
    """One run's backup wherever it is: collections in the database (pre-images, changes, a kept collection), files."""

    run_id: str
    version: int | None
    direction: str | None
    created: datetime | None
    collections: tuple[str, ...]
    folder: Path | None
    documents: int
    data_bytes: int
    file_bytes: int


@dataclass(frozen=True)
class Retention:
    """Each backup, oldest first, with why it is kept (None: it is pruned)."""

    decisions: list[tuple[Backup, str | None]]
    dry_run: bool

    @property
    def kept(self) -> list[tuple[Backup, str]]:
        return [(b, why) for b, why in self.decisions if why is not None]

    @property
    def pruned(self) -> list[Backup]:
        return [b for b, why in self.decisions if why is None]

    def totals(self) -> tuple[int, int, int]:
        """Documents, bytes of server data and bytes of files of the pruned backups."""
        return (sum(b.documents for b in self.pruned), sum(b.data_bytes for b in self.pruned),
                sum(b.file_bytes for b in self.pruned))


def backups_of(db: Database, backup_dir: Path) -> list[Backup]:
    """Every run that has a backup collection, a kept collection, a catalog entry or a folder of files, oldest first."""
    names = db.list_collection_names()
    catalog = {e["_id"]: e for e in db[storage.BACKUPS].find()}
    ledger = Ledger(db)
    history = {e["_id"]: e for e in [*ledger.history(), *ledger.kept_pre_images()]}
    run_ids = set(catalog) | {r for n in names if (r := storage.backup_run_id(n))}
    found = []
    for run_id in run_ids:
        entry, run = catalog.get(run_id, {}), history.get(run_id, {})
        collections = tuple(storage.run_collections(names, run_id))
        folder = Path(entry["path"]).parents[1] if "path" in entry else Path(backup_dir).resolve() / run_id
        folder = folder if folder.name == run_id and folder.is_dir() else None
        created = entry.get("created") or run.get("started_at")
        found.append(Backup(
            run_id=run_id, version=entry.get("version", run.get("version")),
            direction=entry.get("direction", run.get("direction")), created=as_utc(created) if created else None,
            collections=collections, folder=folder, documents=sum(collection_count(db[c]) for c in collections),
            data_bytes=sum(data_size(db, c) for c in collections),
            file_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder else 0))
    return sorted(found, key=lambda b: (b.created is None, b.created or now()))


def data_size(db: Database, name: str) -> int:
    """The collection's data size as the server keeps it (`collStats`), 0 where it has no such command
    (docshift.servers)."""
    try:
        return db.command({"collStats": name}).get("size", 0)
    except UNSUPPORTED:
        return 0


def needed(db: Database) -> dict[str, str]:
    """Runs whose backup must stay, with why."""
    ledger, reasons = Ledger(db), {}
    entries = ledger.history()
    for version in sorted({e["version"] for e in entries}):
        for run_id in ledger.pre_image_runs(version):
            reasons.setdefault(run_id, f"a `down` of migration {version} needs it")
    finished = [e for e in entries if e["outcome"] in ("applied", "reverted")]
    if finished:
        reasons.setdefault(finished[-1]["_id"], "the latest finished run: `docshift rollback --run` needs it")
    checkpoint = ledger.checkpoint()
    if checkpoint:
        reasons.setdefault(checkpoint["run_id"], "its run is unfinished")
    for e in entries:
        if e["outcome"] in ("running", "paused", "failed"):
            reasons.setdefault(e["_id"], f"its run is {e['outcome']}")
    return reasons


def plan_prune(db: Database, backup_dir: Path, keep_last: int | None, older_than: timedelta | None,
               dry_run: bool = False) -> Retention:
    """Decide, writing nothing: a backup goes only if nothing needs it, it is not among the `keep_last` newest, and it
    is older than `older_than` (each option that is given must allow it)."""
    if keep_last is None and older_than is None:
        raise TargetError("say what to prune: --keep-last N and/or --older-than AGE (e.g. 30d), or set "
                          "DOCSHIFT_PRUNE_KEEP_LAST / DOCSHIFT_PRUNE_OLDER_THAN")
    backups, reasons = backups_of(db, backup_dir), needed(db)
    newest = {b.run_id for b in backups[::-1][:keep_last]} if keep_last is not None else set()
    decisions = []
    for b in backups:
        if b.run_id in reasons:
            decisions.append((b, reasons[b.run_id]))
        elif b.run_id in newest:
            decisions.append((b, ("the newest" if keep_last == 1 else f"one of the {keep_last} newest") + " (--keep-last)"))
        elif older_than is not None and b.created is not None and b.created > now() - older_than:
            decisions.append((b, f"younger than {describe_age(older_than)} (--older-than)"))
        else:
            decisions.append((b, None))
    return Retention(decisions, dry_run)


def prune(db: Database, retention: Retention) -> None:
    """Remove the pruned backups: their collections, files and catalog entries (the history notes it)."""
    ledger = Ledger(db)
    for b in retention.pruned:
        for name in b.collections:
            db.drop_collection(name)
        if b.folder is not None:
            shutil.rmtree(b.folder, ignore_errors=True)
        db[storage.BACKUPS].delete_one({"_id": b.run_id})
        if ledger.entry(b.run_id):
            ledger.update_entry(b.run_id, {"backup_pruned_at": now()})


def describe_age(age: timedelta) -> str:
    seconds = age.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def prune_by_settings(db: Database, settings) -> Retention | None:
    """After a successful run: prune as DOCSHIFT_PRUNE_KEEP_LAST / DOCSHIFT_PRUNE_OLDER_THAN say (None: not set)."""
    if settings.prune_keep_last is None and settings.prune_older_than is None:
        return None
    age = parse_age(settings.prune_older_than) if settings.prune_older_than else None
    retention = plan_prune(db, settings.backup_dir, settings.prune_keep_last, age)
    prune(db, retention)
    return retention
