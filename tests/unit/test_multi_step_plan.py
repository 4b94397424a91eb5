"""A migration of several steps, planned (pure logic, no database): its steps in order, the previous version of each
collection per step, the record moved by the last step only, and an interrupted step undone with the steps before it."""

from pathlib import Path

import pytest

import docshift
from docshift.engine.planning import plan_steps
from docshift.engine.steps import make_step
from docshift.loader import Script, ScriptDirectory

pytestmark = pytest.mark.unit


def same(doc):
    return doc


def changes(version: int, collection: str) -> docshift.Migration:
    return docshift.Migration(version=version, description="d", collection=collection, kind="additive", up=same, down=same)


SCRIPTS = ScriptDirectory([
    Script(changes(2, "orders"), Path("0002.py"), ""),
    Script(changes(3, "users"), Path("0003.py"), "", later=(
        docshift.Migration(version=3, description="d", collection="users", operation=docshift.CreateIndex(keys=[("a", 1)])),
        changes(3, "orders"), changes(3, "invoices"))),
    Script(changes(4, "orders"), Path("0004.py"), ""),
], Path("."))


def where(steps):
    return [(s.version, s.direction, s.part, s.collection, s.from_version, s.to_version, s.recorded_before,
             s.recorded_after) for s in steps]


def test_each_step_upgrades_its_collection_from_its_own_previous_version_and_only_the_last_moves_the_record():
    assert where(plan_steps(SCRIPTS, 1, 4, None)) == [
        (2, "up", 0, "orders", 1, 2, 1, 2),
        (3, "up", 0, "users", 1, 3, 2, 2), (3, "up", 1, "users", 3, 3, 2, 2),  # the index: no document version
        (3, "up", 2, "orders", 2, 3, 2, 2), (3, "up", 3, "invoices", 1, 3, 2, 3),
        (4, "up", 0, "orders", 3, 4, 3, 4)]
    assert where(plan_steps(SCRIPTS, 4, 2, None)) == [
        (4, "down", 0, "orders", 4, 3, 4, 3),
        (3, "down", 3, "invoices", 3, 1, 3, 3), (3, "down", 2, "orders", 3, 2, 3, 3),
        (3, "down", 1, "users", 3, 3, 3, 3), (3, "down", 0, "users", 3, 1, 3, 2)]
    assert SCRIPTS.document_versions("orders") == [2, 3, 4] and SCRIPTS.document_part(3, "orders") == 2


def test_an_interrupted_step_is_resumed_with_its_migration_or_undone_with_the_steps_before_it():
    checkpoint = {"run_id": "r", **make_step(SCRIPTS, 3, "up", part=2).identity}
    resumed = plan_steps(SCRIPTS, 2, 3, checkpoint)
    assert [(s.part, s.direction) for s in resumed] == [(2, "up"), (3, "up")]  # steps 0 and 1 are done
    finished = plan_steps(SCRIPTS, 2, 3, {**checkpoint, "finished": True})  # killed after step 2, before step 3
    assert [(s.part, s.direction, s.recorded_after) for s in finished] == [(3, "up", 3)]
    undone = plan_steps(SCRIPTS, 2, 2, checkpoint)
    assert where(undone) == [(3, "down", 2, "orders", 3, 2, 2, 2), (3, "down", 1, "users", 3, 3, 2, 2),
                             (3, "down", 0, "users", 3, 1, 2, 2)]  # the record stays at 2 throughout


def test_an_interrupted_undo_of_a_failed_step_is_finished_not_reversed():
    """The undo of steps 0-2 after step 3 failed, killed in step 1's down: the record is below the migration, so a plan
    that stays there finishes the downs (resuming step 1's) instead of applying the steps again."""
    checkpoint = {"run_id": "r", **make_step(SCRIPTS, 3, "down", part=1).identity}
    assert where(plan_steps(SCRIPTS, 2, 2, checkpoint)) == [(3, "down", 1, "users", 3, 3, 2, 2),
                                                            (3, "down", 0, "users", 3, 1, 2, 2)]
    interrupted_down = {"run_id": "r", **make_step(SCRIPTS, 3, "down", part=2).identity}
    assert [(s.part, s.direction, s.recorded_after) for s in plan_steps(SCRIPTS, 3, 3, interrupted_down)] == [
        (2, "up", 3), (3, "up", 3)]
