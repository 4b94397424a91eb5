"""The batch-migrate task: a chunk of batches per task run, so orchestration stays a small share."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from docshift import engine
from docshift.pacing import BatchSizer, Throttle

from .retry import transient


@task(name="batch-migrate", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_condition_fn=transient, cache_policy=NO_CACHE, task_run_name="batch-migrate from batch {state.batches}")
def batch_migrate(db, migration, step, state: engine.RunState, cursor: engine.BatchCursor, lock, sizer: BatchSizer,
                  max_batches: int, pre_images: engine.BackupReader | None, max_failures: int = 0, deadline=None,
                  throttle: Throttle | None = None) -> bool:
    """Back up and migrate up to `max_batches` batches, checkpointing after each; True when the step is done.

    A retry restarts at the checkpoint.
    """
    if task_run.run_count > 1:
        cursor.reopen(state.last_id, state.started)
    return engine.migrate_chunk(db, migration, step, state, cursor, lock, sizer, max_batches, pre_images, max_failures,
                                deadline, throttle)
