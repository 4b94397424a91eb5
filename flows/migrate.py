"""The migrate flow (any target, up or down) and the subflow that applies or reverts one migration."""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime, timedelta

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from docshift import engine
from docshift.db import connect, redact
from docshift.errors import LockLostError, MigrationFailed, VerificationFailed
from docshift.ledger import Ledger, LeaseLock, as_utc, now
from docshift.loader import ScriptDirectory
from docshift.pacing import BatchSizer, Throttle
from docshift.settings import get_settings
from tasks.backup import backup
from tasks.batch import batch_migrate
from tasks.notify import announce, label_run
from tasks.partition import migrate_partition
from tasks.rollback import rollback
from tasks.run import finish_run, start_run
from tasks.verify import verify

_held_lock: ContextVar[LeaseLock | None] = ContextVar("docshift_held_lock", default=None)


@flow(name="migrate", description="Migrate the database to a schema version (default: the latest), up or down.")
def migrate(target_version: int | None = None, batch_size: int | None = None, dry_run: bool = False,
            allow_changed: bool = False, max_failures: int = 0, database: str | None = None,
            window_minutes: float | None = None, partitions: int | None = None) -> dict:
    """Plan the path from the current version to `target_version` and run one subflow per migration on it.

    `database` overrides DOCSHIFT_DATABASE for this run (one deployment, several databases; rehearsals).
    `window_minutes`: the maintenance window's length; at its end the run pauses at a checkpoint and the next run resumes.
    `partitions`: `_id` ranges migrated in parallel (default DOCSHIFT_PARTITIONS).
    """
    settings = get_settings(database)
    deadline = window_deadline(window_minutes)
    label_run(settings.database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    target = scripts.check_target(scripts.head if target_version is None else target_version)
    db = connect(settings)
    if dry_run:
        return {"dry_run": True, **engine.plan_report(db, scripts, target)}
    ledger = Ledger(db)
    engine.check_backup_room(db, engine.current_plan(db, scripts, target)[1], settings.backup_dir)
    with database_lock(db, settings, "migrate"):
        current, steps = engine.current_plan(db, scripts, target)
        engine.check_checksums(scripts, ledger, current, allow_changed)
        results = []
        for s in steps:
            results.append(applier(settings)(s.version, s.direction, batch_size or settings.batch_size, max_failures,
                                             s.ledger_after, settings.database, deadline=deadline,
                                             partitions=partitions or settings.partitions))
            if results[-1].get("paused"):
                break
    report = {"dry_run": False, "current": current, "target": target, "database": settings.database,
              "steps": results, "version": ledger.current_version(), "paused": any(r.get("paused") for r in results)}
    create_markdown_artifact(report_markdown(report), key="docshift-report", description="docshift migration report")
    return report


def held_lock() -> LeaseLock | None:
    """The lock this flow run holds (a function, so that Dask can ship apply-migration's code without the ContextVar)."""
    return _held_lock.get()


@contextmanager
def database_lock(db, settings, purpose: str) -> Iterator[LeaseLock]:
    """The database's lease lock for this flow run, visible to the subflows and tasks that must check it."""
    with LeaseLock(db, settings.lock_lease_seconds, f"flow-run {flow_run.id} {purpose}") as lock:
        token = _held_lock.set(lock)
        try:
            yield lock
        finally:
            _held_lock.reset(token)


@flow(name="apply-migration", flow_run_name="{direction}-{version}")
def apply_migration(version: int, direction: str, batch_size: int | None = None, max_failures: int = 0,
                    ledger_after: int | None = None, database: str | None = None, phase: str | None = None,
                    deadline: datetime | None = None, partitions: int = 1) -> dict:
    """Back up, migrate in checkpointed batches, verify; on failure restore the pre-images and fail plainly.

    `ledger_after` differs from the step's own only when quarantined documents are retried below the current version.
    `phase` runs an expand-contract phase (backfill, cleanup) instead of the whole `up`. At `deadline` the run
    pauses at its checkpoint and returns `paused`. Without `batch_size`, batches are sized to the target time per batch.
    With `partitions` > 1 the `_id` ranges run first as parallel tasks; the run's own cursor then sweeps what is left.
    """
    settings = get_settings(database)
    label_run(settings.database, version, phase)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    migration = scripts.get(version).migration
    step = engine.make_step(scripts, version, direction, phase)
    if ledger_after is not None and ledger_after != step.ledger_after:
        step = replace(step, ledger_before=ledger_after, ledger_after=ledger_after)
    source_run = Ledger(db).pre_image_run(version) if direction == "down" and migration.down_uses_pre_image else None
    pre_images = engine.BackupReader(db[engine.BACKUP_PREFIX + source_run]) if source_run else None
    state = start_run(db, scripts, step, str(flow_run.id) if flow_run.id else None)
    cursor = engine.BatchCursor(db[step.collection], step.selector, state.last_id, state.started)
    sizer = BatchSizer.for_server(db, batch_size, settings.chunk_time_seconds)
    throttle = Throttle.for_server(db, settings.batch_pause_seconds, settings.max_replication_lag_seconds,
                                   settings.throttle_max_wait_seconds)
    progress = create_progress_artifact(0.0, description=f"{step.label}: starting")
    logger = get_run_logger()
    try:
        backup(db, state, settings.backup_dir, settings.backup_gzip)
        if partitions > 1 and not state.partitioned and not run_partitions(db, step, state, partitions, batch_size,
                                                                             max_failures, deadline, progress):
            return window_closed(db, step, state, progress)
        while True:
            finished = batch_migrate(db, migration, step, state, cursor, held_lock(), sizer,
                                     settings.batches_per_task, pre_images, max_failures, deadline, throttle)
            update_progress_artifact(progress, progress_percent(state), description=progress_text(step, state))
            if finished:
                break
            if deadline and now() >= deadline:
                return window_closed(db, step, state, progress)
        verification = verify(db, migration, step, state.count_before, len(state.quarantined))
        if not verification.passed:
            raise VerificationFailed(f"verification failed: {verification.summary()}")
    except LockLostError:
        raise
    except Exception as exc:
        reason = redact(f"{type(exc).__name__}: {exc}")
        logger.error("migration %s %s failed: %s; rolling back", version, direction, reason)
        try:
            undone = rollback(db, migration, step, state.run_id, reason, {"matched": state.matched, "changed": state.changed})
        except Exception as rollback_exc:
            with suppress(Exception):  # the database may be down; the checkpoint keeps the run resumable anyway
                engine.fail(db, state, reason)
            raise MigrationFailed(
                f"migration {version} ({direction}) failed: {reason}; rollback could not finish either "
                f"({type(rollback_exc).__name__}: {redact(str(rollback_exc))}); the run is checkpointed: "
                f"re-run `docshift migrate` to resume it, or `docshift rollback --run {state.run_id}` to undo it"
            ) from None
        announce("migration.rolled-back", settings.database, version, phase, reason)
        raise MigrationFailed(
            f"migration {version} ({direction}) failed and was rolled back ({undone['restored']} documents restored "
            f"from backup {state.backup}, {undone['undone_by_function']} written since undone by the function): {reason}"
        ) from None
    update_progress_artifact(progress, 100.0, description=progress_text(step, state))
    return finish_run(db, step, state, verification)


def applier(settings):
    """The apply-migration subflow with the task runner the settings ask for: threads, or a Dask cluster."""
    if settings.task_runner == "threads":
        return apply_migration
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return apply_migration.with_options(task_runner=DaskTaskRunner(address=settings.dask_address))
    return apply_migration.with_options(task_runner=DaskTaskRunner(
        cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True}))


