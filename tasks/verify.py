"""The verify task."""

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from docshift import engine

from .retry import transient


@task(name="verify", retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def verify(db, migration, step: engine.Step, count_before: int | None, quarantined: int = 0) -> engine.Verification:
    """Check the step's result and show the checks as a table artifact."""
    result = engine.verify_step(db, migration, step, count_before, quarantined=quarantined)
    create_table_artifact(
        [{**c, "verdict": "pass" if c["passed"] else "FAIL"} for c in result.checks],
        description=f"Verification of {step.label}: {'passed' if result.passed else 'FAILED'}",
    )
    return result
