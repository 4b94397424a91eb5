"""Tasks that open and close a migration step's run in the ledger."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine


@task(name="start-run", cache_policy=NO_CACHE)
def start_run(db, scripts, step: engine.Step, flow_run_id: str | None) -> engine.RunState:
    """Resume the step's checkpointed run, or record a new one."""
    return engine.start_or_resume(db, scripts, step, flow_run_id)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run(db, step: engine.Step, state: engine.RunState, verification: engine.Verification) -> dict:
    """Record the step as applied or reverted and move the current version."""
    return engine.finish(db, step, state, verification)
