"""The staging rehearsal of the original design as one flow: copy, migrate, verify, report, drop the copy."""

import itertools
import shutil
import uuid
from pathlib import Path

from dataclasses import dataclass

from prefect import flow, get_run_logger

from docshift.context import RunContext
from docshift.dump import RAW
from docshift.engine.backups import backup_catalog
from docshift.engine.state import MigrateOptions
from docshift.flows.migrate import MigrationReport, migrate
from docshift.ledger import Ledger
from docshift.settings import get_settings


@dataclass(frozen=True)
class Rehearsal:
    """A rehearsal's report: the real run's, on a scratch copy of `database` that is gone now."""

    report: MigrationReport
    database: str
    scratch: str
    copied: dict[str, int]


@flow(name="rehearse", description="Migrate a scratch copy (or a sample) of the data, verify and report; the source is untouched.")
def rehearse(target_version: int | None = None, sample: int | None = None, batch_size: int | None = None,
             max_failures: int = 0) -> "Rehearsal":
    """Copy every collection the migrations touch (the first `sample` documents of each, if given) with the
    source's current version into a scratch database, run the real `migrate` flow there, and drop the copy."""
    ctx = RunContext.open(get_settings())
    settings, source, scripts = ctx.settings, ctx.db, ctx.scripts
    scratch = source.client[f"{settings.database}_rehearsal_{uuid.uuid4().hex[:8]}"]
    copied = {}
    try:
        for name in sorted({s.migration.collection for s in scripts.scripts.values()}):
            docs = source[name].with_options(codec_options=RAW).find().sort("_id", 1).batch_size(1000)
            if sample:
                docs = docs.limit(sample)
            copied[name] = 0
            while batch := list(itertools.islice(docs, 1000)):
                scratch[name].insert_many(batch, ordered=False)
                copied[name] += len(batch)
        Ledger(scratch).set_current(Ledger(source).current_version())
        get_run_logger().info("rehearsing on %s: %s", scratch.name, copied)
        report = migrate(target_version=target_version, database=scratch.name,
                         options=MigrateOptions(batch_size=batch_size, max_failures=max_failures))
    finally:
        for entry in backup_catalog(scratch):
            shutil.rmtree(Path(entry["path"]).parents[1], ignore_errors=True)
        source.client.drop_database(scratch.name)
    return Rehearsal(report, settings.database, scratch.name, copied)
