"""Tasks that record a step run's life in the ledger: start or resume, partitions merged, finished, paused, failed.

Every ledger write of a run is one of these tasks, retried on database errors: each is idempotent.
"""

from prefect import task
from prefect.cache_policies import NO_CACHE

from docshift.context import RunContext
from docshift.engine import partitions, ranges, runs
from docshift.engine.runs import StepResult, StepRun
from docshift.engine.state import RunState
from docshift.engine.steps import Step
from docshift.engine.verify import Verification

from .retry import transient

ledger_task = task(retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)


@ledger_task(name="start-run")
def start_run(ctx: RunContext, step: Step, flow_run_id: str | None) -> RunState:
    """Resume the step's checkpointed run, or record a new one."""
    return runs.start_or_resume(ctx, step, flow_run_id)


@ledger_task(name="merge-partitions")
def merge_partitions(run: StepRun) -> None:
    """Add the finished partitions' counts to the run, whose own cursor then sweeps what they left."""
    partitions.merge_partitions(run.db, run.state)


@ledger_task(name="end-ranges")
def end_ranges(run: StepRun) -> None:
    """The step's ranges are done on the server; its per-document pass then starts from its first document."""
    ranges.finish_ranges(run.db, run)


@ledger_task(name="finish-run")
def finish_run(run: StepRun, verification: Verification) -> StepResult:
    """Record the step as applied or reverted and move the recorded version."""
    return runs.record_finished(run, verification)


@ledger_task(name="pause-run")
def pause_run(run: StepRun, outcome: str = "paused") -> StepResult:
    """Record that the run paused at its maintenance window's end (or was interrupted); the next run resumes it."""
    return runs.record_paused(run, outcome)


@ledger_task(name="fail-run")
def fail_run(run: StepRun, reason: str) -> None:
    """Record that the run failed, with its counts, before it is rolled back."""
    runs.record_failed(run, reason)
