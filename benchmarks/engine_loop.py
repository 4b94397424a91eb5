"""One step of a migration run by the engine's batch loop, as batch-migrate tasks run it, without Prefect around it:
what the benchmarks that compare one step's work side by side time (parts, id_types, lookups)."""

import time
from dataclasses import dataclass
from pathlib import Path

from docshift.context import RunContext
from docshift.engine import batches
from docshift.engine.backups import open_backup
from docshift.engine.runs import open_step_run, start_or_resume
from docshift.engine.state import RunOptions
from docshift.engine.steps import make_step
from docshift.ledger import Ledger


@dataclass(frozen=True)
class StepTiming:
    wall: float
    cpu: float
    """This process's user + sys seconds."""
    documents: int


def run_step(ctx: RunContext, version: int, direction: str, backup_dir: Path, options: RunOptions | None = None) -> StepTiming:
    """The step's batch loop to its end; its checkpoint is then cleared, so that the next step can start."""
    step = make_step(ctx.scripts, version, direction)
    state = start_or_resume(ctx, step, None)
    run = open_step_run(ctx, step, state, None, options or RunOptions())
    open_backup(ctx.db, step, state, backup_dir)
    cursor, wall, cpu = run.cursor(), time.perf_counter(), time.process_time()
    while not batches.migrate_batches(run, cursor, 10):
        pass
    timing = StepTiming(time.perf_counter() - wall, time.process_time() - cpu, state.done)
    Ledger(ctx.db).clear_checkpoint()
    return timing
