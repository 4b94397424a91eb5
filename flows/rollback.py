"""The rollback flow: restore a run's pre-images by hand, also after the migrating process was killed."""

from dataclasses import dataclass

from prefect import flow
from prefect.runtime import flow_run

from docshift.context import RunContext
from docshift.engine.rollback import rollback_target
from docshift.ledger import Ledger, LeaseLock
from docshift.settings import get_settings
from docshift.tasks.notify import announce, label_run
from docshift.tasks.rollback import rollback as rollback_task


@dataclass(frozen=True)
class RollbackReport:
    run_id: str
    restored: int
    undone_by_function: int
    version: int
    database: str


@flow(name="rollback", description="Restore the pre-images of a run: an unfinished one, or the latest finished one.")
def rollback(run_id: str, reason: str = "rolled back by hand") -> RollbackReport:
    """Undo run `run_id` exactly from its backup; running it again after an interruption finishes the job."""
    ctx = RunContext.open(get_settings())
    label_run(ctx.settings.database)
    with LeaseLock(ctx.db, ctx.settings.lock_lease_seconds, f"flow-run {flow_run.id} rollback {run_id}"):
        step, finished = rollback_target(ctx, run_id)
        undone = rollback_task(ctx.db, ctx.scripts.part(step.version, step.part), step, run_id, reason, rewind=finished)
    announce("migration.rolled-back", ctx.settings.database, step.version, step.phase, reason)
    return RollbackReport(run_id, undone.restored, undone.undone_by_function, Ledger(ctx.db).current_version(),
                          ctx.settings.database)
