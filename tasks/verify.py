"""The verify task."""

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from docshift.engine.steps import Step
from docshift.engine.verify import DuringRun, Verification, verify_step
from docshift.engine.verify import verify_applied as verify_now

from .retry import transient


@task(name="verify", retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def verify(db, migration, step: Step, count_before: int | None, during: DuringRun | None = None) -> Verification:
    """Check the step's result and show the checks as a table artifact."""
    result = verify_step(db, migration, step, count_before, during)
    create_table_artifact(result.rows(), description=f"Verification of {step.label}: {'passed' if result.passed else 'FAILED'}")
    return result


@task(name="verify-applied", retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def verify_applied(ctx, version: int | None) -> tuple[int, Verification]:
    """Check an applied migration and the documents behind against the data now; the checks as a table artifact."""
    version, result = verify_now(ctx, version)
    if result.checks:
        create_table_artifact(result.rows(), description=f"Verification of migration {version}: "
                                                         f"{'passed' if result.passed else 'FAILED'}")
    return version, result
