"""The four phases of an expand-contract change as flows, each deployed and scheduled on its own (`docshift deploy`).

expand and contract write no document: they record that the application may now dual-write, or may now stop using the
old fields. backfill and cleanup move documents with the same backed-up, checkpointed, verified machinery as
`migrate`, and pause at a maintenance window's end. cleanup deletes data, so a person approves it in the Prefect UI.
"""

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from docshift.context import RunContext, check_database
from docshift.engine.backups import check_backup_room
from docshift.engine.planning import check_checksums
from docshift.engine.runs import StepResult
from docshift.engine.state import RunOptions
from docshift.engine.steps import make_step
from docshift.errors import PhaseError
from docshift.flows.migrate import applier, database_lock, window_deadline
from docshift.ledger import Ledger
from docshift.phases import check_ready, cleanup_summary
from docshift.settings import get_settings
from docshift.spec import Phase
from docshift.tasks.notify import announce, label_run


class CleanupApproval(RunInput):
    """The form a person fills in to let cleanup delete the old fields."""

    approve: bool = False
    approver: str = ""


@dataclass(frozen=True)
class PhaseRecord:
    """A phase that writes no document (expand, contract), recorded as completed."""

    version: int
    phase: Phase


def _phase_context(version: int, phase: Phase, database: str | None) -> RunContext:
    """The run's context (labelled for alerts), after checking the phase may start."""
    ctx = RunContext.open(get_settings(database))
    check_database(ctx)
    label_run(ctx.settings.database, version, phase)
    check_ready(ctx.db, ctx.scripts, version, phase, ctx.settings.soak_seconds)
    check_checksums(ctx, Ledger(ctx.db).current_version(), allow_changed=False)
    return ctx


def _record(version: int, phase: Phase, database: str | None) -> PhaseRecord:
    """Mark a phase that writes no document as completed (and verified: its checks passed), holding the lock."""
    ctx = _phase_context(version, phase, database)
    with database_lock(ctx, phase):
        check_ready(ctx.db, ctx.scripts, version, phase, ctx.settings.soak_seconds)
        Ledger(ctx.db).complete_phase(version, phase, {"verified": True, "flow_run_id": str(flow_run.id) if flow_run.id else None})
    announce("phase.completed", ctx.settings.database, version, phase)
    return PhaseRecord(version, phase)


def _migrate_phase(ctx: RunContext, version: int, phase: Phase, batch_size: int | None,
                   window_minutes: float | None) -> StepResult:
    """Run backfill or cleanup as a backed-up, checkpointed, verified step; announce it unless its window closed."""
    settings = ctx.settings
    check_backup_room(ctx.db, [make_step(ctx.scripts, version, "up", phase)], settings.backup_dir)
    options = RunOptions(batch_size or settings.batch_size, 0, window_deadline(window_minutes), settings.partitions)
    with database_lock(ctx, phase):
        check_ready(ctx.db, ctx.scripts, version, phase, settings.soak_seconds)  # again, now that no one else can run
        result = applier(settings)(version, "up", options, phase=phase, database=settings.database)
    if not result.paused:
        announce("phase.completed", settings.database, version, phase, destructive=phase == "cleanup")
    return result


@flow(name="expand", description="Expand-contract, phase 1: the application starts writing the old and the new fields.")
def expand(version: int, database: str | None = None) -> PhaseRecord:
    """Record the expand phase: from here the application dual-writes (docshift.compat.dual_write)."""
    return _record(version, "expand", database)


@flow(name="backfill", description="Expand-contract, phase 2: every document gets the new fields, the old ones kept.")
def backfill(version: int, batch_size: int | None = None, window_minutes: float | None = None,
             database: str | None = None) -> StepResult:
    """Backfill in checkpointed batches; at the window's end it pauses, and the next window's run continues."""
    return _migrate_phase(_phase_context(version, "backfill", database), version, "backfill", batch_size, window_minutes)


@flow(name="contract", description="Expand-contract, phase 3: every document is backfilled; the application stops using the old fields.")
def contract(version: int, database: str | None = None) -> PhaseRecord:
    """Record the contract phase once no document is left at the old version."""
    return _record(version, "contract", database)


@flow(name="cleanup", description="Expand-contract, phase 4: remove the old fields (approved by a person, after the soak time).")
def cleanup(version: int, approved: bool = False, approval_timeout_seconds: int = 3600, batch_size: int | None = None,
            window_minutes: float | None = None, database: str | None = None) -> StepResult:
    """Delete the old fields after approval: the run pauses for a person in the Prefect UI unless `approved`.

    Without approval before `approval_timeout_seconds` the run fails and nothing is removed.
    """
    ctx = _phase_context(version, "cleanup", database)
    summary = cleanup_summary(ctx.db, ctx.scripts, version)
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
                             f"({type(exc).__name__}); nothing was removed") from exc
        if not answer.approve:
            raise PhaseError(f"cleanup of migration {version} was refused{' by ' + answer.approver if answer.approver else ''}; "
                             f"nothing was removed")
        logger.info("cleanup approved by %s", answer.approver or "an unnamed approver")
    return _migrate_phase(ctx, version, "cleanup", batch_size, window_minutes)
