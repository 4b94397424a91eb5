"""The rollback task."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine

from .retry import transient


@task(name="rollback", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def rollback(db, migration, step: engine.Step, run_id: str, reason: str, counts: dict | None = None,
             rewind: bool = False) -> dict:
    """Undo the run's changes from its backup (compare-and-swap, newer writes kept); safe to repeat."""
    return engine.rollback(db, migration, step, run_id, reason, counts, rewind)
