"""The migrate-partition task: one `_id` range of a step, run by a thread or a Dask worker of its own."""

import os
import socket

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift.context import RunContext
from docshift.engine.batches import migrate_batches
from docshift.engine.partitions import resume_partition
from docshift.engine.runs import open_step_run
from docshift.engine.state import RunOptions
from docshift.engine.steps import Step
from docshift.ledger import Ledger, LockWatch, now
from docshift.settings import Settings

from .retry import transient


def run_partition(settings: Settings, step: Step, run_id: str, index: int, lock_owner: str, options: RunOptions) -> bool:
    """Migrate the partition from its checkpoint to its end (or the window's end); True when it is done.

    Only values that pickle come in (the settings in force, with the command line's flags), so that any process can
    run it: it opens its own connection and reads its own checkpoint, and a retry, or another worker after this one
    died, resumes from there.
    """
    ctx = RunContext.open(settings)
    part, selector = resume_partition(ctx.db, step, run_id, index)
    if part.finished:
        return True
    ledger = Ledger(ctx.db)
    ledger.save_checkpoint({"worker": f"{socket.gethostname()}:{os.getpid()}"}, part.checkpoint_id)  # who runs it now
    if part.started:
        part.resumed += 1
        ledger.save_checkpoint({"resumed": part.resumed}, part.checkpoint_id)
    run = open_step_run(ctx, step, part, LockWatch(ctx.db, lock_owner), options, selector)
    cursor = run.cursor()
    while not migrate_batches(run, cursor, settings.batches_per_task):
        if options.deadline and now() >= options.deadline:
            return False
    ledger.save_checkpoint({"finished": True}, part.checkpoint_id)
    return True


migrate_partition = task(run_partition, name="migrate-partition", retries=3, retry_delay_seconds=[1, 5, 15],
                         retry_condition_fn=transient, cache_policy=NO_CACHE, task_run_name="migrate-partition {index}")
"""The task; its function stays importable by name, so Dask workers load it instead of unpickling its closure."""
