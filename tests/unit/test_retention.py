"""Backup retention (docshift.engine.retention): what `prune` keeps and why, and the ages it reads."""

from datetime import timedelta

import pytest

from docshift.engine.retention import parse_age, plan_prune
from docshift.errors import TargetError
from docshift.ledger import Ledger, now

def history(db, *runs):
    """History entries (run id, version, direction, outcome) in this order, each with a backup collection."""
    ledger = Ledger(db)
    for i, (run_id, version, direction, outcome) in enumerate(runs):
        ledger.start_entry({"_id": run_id, "version": version, "direction": direction, "outcome": outcome,
                            "checksum": "x", "started_at": now() - timedelta(days=100 - i)})
        db[f"_docshift_backup.{run_id}"].insert_one({"_id": i})

def test_pruning_keeps_what_a_down_a_rollback_or_an_unfinished_run_needs(mock_db, tmp_path):
    history(mock_db,
            ("v2-up-a", 2, "up", "applied"),        # needed by a down of 2
            ("v3-up-a", 3, "up", "applied"),
            ("v3-down-a", 3, "down", "reverted"),  # 3 reverted: its earlier backups are not needed any more
            ("v3-up-b", 3, "up", "rolled_back"),
            ("v3-up-c", 3, "up", "applied"),        # needed by a down of 3; the latest finished run too
            ("v4-up-a", 4, "up", "paused"))          # unfinished
    retention = plan_prune(mock_db, tmp_path, keep_last=0, older_than=None)
    assert [b.run_id for b in retention.pruned] == ["v3-up-a", "v3-down-a", "v3-up-b"]
    assert {b.run_id: why for b, why in retention.kept} == {
        "v2-up-a": "a `down` of migration 2 needs it", "v3-up-c": "a `down` of migration 3 needs it",
        "v4-up-a": "a `down` of migration 4 needs it"}
    assert [b.run_id for b in plan_prune(mock_db, tmp_path, keep_last=4, older_than=None).pruned] == ["v3-up-a"]
    assert plan_prune(mock_db, tmp_path, keep_last=None, older_than=timedelta(days=200)).pruned == []
    with pytest.raises(TargetError, match="say what to prune"):
        plan_prune(mock_db, tmp_path, None, None)

def test_ages():
    assert parse_age("30d") == timedelta(days=30) and parse_age("1.5h") == timedelta(minutes=90)
    with pytest.raises(TargetError, match="e.g. 30d"):
        parse_age("30 days")
