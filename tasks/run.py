"""Tasks that open and close a migration step's run in the ledger."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine

from .retry import transient


@task(name="start-run", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def start_run(db, scripts, step: engine.Step, flow_run_id: str | None) -> engine.RunState:
    """Resume the step's checkpointed run, or record a new one; retried on database errors (it is idempotent)."""
    return engine.start_or_resume(db, scripts, step, flow_run_id)


@task(name="finish-run", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)
def finish_run(db, step: engine.Step, state: engine.RunState, verification: engine.Verification) -> dict:
    """Record the step as applied or reverted and move the current version; retried on database errors (idempotent)."""
    return engine.finish(db, step, state, verification)
