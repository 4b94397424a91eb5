"""One pass of a collection-level step over documents (a copy, a delete): batch by batch in `_id` order, the lock
checked before each and a checkpoint after each, so that a killed run resumes after its last batch."""

import time
from collections.abc import Callable

from bson.raw_bson import RawBSONDocument

from ..ledger import Ledger
from ..progress import ProgressEvent, publish
from .cursor import BatchCursor
from .step_run import StepRun



def batch_by_batch(run: StepRun, cursor: BatchCursor, write: Callable[[list[RawBSONDocument]], int]) -> None:
    """Each batch of `cursor` through `write` (which returns how many documents it wrote), until the cursor ends;
    the counts in `run.state`."""
    state, ledger = run.state, Ledger(run.db)
    while True:
        if run.lock:
            run.lock.check()
        started = time.monotonic()
        raws = cursor.next_batch(run.sizer.next())
        if not raws:
            return
        written = write(raws)
        state.done, state.changed, state.batches = state.done + len(raws), state.changed + written, state.batches + 1
        state.last_id, state.started = cursor.last_id, True
        ledger.save_checkpoint(state.progress)
        run.sizer.record(len(raws), sum(len(raw.raw) for raw in raws), time.monotonic() - started)
        publish(ProgressEvent(run.step.label, state.done, max(state.total, state.done), state.changed, state.elapsed_s))
