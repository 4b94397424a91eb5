"""The staging rehearsal of the original design as one flow: copy, migrate, verify, report, drop the copy."""

import itertools
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger
from pymongo.database import Database

from docshift.context import RunContext, check_database
from docshift.dump import RAW
from docshift.engine.backups import backup_catalog
from docshift.engine.operations import create_index, spec_of
from docshift.engine.quarantine import SEE_QUARANTINE, quarantined
from docshift.engine.state import MigrateOptions
from docshift.errors import DocshiftError, Interrupted
from docshift.flows.migrate import MigrationReport, migrate
from docshift.ledger import Ledger
from docshift.settings import get_settings


@dataclass
class Rehearsal:
    """What a rehearsal found on a scratch copy of `database` (gone now; `database` itself is unchanged): the real
    run's report, or why it failed, and the documents whose migration functions raised, with the error and where."""

    database: str
    version: int
    target: int
    copied: dict[str, int]
    report: MigrationReport | None = None
    failure: str | None = None
    failing: list[dict] = field(default_factory=list)


@flow(name="rehearse", description="Migrate a scratch copy (or a sample) of the data, verify and report; the source is untouched.")
def rehearse(target_version: int | None = None, sample: int | None = None, batch_size: int | None = None,
             max_failures: int = 0) -> "Rehearsal":
    """Copy every collection the migrations change (the first `sample` documents of each, if given) and those their
    functions look up (`reads`, whole, so that lookups find what documents point at), with their indexes and the
    source's current version, into a scratch database; run the real `migrate` flow there, collect the documents that
    failed, and drop the copy. A failed run is the rehearsal's finding, not its failure: it is in the result."""
    ctx = RunContext.open(get_settings())
    check_database(ctx)
    settings, source, scripts = ctx.settings, ctx.db, ctx.scripts
    scratch = source.client[f"{settings.database}_rehearsal_{uuid.uuid4().hex[:8]}"]
    migrations = [m for _, m in scripts.units()]
    read = {name for m in migrations for name in m.reads}
    version = Ledger(source).current_version()
    rehearsal = Rehearsal(settings.database, version,
                          scripts.check_target(scripts.head if target_version is None else target_version), {})
    try:
        for name in sorted({m.collection for m in migrations} | read):
            rehearsal.copied[name] = copy_collection(source, scratch, name, None if name in read else sample)
        Ledger(scratch).set_current(version)
        get_run_logger().info("rehearsing on %s: %s", scratch.name, rehearsal.copied)
        try:
            rehearsal.report = migrate(target_version=target_version, database=scratch.name,
                                       options=MigrateOptions(batch_size=batch_size, max_failures=max_failures))
        except Interrupted:
            raise
        except DocshiftError as exc:
            rehearsal.failure = str(exc).replace(SEE_QUARANTINE, "")  # its documents are listed instead
        rehearsal.failing.extend(quarantined(scratch))
    finally:
        for entry in backup_catalog(scratch):
            shutil.rmtree(Path(entry["path"]).parents[1], ignore_errors=True)
        source.client.drop_database(scratch.name)
    return rehearsal


def copy_collection(source: Database, scratch: Database, name: str, sample: int | None) -> int:
    """The collection's documents (the first `sample`, if given) with their exact bytes, and its indexes."""
    docs = source[name].with_options(codec_options=RAW).find().sort("_id", 1).batch_size(1000)
    if sample:
        docs = docs.limit(sample)
    copied = 0
    while batch := list(itertools.islice(docs, 1000)):
        scratch[name].insert_many(batch, ordered=False)
        copied += len(batch)
    for index in source[name].list_indexes():
        if index["name"] != "_id_":
            create_index(scratch, name, spec_of(index), f"rehearsal copy of {name}")
    return copied
