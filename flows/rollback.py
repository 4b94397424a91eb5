"""The rollback flow: restore a run's pre-images by hand, also after the migrating process was killed."""

from prefect import flow
from prefect.runtime import flow_run

from docshift import engine
from docshift.db import connect
from docshift.ledger import Ledger, LeaseLock
from docshift.loader import ScriptDirectory
from docshift.settings import get_settings
from tasks.notify import announce, label_run
from tasks.rollback import rollback as rollback_task


@flow(name="rollback", description="Restore the pre-images of a run: an unfinished one, or the latest finished one.")
def rollback(run_id: str, reason: str = "rolled back by hand") -> dict:
    """Undo run `run_id` exactly from its backup; running it again after an interruption finishes the job."""
    settings = get_settings()
    label_run(settings.database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    with LeaseLock(db, settings.lock_lease_seconds, f"flow-run {flow_run.id} rollback {run_id}"):
        step, finished = engine.rollback_target(db, scripts, run_id)
        undone = rollback_task(db, scripts.get(step.version).migration, step, run_id, reason, rewind=finished)
    announce("migration.rolled-back", settings.database, step.version, step.phase, reason)
    return {"run_id": run_id, **undone, "version": Ledger(db).current_version(), "database": settings.database}
