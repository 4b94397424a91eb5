"""The four phases of an expand-contract change as flows, each deployed and scheduled on its own (prefect.yaml).

expand and contract write no document: they record that the application may now dual-write, or may now stop using the
old fields. backfill and cleanup move documents with the same backed-up, checkpointed, verified machinery as
`migrate`, and pause at a maintenance window's end. cleanup deletes data, so a person approves it in the Prefect UI.
"""

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from docshift import engine
from docshift.db import connect
from docshift.errors import PhaseError
from docshift.ledger import Ledger
from docshift.loader import ScriptDirectory
from docshift.phases import check_ready, cleanup_summary
from docshift.settings import get_settings
from flows.migrate import applier, database_lock, window_deadline
from tasks.notify import announce, label_run


class CleanupApproval(RunInput):
    """The form a person fills in to let cleanup delete the old fields."""

    approve: bool = False
    approver: str = ""


def _open(version: int, phase: str, database: str | None):
    """Settings, migration files and database of a phase run (labelled for alerts), after checking the phase may start."""
    settings = get_settings(database)
    label_run(settings.database, version, phase)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    check_ready(db, scripts, version, phase, settings.soak_seconds)
    engine.check_checksums(scripts, Ledger(db), Ledger(db).current_version(), allow_changed=False)
    return settings, scripts, db


def _record(version: int, phase: str, database: str | None) -> dict:
    """Mark a phase that writes no document as completed (and verified: its checks passed), holding the lock."""
    settings, scripts, db = _open(version, phase, database)
    with database_lock(db, settings, phase):
        check_ready(db, scripts, version, phase, settings.soak_seconds)
        Ledger(db).complete_phase(version, phase, {"verified": True, "flow_run_id": str(flow_run.id) if flow_run.id else None})
    return _completed(settings, version, phase, {"version": version, "phase": phase, "completed": True})


def _completed(settings, version: int, phase: str, result: dict) -> dict:
    """Announce a completed phase (an alert fires for the destructive one); a run paused by its window is not one."""
    if not result.get("paused"):
        announce("phase.completed", settings.database, version, phase, destructive=phase == "cleanup")
    return result


@flow(name="expand", description="Expand-contract, phase 1: the application starts writing the old and the new fields.")
def expand(version: int, database: str | None = None) -> dict:
    """Record the expand phase: from here the application dual-writes (docshift.compat.dual_write)."""
    return _record(version, "expand", database)


@flow(name="backfill", description="Expand-contract, phase 2: every document gets the new fields, the old ones kept.")
def backfill(version: int, batch_size: int | None = None, window_minutes: float | None = None,
             database: str | None = None) -> dict:
    """Backfill in checkpointed batches; at the window's end it pauses, and the next window's run continues."""
    settings, scripts, db = _open(version, "backfill", database)
    engine.check_backup_room(db, [engine.make_step(scripts, version, "up", "backfill")], settings.backup_dir)
    with database_lock(db, settings, "backfill"):
        check_ready(db, scripts, version, "backfill", settings.soak_seconds)  # again, now that no one else can run
        result = applier(settings)(version, "up", batch_size or settings.batch_size, database=settings.database,
                                   phase="backfill", deadline=window_deadline(window_minutes), partitions=settings.partitions)
    return _completed(settings, version, "backfill", result)


@flow(name="contract", description="Expand-contract, phase 3: every document is backfilled; the application stops using the old fields.")
def contract(version: int, database: str | None = None) -> dict:
    """Record the contract phase once no document is left at the old version."""
    return _record(version, "contract", database)


@flow(name="cleanup", description="Expand-contract, phase 4: remove the old fields (approved by a person, after the soak time).")
def cleanup(version: int, approved: bool = False, approval_timeout_seconds: int = 3600, batch_size: int | None = None,
            window_minutes: float | None = None, database: str | None = None) -> dict:
    """Delete the old fields after approval: the run pauses for a person in the Prefect UI unless `approved`.

    Without approval before `approval_timeout_seconds` the run fails and nothing is removed.
    """
    settings, scripts, db = _open(version, "cleanup", database)
    summary = cleanup_summary(db, scripts, version)
    logger = get_run_logger()
    if not approved:
        description = (f"**Approve cleanup of migration {version}?** It removes the field(s) "
                       f"`{', '.join(summary['fields'])}` from **{summary['documents']:,}** documents of "
                       f"`{summary['database']}.{summary['collection']}` (pre-images are backed up; "
                       f"`docshift rollback --run RUN` puts them back).")
        create_markdown_artifact(description, key="docshift-cleanup-approval", description="cleanup awaiting approval")
        try:
            answer = pause_flow_run(wait_for_input=CleanupApproval.with_initial_data(description=description),
                                    timeout=approval_timeout_seconds)
        except Exception as exc:  # FlowPauseTimeout: nobody answered
            raise PhaseError(f"cleanup of migration {version} was not approved within {approval_timeout_seconds} s "
                             f"({type(exc).__name__}); nothing was removed") from None
        if not answer.approve:
            raise PhaseError(f"cleanup of migration {version} was refused{' by ' + answer.approver if answer.approver else ''}; "
                             f"nothing was removed")
        logger.info("cleanup approved by %s", answer.approver or "an unnamed approver")
    deadline = window_deadline(window_minutes)
    engine.check_backup_room(db, [engine.make_step(scripts, version, "up", "cleanup")], settings.backup_dir)
    with database_lock(db, settings, "cleanup"):
        check_ready(db, scripts, version, "cleanup", settings.soak_seconds)
        result = applier(settings)(version, "up", batch_size or settings.batch_size, database=settings.database,
                                   phase="cleanup", deadline=deadline, partitions=settings.partitions)
    return _completed(settings, version, "cleanup", result)
