"""Drift without a server: documents behind their collection's recorded version, and what an unfinished run changes
of what counts as behind."""

from docshift.engine.drift import Drift, carry_from, expected_versions, find_drift, highest_versions
from docshift.engine.planning import plan_steps

def test_drift_counts_documents_behind_their_collections_recorded_version_but_not_quarantined_ones(mock_db, seed_scripts):
    users = mock_db.users
    users.insert_many([{"_id": 1, "schema_version": 5}, {"_id": 2, "schema_version": 3}, {"_id": 3},
                       {"_id": 4, "schema_version": 3}])
    mock_db["_quarantine"].insert_one({"collection": "users", "direction": "up", "version": 4, "doc_id": 4})

    [drift] = find_drift(mock_db, seed_scripts, 5)

    assert (drift.collection, drift.recorded, drift.behind) == ("users", 5, {1: 1, 3: 1})
    assert drift.describe() == "users: 2 documents behind version 5 (1 at 1, 1 at 3)"
    assert carry_from(seed_scripts, [drift]) == {"users": 2}
    [ahead] = find_drift(mock_db, seed_scripts, 1)  # documents ahead of the record are drift too
    assert (ahead.behind, ahead.ahead) == ({}, {3: 1, 5: 1})
    assert ahead.describe() == "users: 2 documents ahead of version 1 (1 at 3, 1 at 5)"
    assert carry_from(seed_scripts, [ahead]) == {}  # no run carries them anywhere
    assert find_drift(mock_db, seed_scripts, 3, {"run_id": "r", "version": 5, "direction": "up"}) == [
        Drift("users", 3, {1: 1}, {})]  # a run under way to 5 has its documents there before the record
    steps = plan_steps(seed_scripts, 5, 5, None, carry_from(seed_scripts, [drift]))
    assert [(s.version, s.direction, s.recorded_after) for s in steps] == [(2, "up", 5), (3, "up", 5), (4, "up", 5), (5, "up", 5)]

def test_an_unfinished_down_lowers_what_counts_as_behind_but_an_unfinished_carry_does_not(seed_scripts):
    down = {"run_id": "r", "version": 5, "direction": "down"}
    assert expected_versions(seed_scripts, 5, down) == {"users": 4}
    assert expected_versions(seed_scripts, 5, {"run_id": "r", "version": 3, "direction": "up"}) == {"users": 5}


def test_documents_are_ahead_legitimately_under_a_run_and_an_expand_contract_change_with_phases(seed_scripts):
    assert highest_versions(seed_scripts, 3, None, []) == {"users": 3}
    assert highest_versions(seed_scripts, 3, {"run_id": "r", "version": 4, "direction": "up"}, []) == {"users": 4}
    assert highest_versions(seed_scripts, 3, None, [5]) == {"users": 5}  # phases of 5 recorded: dual-writes at 5
