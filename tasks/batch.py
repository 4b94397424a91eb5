"""The batch-migrate and server-update tasks: several batches (ranges) per task run, so orchestration stays a small share."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from docshift.engine.batches import migrate_batches
from docshift.engine.cursor import BatchCursor
from docshift.engine.ranges import IdRanges, migrate_ranges
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


@task(name="server-update", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient, cache_policy=NO_CACHE, task_run_name="server-update from range {run.state.batches}")
def server_update(run: StepRun, ranges: IdRanges, max_ranges: int) -> bool:
    """Update up to `max_ranges` `_id` ranges on the server, checkpointing after each; True when the last is done.

    A retry finds the ranges' bounds again from the checkpoint.
    """
    if task_run.run_count > 1:
        ranges.opened = False
    return migrate_ranges(run, ranges, max_ranges)
