"""Quarantine: documents whose `up` raises are recorded and left unchanged; --max-failures decides the run's fate."""

from docshift.demo import seed_users
from tests.support.fingerprints import raw_snapshot

FAILING = ["user_10", "user_250", "user_777"]


def test_under_the_threshold_the_run_completes_and_the_fix_retries_them(env):
    seed_users(env.db, 1000, seed=16)
    assert env.cli("migrate", "2").returncode == 0
    original = env.break_split_name(FAILING, "cannot split")
    before = raw_snapshot(env.db.users)
    failing = {d["_id"]: before[d["_id"]] for d in env.db.users.find({"user_id": {"$in": FAILING}})}

    result = env.cli("migrate", "--max-failures", "3", "--batch-size", "100")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "docshift quarantine" in result.stdout
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
    after = raw_snapshot(env.db.users)
    assert {i: after[i] for i in failing} == failing  # left exactly as they were, at version 2
    assert env.db.users.count_documents({"schema_version": 5}) == 997
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["outcome"] == "applied" and entry["quarantined"] == 3 and "passed" == entry["verification"]
    listed = env.cli("quarantine")
    assert listed.returncode == 0 and listed.stdout.count("cannot split user_") == 3 and "0003_split_name.py" in listed.stdout

    (env.migrations / "0003_split_name.py").write_text(original)  # the fix
    refused = env.cli("migrate")
    assert refused.returncode == 1 and "--allow-changed" in refused.stderr
    retried = env.cli("migrate", "--allow-changed")

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert env.db.users.count_documents({"schema_version": 5}) == 1000
    assert env.db["_quarantine"].count_documents({}) == 0
    assert env.ledger.find_one({"_id": "current"})["version"] == 5
    assert "(0 documents)" in env.cli("quarantine").stdout


def test_over_the_threshold_the_run_rolls_back_and_keeps_the_record(env):
    seed_users(env.db, 1000, seed=17)
    assert env.cli("migrate", "2").returncode == 0
    before = raw_snapshot(env.db.users)
    env.break_split_name(FAILING, "cannot split")

    result = env.cli("migrate", "--max-failures", "2", "--batch-size", "100")

    assert result.returncode == 1
    assert "3 document(s) failed, more than --max-failures 2" in result.stderr and "rolled back" in result.stderr
    assert raw_snapshot(env.db.users) == before
    assert env.ledger.find_one({"_id": "current"})["version"] == 2
    assert env.db["_quarantine"].count_documents({"version": 3}) == 3
