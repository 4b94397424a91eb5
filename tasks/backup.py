"""The backup task."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine

from .retry import transient


@task(name="backup", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def backup(db, state: engine.RunState, backup_dir, gzipped: bool = False) -> str:
    """Open the run's backup before anything changes; batches add each document's pre-image before updating it."""
    return engine.open_backup(db, state, backup_dir, gzipped)
