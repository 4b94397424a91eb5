"""The one object a step's batches, ranges and actions work with (StepRun): the run, its lock, pacing and pre-images.

Its own module so that document steps (docshift.engine.runs, batches, ranges) and collection-level steps
(operation_steps, operations) both depend on it, and it on neither.
"""

from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from ..ledger import Ledger, LeaseLock, LockWatch, now
from ..lookup import Lookup
from ..pacing import BatchSizer, Throttle
from ..progress import ProgressEvent, publish
from ..spec import Migration
from ..stop import check_stop
from .backups import PreImages
from .cursor import BatchCursor
from .faults import fault_point
from .state import RunOptions, RunState
from .steps import Step


@dataclass
class StepRun:
    """Everything a step's batches work with, built once by open_step_run: the run, a partition's too."""

    db: Database
    migration: Migration
    step: Step
    state: RunState
    selector: dict
    lock: LeaseLock | LockWatch | None
    sizer: BatchSizer
    throttle: Throttle
    pre_images: PreImages | None
    options: RunOptions
    lookup: Lookup | None = None
    """What the migration's functions look up in other collections (its `reads`), on this run's database."""

    def cursor(self) -> BatchCursor:
        return BatchCursor(self.db[self.step.collection], self.selector, self.state.last_id, self.state.started)

    def ready(self, first: bool) -> bool:
        """Before a batch (or a range on the server): the throttle's wait (not before the first of a task), the lock
        still held, no stop asked for (a signal: Interrupted is raised here, see docshift.stop); False once the
        options' deadline (a maintenance window's end) has passed."""
        deadline, state, step = self.options.deadline, self.state, self.step
        if not first:
            self.throttle.wait(deadline)
        if self.lock:
            self.lock.check()
        check_stop(f"at {state.done:,} of {state.total:,} documents ({step.label})",
                   f"docshift phase {step.phase} {step.version}" if step.phase else "docshift migrate")
        return not (deadline and now() >= deadline)

    def checkpoint(self, last_id: Any) -> None:
        """After a batch (or range): the run's progress saved where the next one starts, and published."""
        state, step = self.state, self.step
        state.batches += 1
        state.last_id, state.started = last_id, True
        Ledger(self.db).save_checkpoint(state.progress, state.checkpoint_id)
        fault_point("checkpoint-saved")
        publish(ProgressEvent(step.label, state.done, max(state.total, state.done), state.changed, state.elapsed_s))
