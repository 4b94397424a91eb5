"""The migrate-partition task: one `_id` range of a step, run by a thread or a Dask worker of its own."""

import os
import socket

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift import engine
from docshift.db import connect
from docshift.ledger import Ledger, LockWatch
from docshift.loader import ScriptDirectory
from docshift.pacing import BatchSizer, Throttle
from docshift.settings import get_settings

from .retry import transient


def run_partition(database: str, version: int, direction: str, phase: str | None, run_id: str, index: int,
                      lock_owner: str, batch_size: int | None = None, max_failures: int = 0, deadline=None) -> bool:
    """Migrate the partition from its checkpoint to its end (or the window's end); True when it is done.

    Only plain values come in, so that any process can run it: it opens its own connection and reads its own
    checkpoint, and a retry, or another worker after this one died, resumes from there.
    """
    settings = get_settings(database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    migration = scripts.get(version).migration
    step = engine.make_step(scripts, version, direction, phase)
    part, selector = engine.resume_partition(db, step, run_id, index)
    if part.finished:
        return True
    ledger = Ledger(db)
    ledger.save_checkpoint({"worker": f"{socket.gethostname()}:{os.getpid()}"}, part.checkpoint_id)  # who runs it now
    if part.started:
        part.resumed += 1
        ledger.save_checkpoint({"resumed": part.resumed}, part.checkpoint_id)
    source_run = ledger.pre_image_run(version) if direction == "down" and migration.down_uses_pre_image else None
    pre_images = engine.BackupReader(db[engine.BACKUP_PREFIX + source_run]) if source_run else None
    cursor = engine.BatchCursor(db[step.collection], selector, part.last_id, part.started)
    sizer = BatchSizer.for_server(db, batch_size, settings.chunk_time_seconds)
    throttle = Throttle.for_server(db, settings.batch_pause_seconds, settings.max_replication_lag_seconds,
                                   settings.throttle_max_wait_seconds)
    while not engine.migrate_chunk(db, migration, step, part, cursor, LockWatch(db, lock_owner), sizer,
                                   settings.batches_per_task, pre_images, max_failures, deadline, throttle):
        if deadline and engine.now() >= deadline:
            return False
    ledger.save_checkpoint({"finished": True}, part.checkpoint_id)
    return True


migrate_partition = task(run_partition, name="migrate-partition", retries=3, retry_delay_seconds=[1, 5, 15],
                         retry_condition_fn=transient, cache_policy=NO_CACHE, task_run_name="migrate-partition {index}")
"""The task; its function stays importable by name, so Dask workers load it instead of unpickling its closure."""
