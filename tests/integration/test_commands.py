"""status, history, new, verify, and what a run leaves in the Prefect server (the commands run in-process)."""

import json

from docshift.demo import seed_users
from tests.support.fingerprints import database_snapshot
from tests.support.prefect_api import api_get, api_post


def test_runs_are_prefect_flow_runs_with_progress_and_report(env, prefect_api):
    seed_users(env.db, 600, seed=8)
    assert env.cli("migrate", "3", "--batch-size", "100").returncode == 0
    api = prefect_api["PREFECT_API_URL"]

    entry = env.ledger.find_one({"kind": "history", "version": 3})
    subflow = api_get(api, f"/flow_runs/{entry['flow_run_id']}")
    assert subflow["name"] == "up-3" and subflow["state_type"] == "COMPLETED"

    artifacts = api_post(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [entry["flow_run_id"]]}}})
    kinds = {a["type"]: a for a in artifacts}
    assert kinds["progress"]["data"] == 100.0 and "600 of 600 documents" in kinds["progress"]["description"]
    table = json.loads(kinds["table"]["data"])
    assert {row["check"]: row["verdict"] for row in table} == {"documents left at version 2": "pass", "document count": "pass",
                                                               "documents valid as UserV3 (all: 600 checked as written)": "pass"}
    reports = api_post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["docshift-report"]}}})
    mine = [r for r in reports if env.database in r["data"]]
    assert len(mine) == 1 and "| 3 | up | users | 600 | 600 |" in mine[0]["data"]


def test_status_and_history_describe_the_database(env):
    seed_users(env.db, 300, seed=6)
    assert env.cli("migrate", "4").returncode == 0
    assert env.cli("migrate", "3").returncode == 0

    status = env.cli("status")
    history = env.cli("history")

    assert status.returncode == 0 and "current version 3" in status.stdout and "latest version  5" in status.stdout
    assert "pending         4, 5" in status.stdout and "lock            free" in status.stdout
    assert history.returncode == 0
    rows = [line for line in history.stdout.splitlines() if line.startswith("│ v")]
    assert [r.split("│")[2].strip() + r.split("│")[3].strip() + r.split("│")[4].strip() for r in rows] == [
        "2upapplied", "3upapplied", "4upapplied", "4downreverted"]


def test_new_writes_the_next_migration_which_then_runs(env):
    seed_users(env.db, 100, seed=2)
    created = env.cli("new", "Add loyalty points!", "--collection", "users")
    assert created.returncode == 0
    path = env.migrations / "0006_add_loyalty_points.py"
    assert path.exists() and "version=6" in path.read_text()
    up, down = path.read_text().split("def down", 1)
    path.write_text(up.replace("    return doc\n", '    doc["points"] = 0\n    return doc\n')
                    + "def down" + down.replace("    return doc\n", '    doc.pop("points")\n    return doc\n'))

    assert env.cli("migrate").returncode == 0
    assert env.db.users.count_documents({"schema_version": 6, "points": 0}) == 100
    assert env.cli("migrate", "5").returncode == 0
    assert env.db.users.count_documents({"points": {"$exists": True}}) == 0


def test_verify_finds_documents_left_behind(env):
    seed_users(env.db, 200, seed=3)
    assert env.cli("migrate", "3").returncode == 0
    assert env.cli("verify").returncode == 0

    env.db.users.insert_one({"user_id": "late", "name": "Late Comer", "schema_version": 2})
    late = env.cli("verify", "3")

    assert late.returncode == 1
    assert "FAIL  documents left at version 2: expected 0, found 1" in late.stdout


def test_status_from_an_older_folder_names_what_it_lacks_and_migrate_refuses(env):
    """A teammate's older checkout: the database was migrated to 5 by a folder with migrations 4 and 5, this folder
    ends at 3. status says so instead of advising a run over documents it cannot judge; migrate writes nothing."""
    seed_users(env.db, 100, seed=3)
    assert env.cli("migrate").returncode == 0
    for path in env.migrations.glob("000[45]_*.py"):
        path.unlink()
    before = database_snapshot(env.db)

    status = env.cli("status")
    run = env.cli("migrate")

    assert status.returncode == 0, status.stderr
    lines = {line[:16].strip(): line[16:] for line in status.stdout.splitlines()}
    assert lines["head differs"] == "applied 4, 5, which this migrations folder does not have", status.stdout
    assert lines["drift"].startswith("not judged: this folder lacks the recorded migrations"), status.stdout
    assert "docshift migrate 5" not in status.stdout
    assert run.returncode == 1 and "records migration 4, 5, which this migrations folder does not have" in run.stderr
    assert database_snapshot(env.db) == before
