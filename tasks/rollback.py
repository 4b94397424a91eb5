"""The rollback task."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine

from .retry import transient


@task(name="rollback", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def rollback(db, step: engine.Step, run_id: str, reason: str, counts: dict | None = None, rewind: bool = False) -> int:
    """Restore the pre-images of the run's changed documents; safe to repeat."""
    return engine.rollback(db, step, run_id, reason, counts, rewind)
