"""Issue 12's core pieces without a server: drift, the dead-holder lock takeover, the database guard, records that
fit the terminal, and the supervised run's stop."""

import os
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta

import mongomock
import pytest
from pymongo.errors import OperationFailure
from rich.console import Console

from docshift import stop
from docshift.context import RunContext, check_database
from docshift.engine.drift import Drift, carry_from, expected_versions, find_drift, highest_versions
from docshift.engine.planning import plan_steps
from docshift.errors import DatabaseError, Interrupted, LockHeldError
from docshift.ledger import LeaseLock, Ledger, describe_lock, holder_is_dead, now
from docshift.output import print_records
from docshift.settings import Settings


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


def test_a_lock_held_by_a_process_gone_from_this_host_is_dead_and_taken_over(mock_db):
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    dead = {"owner": f"{here}:{gone.pid}:x", "expires_at": now() + timedelta(hours=1)}
    assert holder_is_dead(dead)
    assert not holder_is_dead({"owner": f"{here}:{os.getppid()}:x"}) and not holder_is_dead({"owner": f"elsewhere:{gone.pid}:x"})
    assert "(dead: that process is gone" in describe_lock(dead) and describe_lock(None) == "free"
    mock_db["_migrations"].insert_one({"_id": "lock", **dead})
    Ledger(mock_db).check_lock_free()

    with LeaseLock(mock_db, 60, "test") as lock:
        assert Ledger(mock_db).lock_holder()["owner"] == lock.owner

    mock_db["_migrations"].insert_one({"_id": "lock", "owner": f"{here}:{os.getppid()}:x", "expires_at": now() + timedelta(hours=1)})
    with pytest.raises(LockHeldError):
        LeaseLock(mock_db, 60, "test").acquire()


def test_a_database_without_ledger_or_migrated_collections_is_refused(seed_scripts):
    client = mongomock.MongoClient()
    client["shop"].users.insert_one({"_id": 1})
    ctx = RunContext(Settings(), seed_scripts, client["shpo"])

    with pytest.raises(DatabaseError, match=r"database 'shpo' has no docshift ledger .* databases on this server: shop\. "):
        check_database(ctx)
    check_database(ctx, new_database=True)
    check_database(RunContext(Settings(), seed_scripts, client["shop"]))


def test_without_the_right_to_list_databases_the_refusal_says_so(seed_scripts, monkeypatch):
    client = mongomock.MongoClient()

    def refused(*args, **kwargs):
        raise OperationFailure("not authorized on admin to execute command { listDatabases: 1 }", 13)

    monkeypatch.setattr(client, "list_database_names", refused)
    with pytest.raises(DatabaseError, match="this server does not let docshift list its databases"):
        check_database(RunContext(Settings(), seed_scripts, client["shpo"]))


@pytest.mark.parametrize("width", [200, 60])
def test_records_are_a_table_when_they_fit_and_blocks_otherwise_with_ids_whole(width):
    console = Console(width=width, record=True, soft_wrap=True)
    run_id, flow_run = "v3-up-0123456789", "9d6c1f3e-2b7a-4c8e-9f10-1234567890ab"

    print_records(console, "history", [{"run": run_id, "migration": "3", "flow run": flow_run}],
                  lambda r: (f"{r['run']}  migration {r['migration']}", {"run", "migration"}))

    text = console.export_text()
    assert run_id in text and flow_run in text
    assert ("┃ run" in text) == (width == 200)
    assert all(len(line) <= width for line in text.splitlines())


@pytest.fixture
def fresh_stop(monkeypatch):
    monkeypatch.setattr(stop, "_stop", threading.Event())
    monkeypatch.setattr(stop, "_signals", [])
    monkeypatch.setattr(stop, "_why", [])


def batches():
    """A run's batch loop in miniature: checks for a stop at every boundary."""
    for done in range(0, 10_000, 10):
        stop.check_stop(f"at {done} of 10000 documents", "docshift migrate")
        time.sleep(0.01)
    return "finished"


def test_a_signal_asks_the_run_to_stop_at_its_next_boundary(fresh_stop):
    watch = stop.Watch(health=lambda: None, let_go=lambda: None, poll_s=0.05)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    with pytest.raises(Interrupted, match=r"interrupted at \d+ of 10000 documents; `docshift migrate` resumes"):
        stop.supervise(batches, watch)
    assert stop.received_signal() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not stop._ask_to_stop  # the handlers before the run are back


def test_an_orchestration_gone_for_the_timeout_stops_the_run_and_exits(fresh_stop, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(stop.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    watch = stop.Watch(health=lambda: stop.Unhealthy("the API does not answer"), let_go=lambda: calls.append("let go"),
                       timeout_s=0.3, grace_s=2, poll_s=0.05)
    started = time.monotonic()

    with pytest.raises(SystemExit) as exited:
        stop.supervise(batches, watch)

    assert exited.value.code == 1 and calls == ["let go"] and time.monotonic() - started < 3
    assert stop.stop_requested()
    assert capsys.readouterr().err == ("docshift: error: the API does not answer for 0.3 s: the run cannot report to its "
                                       "orchestration, so it stopped; the checkpoint is kept: run `docshift migrate` again\n")
