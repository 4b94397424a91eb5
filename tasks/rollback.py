"""The rollback task."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift.engine import rollback as engine_rollback
from docshift.engine.rollback import RollbackResult
from docshift.engine.steps import Step

from .retry import transient


@task(name="rollback", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def rollback(db, migration, step: Step, run_id: str, reason: str, rewind: bool = False) -> RollbackResult:
    """Undo the run's changes from its backup (compare-and-swap, newer writes kept); safe to repeat."""
    return engine_rollback.rollback(db, migration, step, run_id, reason, rewind)