def run_partitions(db, step: engine.Step, state: engine.RunState, partitions: int, batch_size: int | None,
                   max_failures: int, deadline: datetime | None, progress) -> bool:
    """Migrate the step's `_id` ranges as parallel tasks; True when all are done (False: the window closed first)."""
    parts = engine.start_partitions(db, step, state, partitions)
    owner = held_lock().owner
    futures = [migrate_partition.submit(db.name, step.version, step.direction, step.phase, state.run_id, part.partition,
                                        owner, batch_size, max_failures, deadline) for part, _ in parts]
    ledger = Ledger(db)
    while wait(futures, timeout=2).not_done:
        done = sum(p["done"] for p in ledger.partition_checkpoints() if p["run_id"] == state.run_id)
        update_progress_artifact(progress, progress_percent(replace(state, done=done)),
                                 description=progress_text(step, replace(state, done=done)) + f" ({len(parts)} partitions)")
    if not all([future.result() for future in futures]):
        return False
    engine.merge_partitions(db, state)
    return True


def window_closed(db, step: engine.Step, state: engine.RunState, progress) -> dict:
    """Pause the run at its checkpoint because the maintenance window ended."""
    get_run_logger().info("maintenance window closed: %s paused at %s of %s documents", step.label, state.done, state.total)
    update_progress_artifact(progress, progress_percent(state), description=progress_text(step, state) + " (paused: window closed)")
    return engine.pause(db, state)


def window_deadline(window_minutes: float | None) -> datetime | None:
    """When this run's maintenance window closes: the run's scheduled start (now, if started by hand) plus the window."""
    if window_minutes is None:
        return None
    start = flow_run.scheduled_start_time
    start = datetime.fromisoformat(start.isoformat()) if start else now()
    return as_utc(start) + timedelta(minutes=window_minutes)


def progress_percent(state: engine.RunState) -> float:
    return min(100.0, 100.0 * state.done / state.total) if state.total else 100.0


def progress_text(step: engine.Step, state: engine.RunState) -> str:
    """The progress artifact's description; it carries the percent too because the UI's artifact cards show only this."""
    rate = state.rate
    eta = (state.total - state.done) / rate if rate and state.total > state.done else 0.0
    return (f"{step.label}: {int(progress_percent(state))}%, {state.done:,} of {state.total:,} documents, "
            f"{rate:,.0f} docs/s, ETA {eta:,.0f} s")


def report_markdown(report: dict) -> str:
    """The migration report people read in the Prefect UI (and the CLI prints as a table)."""
    lines = [f"# docshift: {report['database']} from version {report['current']} to {report['target']}", "",
             "| migration | direction | collection | documents | changed | quarantined | duration (s) | docs/s | backup | verification |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["steps"]:
        lines.append(f"| {s['version']} | {s['direction']} | {s['collection']} | {s['documents']} | {s['changed']} | "
                     f"{s['quarantined']} | {s['duration_s']} | {s['docs_per_s']:,.0f} | {s['backup']} | {s['verification']} |")
    if not report["steps"]:
        lines.append("| — | already at target | | | | | | | | |")
    if report.get("paused"):
        lines += ["", "Paused at the maintenance window's end; the next run resumes from the checkpoint."]
    return "\n".join(lines)
