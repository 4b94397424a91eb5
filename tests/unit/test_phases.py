"""Expand-contract phases on mongomock: what each phase selects and writes, and when each may start."""

from datetime import timedelta

import pytest

from docshift.engine.steps import make_step, transform_one
from docshift.errors import PhaseError, TargetError
from docshift.ledger import Ledger, now
from docshift.phases import check_ready, cleanup_summary


def test_backfill_keeps_the_old_field_and_cleanup_removes_only_it(seed_scripts):
    migration = seed_scripts.get(5).migration
    v4 = {"_id": 1, "user_id": "u1", "email": "a@example.com", "schema_version": 4}
    backfilled = transform_one(migration, make_step(seed_scripts, 5, "up", "backfill"), v4, None)
    assert backfilled["email"] == backfilled["email_address"] == "a@example.com" and backfilled["schema_version"] == 5

    cleanup = make_step(seed_scripts, 5, "up", "cleanup")
    cleaned = transform_one(migration, cleanup, backfilled, None)
    assert "email" not in cleaned and cleaned["email_address"] == "a@example.com" and cleaned["schema_version"] == 5

    undo = make_step(seed_scripts, 5, "down", "cleanup")
    assert transform_one(migration, undo, cleaned, backfilled) == backfilled  # the removed field back from the pre-image


def test_cleanup_selects_documents_still_holding_the_old_field(seed_scripts, mock_db):
    mock_db.users.insert_many([{"_id": 1, "schema_version": 5, "email": "x", "email_address": "x"},
                               {"_id": 2, "schema_version": 5, "email_address": "y"},
                               {"_id": 3, "schema_version": 4, "email": "z"}])
    step = make_step(seed_scripts, 5, "up", "cleanup")
    assert [d["_id"] for d in mock_db.users.find(step.selector)] == [1]
    assert (step.from_version, step.to_version, step.recorded_before, step.recorded_after) == (5, 5, 5, 5)
    assert cleanup_summary(mock_db, seed_scripts, 5) == {"fields": ["email"], "collection": "users", "database": "t",
                                                         "documents": 1, "at_version": 2}


@pytest.fixture
def at_4(mock_db):
    Ledger(mock_db).set_current(4)
    mock_db.users.insert_one({"_id": 1, "schema_version": 4, "email": "a"})
    return mock_db


def test_each_phase_waits_for_the_one_before(seed_scripts, at_4):
    ledger = Ledger(at_4)
    for phase, waits_for in (("backfill", "expand"), ("contract", "backfill"), ("cleanup", "contract")):
        with pytest.raises(PhaseError, match=f"{phase} of migration 5 waits for {waits_for}, which has not completed"):
            check_ready(at_4, seed_scripts, 5, phase, soak_seconds=0)
    check_ready(at_4, seed_scripts, 5, "expand", soak_seconds=0)
    ledger.complete_phase(5, "expand", {"verified": True})
    check_ready(at_4, seed_scripts, 5, "backfill", soak_seconds=0)
    ledger.complete_phase(5, "backfill", {"verified": False})
    with pytest.raises(PhaseError, match="waits for backfill, which completed but did not verify"):
        check_ready(at_4, seed_scripts, 5, "contract", soak_seconds=0)


def test_contract_needs_every_document_backfilled(seed_scripts, at_4):
    ledger = Ledger(at_4)
    ledger.complete_phase(5, "expand", {"verified": True})
    ledger.complete_phase(5, "backfill", {"verified": True})
    with pytest.raises(PhaseError, match="1 are still at version 4"):
        check_ready(at_4, seed_scripts, 5, "contract", soak_seconds=0)
    at_4.users.update_one({"_id": 1}, {"$set": {"schema_version": 5}})
    check_ready(at_4, seed_scripts, 5, "contract", soak_seconds=0)


def test_cleanup_waits_for_the_soak_time_after_contract(seed_scripts, at_4):
    ledger = Ledger(at_4)
    for phase in ("expand", "backfill", "contract"):
        ledger.complete_phase(5, phase, {"verified": True})
    with pytest.raises(PhaseError, match="waits for the soak time after contract"):
        check_ready(at_4, seed_scripts, 5, "cleanup", soak_seconds=3600)
    ledger.coll.update_one({"_id": "phases:5"}, {"$set": {"contract.completed_at": now() - timedelta(hours=2)}})
    check_ready(at_4, seed_scripts, 5, "cleanup", soak_seconds=3600)


def test_expand_needs_the_database_at_the_previous_version(seed_scripts, mock_db):
    Ledger(mock_db).set_current(3)
    with pytest.raises(PhaseError, match="expand of migration 5 needs the database at version 4; it is at 3"):
        check_ready(mock_db, seed_scripts, 5, "expand", soak_seconds=0)


@pytest.mark.parametrize("version, phase, message", [(3, "expand", "migration 3 declares no expand-contract phases"),
                                                     (5, "shrink", "unknown phase 'shrink'"),
                                                     (9, "expand", "unknown target version 9")])
def test_phase_of_the_wrong_migration_or_name_is_refused(seed_scripts, mock_db, version, phase, message):
    with pytest.raises(TargetError, match=message):
        check_ready(mock_db, seed_scripts, version, phase, soak_seconds=0)


def test_an_unfinished_phase_run_is_not_resumed_by_migrate(seed_scripts):
    from docshift.engine.planning import plan_steps

    checkpoint = {"version": 5, "direction": "up", "phase": "backfill", "run_id": "v5-up-x", "done": 10, "total": 40}
    with pytest.raises(PhaseError, match="the backfill phase of migration 5 is unfinished .* 10 of 40 documents"):
        plan_steps(seed_scripts, 4, 5, checkpoint)
