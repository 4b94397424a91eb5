"""The backup task, and the pruning of old backups after a successful run."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift.engine.backups import open_backup
from docshift.engine.retention import Retention, prune_by_settings
from docshift.engine.runs import StepRun

from .retry import transient


@task(name="backup", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def backup(run: StepRun, backup_dir, gzipped: bool = False) -> str:
    """Open the run's backup before anything changes; batches add each document's pre-image before updating it."""
    return open_backup(run.db, run.step, run.state, backup_dir, gzipped)


@task(name="prune-backups", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def prune_backups(db, settings) -> Retention | None:
    """Remove backups beyond the configured retention, keeping every one a `down` or `rollback --run` still needs."""
    return prune_by_settings(db, settings)
