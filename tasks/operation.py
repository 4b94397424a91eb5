"""The apply-operation task: a collection-level step's actions (an index, a rename, a dropped or copied collection)."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift.engine.operation_steps import run_actions
from docshift.engine.runs import StepRun

from .retry import transient


@task(name="apply-operation", retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient,
      cache_policy=NO_CACHE, task_run_name="apply-operation {run.step.operation}")
def apply_operation(run: StepRun, backup_dir, gzipped: bool = False) -> None:
    """Journal and do each action, keeping what it destroys first; a retry (or a resumed run) redoes only what is
    not done yet."""
    run_actions(run, backup_dir, gzipped)
