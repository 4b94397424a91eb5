"""Step runs on mongomock as the migrate flow opens and drives them (tests/unit: test_engine_mock.py, test_guards.py)."""

import bson

from docshift.context import RunContext
from docshift.engine.batches import migrate_batches
from docshift.engine.runs import StepRun, record_finished, start_or_resume
from docshift.engine.state import RunOptions
from docshift.engine.steps import make_step
from docshift.engine.verify import verify_step
from docshift.pacing import BatchSizer, Throttle
from docshift.settings import Settings

N = 10
"""Users the `users` fixture of tests/unit/conftest.py seeds."""
BATCH = 4


def snapshot(db):
    return {d["_id"]: bson.encode(d) for d in db.users.find()}


def context(db, scripts):
    return RunContext(Settings(), scripts, db)


def begin(db, scripts, version, direction, pre_images=None, lock=None):
    """A step run as the flow opens it, with a fixed batch size (mongomock answers no `hello`) and no throttle."""
    step = make_step(scripts, version, direction)
    state = start_or_resume(context(db, scripts), step, None)
    run = StepRun(db, scripts.get(version).migration, step, state, step.selector, lock, BatchSizer(BATCH), Throttle(),
                  pre_images, RunOptions(BATCH))
    return run, run.cursor()


def migrate_all(run, cursor):
    while not migrate_batches(run, cursor, 2):
        pass


def run_step(db, scripts, version, direction, pre_images=None):
    run, cursor = begin(db, scripts, version, direction, pre_images)
    migrate_all(run, cursor)
    verification = verify_step(db, scripts.get(version).migration, run.step, run.state.count_before)
    assert verification.passed, verification.summary()
    return run.state, record_finished(run, verification)
