"""The batch-migrate task: several batches per task run, so orchestration stays a small share."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from docshift.engine.batches import migrate_batches
from docshift.engine.cursor import BatchCursor
from docshift.engine.runs import StepRun

from .retry import transient


@task(name="batch-migrate", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient, cache_policy=NO_CACHE, task_run_name="batch-migrate from batch {run.state.batches}")
def batch_migrate(run: StepRun, cursor: BatchCursor, max_batches: int) -> bool:
    """Back up and migrate up to `max_batches` batches, checkpointing after each; True when the step is done.

    A retry restarts at the checkpoint.
    """
    if task_run.run_count > 1:
        cursor.reopen(run.state.last_id, run.state.started)
    return migrate_batches(run, cursor, max_batches)
