"""The migrate flow (any target, up or down) and the subflow that applies or reverts one migration."""

from contextlib import suppress
from contextvars import ContextVar
from dataclasses import replace

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from docshift import engine
from docshift.db import connect, redact
from docshift.errors import LockLostError, MigrationFailed, VerificationFailed
from docshift.ledger import Ledger, LeaseLock
from docshift.loader import ScriptDirectory
from docshift.settings import get_settings
from tasks.backup import backup
from tasks.batch import batch_migrate
from tasks.rollback import rollback
from tasks.run import finish_run, start_run
from tasks.verify import verify

_held_lock: ContextVar[LeaseLock | None] = ContextVar("docshift_held_lock", default=None)


@flow(name="migrate", description="Migrate the database to a schema version (default: the latest), up or down.")
def migrate(target_version: int | None = None, batch_size: int | None = None, dry_run: bool = False,
            allow_changed: bool = False, max_failures: int = 0, database: str | None = None) -> dict:
    """Plan the path from the current version to `target_version` and run one subflow per migration on it.

    `database` overrides DOCSHIFT_DATABASE for this run (one deployment, several databases; rehearsals).
    """
    settings = run_settings(database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    target = scripts.check_target(scripts.head if target_version is None else target_version)
    db = connect(settings)
    if dry_run:
        return {"dry_run": True, **engine.plan_report(db, scripts, target)}
    ledger = Ledger(db)
    engine.check_backup_room(db, engine.current_plan(db, scripts, target)[1], settings.backup_dir)
    with LeaseLock(db, settings.lock_lease_seconds, f"flow-run {flow_run.id}") as lock:
        current, steps = engine.current_plan(db, scripts, target)
        engine.check_checksums(scripts, ledger, current, allow_changed)
        token = _held_lock.set(lock)
        try:
            results = [apply_migration(s.version, s.direction, batch_size or settings.batch_size, max_failures,
                                       s.ledger_after, settings.database) for s in steps]
        finally:
            _held_lock.reset(token)
    report = {"dry_run": False, "current": current, "target": target, "database": settings.database,
              "steps": results, "version": ledger.current_version()}
    create_markdown_artifact(report_markdown(report), key="docshift-report", description="docshift migration report")
    return report


@flow(name="apply-migration", flow_run_name="{direction}-{version}")
def apply_migration(version: int, direction: str, batch_size: int, max_failures: int = 0,
                    ledger_after: int | None = None, database: str | None = None) -> dict:
    """Back up, migrate in checkpointed batches, verify; on failure restore the pre-images and fail plainly.

    `ledger_after` differs from the step's own only when quarantined documents are retried below the current version.
    """
    settings = run_settings(database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    migration = scripts.get(version).migration
    step = engine.make_step(scripts, version, direction)
    if ledger_after is not None and ledger_after != step.ledger_after:
        step = replace(step, ledger_before=ledger_after, ledger_after=ledger_after)
    source_run = Ledger(db).pre_image_run(version) if direction == "down" and migration.down_uses_pre_image else None
    pre_images = engine.BackupReader(db[engine.BACKUP_PREFIX + source_run]) if source_run else None
    state = start_run(db, scripts, step, str(flow_run.id) if flow_run.id else None)
    cursor = engine.BatchCursor(db[step.collection], step.from_version, state.last_id, state.started)
    progress = create_progress_artifact(0.0, description=f"{step.label}: starting")
    logger = get_run_logger()
    try:
        backup(db, state, settings.backup_dir, settings.backup_gzip)
        while True:
            finished = batch_migrate(db, migration, step, state, cursor, _held_lock.get(), batch_size,
                                     settings.batches_per_task, pre_images, max_failures)
            update_progress_artifact(progress, progress_percent(state), description=progress_text(step, state))
            if finished:
                break
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
        raise MigrationFailed(
            f"migration {version} ({direction}) failed and was rolled back ({undone['restored']} documents restored "
            f"from backup {state.backup}, {undone['undone_by_function']} written since undone by the function): {reason}"
        ) from None
    update_progress_artifact(progress, 100.0, description=progress_text(step, state))
    return finish_run(db, step, state, verification)


def run_settings(database: str | None):
    """The settings, with the run's database when a flow parameter names one."""
    settings = get_settings()
    return settings.model_copy(update={"database": database}) if database else settings


def progress_percent(state: engine.RunState) -> float:
    return min(100.0, 100.0 * state.done / state.total) if state.total else 100.0


def progress_text(step: engine.Step, state: engine.RunState) -> str:
    rate = state.rate
    eta = (state.total - state.done) / rate if rate and state.total > state.done else 0.0
    return f"{step.label}: {state.done:,} of {state.total:,} documents, {rate:,.0f} docs/s, ETA {eta:,.0f} s"


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
    return "\n".join(lines)
