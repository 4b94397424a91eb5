"""A migration declared as an update, through the CLI on FerretDB: its documents updated on the server by `_id`
ranges, those that had the field per document with their pre-images; rollback and `down` give every byte back."""

from docshift.demo import seed_users
from tests.support.fingerprints import raw_snapshot

N = 600
PLAN = '''import docshift

migration = docshift.Migration(version=2, description="Default plan", collection="users", kind="additive",
                               update={"$set": {"plan": {"name": "free", "seats": 1}}})
'''


def test_an_update_runs_on_the_server_and_rollback_and_down_give_every_byte_back(env):
    for old in env.migrations.glob("0*.py"):
        old.unlink()
    (env.migrations / "0002_default_plan.py").write_text(PLAN)
    seed_users(env.db, N, seed=11)
    users = env.db.users
    had_plan = [d["_id"] for d in users.find().sort("_id", 1).limit(3)]
    users.update_many({"_id": {"$in": had_plan}}, {"$set": {"plan": "gold"}})
    stored_version = users.find_one({"_id": {"$nin": had_plan}})["_id"]
    users.update_one({"_id": stored_version}, {"$set": {"schema_version": 1}})
    users.insert_one({"_id": "not-an-objectid", "user_id": "odd"})
    before = raw_snapshot(users)

    up = env.cli("migrate")
    assert up.returncode == 0, up.stdout + up.stderr
    assert users.count_documents({"schema_version": 2, "plan": {"name": "free", "seats": 1}}) == N + 1
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["outcome"] == "applied" and entry["documents"] == N + 1 and entry["verification"] == "passed"
    backup = env.db[entry["backup"]]
    assert sorted(map(str, backup.distinct("_id"))) == sorted(map(str, [*had_plan, stored_version, "not-an-objectid"]))
    assert env.db[entry["backup"] + ".ranges"].count_documents({}) >= 1

    undone = env.cli("rollback", "--run", entry["_id"])
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert raw_snapshot(users) == before  # the exact bytes, field order included

    assert env.cli("migrate").returncode == 0
    down = env.cli("migrate", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    after = raw_snapshot(users)
    assert {k: v for k, v in after.items() if k != stored_version} == {k: v for k, v in before.items() if k != stored_version}
    assert "schema_version" not in users.find_one({"_id": stored_version})  # a down to version 1 removes it, as always
