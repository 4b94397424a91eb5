"""kill -9 in a migration declared as an update (its `_id` ranges run on the server), then what a user does next: a
re-run resumes and ends as an uninterrupted run, and `rollback --run` (after the re-run, or straight after the kill)
gives back every byte. The killed run is a real `docshift` process stopped by its fault point; the rest is in-process.
"""

import random

import pytest
from bson import ObjectId

from docshift.demo import user
from tests.support.env import only_default_plan
from tests.support.fingerprints import raw_snapshot

BURSTS = (0, 1, 600, 601, 90_000)  # seconds of ObjectId time apart: ranges of one second, then gaps
PER_SECOND = 40


def seed_over_seconds(db) -> list:
    """Users whose `_id`s fall in five seconds far apart, so that the run has several ranges; one already has a plan
    (it goes per document, with its pre-image), one has another `_id` type."""
    rng, start, docs = random.Random(7), 1_700_000_000, []
    for burst in BURSTS:
        for n in range(PER_SECOND):
            doc = user(len(docs), rng)
            doc["_id"] = ObjectId((start + burst).to_bytes(4, "big") + bytes(5) + n.to_bytes(3, "big"))
            docs.append(doc)
    docs[PER_SECOND]["plan"] = "gold"
    docs.append({**user(len(docs), rng), "_id": "not-an-objectid"})
    db.users.drop()
    db.users.insert_many(docs)
    return docs


def killed_at(env, point: str) -> dict:
    """`docshift migrate` killed by SIGKILL at the n-th pass through a fault point; the checkpoint it left."""
    proc = env.start("migrate", extra={"DOCSHIFT_FAULT": point})
    assert proc.wait(timeout=600) == -9, proc.stdout.read()
    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    assert checkpoint and checkpoint["version"] == 2
    env.expire_lease()
    return checkpoint


@pytest.mark.parametrize("point,then,ranged", [("batch-written:2", "resume", False),
                                               ("pre-images-saved:3", "rollback", False), ("verify:1", "resume", True)],
                         ids=["written-not-checkpointed-then-resume", "range-recorded-not-written-then-rollback",
                              "at-verification-then-resume"])
def test_a_killed_server_side_run_resumes_or_rolls_back_with_nothing_lost(env, point, then, ranged):
    only_default_plan(env)
    docs = seed_over_seconds(env.db)
    before = raw_snapshot(env.db.users)
    checkpoint = killed_at(env, point)
    migrated = env.db.users.count_documents({"schema_version": 2, "plan": {"name": "free", "seats": 1}})
    assert checkpoint.get("ranged", False) is ranged and (migrated == len(docs) if ranged else migrated < len(docs))

    if then == "resume":
        resumed = env.cli("migrate")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "database is now at version 2" in resumed.stdout and "drift" not in resumed.stdout
        assert env.db.users.count_documents({"schema_version": 2, "plan": {"name": "free", "seats": 1}}) == len(docs)
        assert env.db.users.find_one({"_id": docs[PER_SECOND]["_id"]})["plan"] == {"name": "free", "seats": 1}
        entry = env.ledger.find_one({"_id": checkpoint["run_id"]})
        assert entry["outcome"] == "applied" and entry["resumed"] == 1 and entry["verification"] == "passed"
        assert env.db[entry["backup"] + ".ranges"].count_documents({}) >= 3

    undone = env.cli("rollback", "--run", checkpoint["run_id"])

    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert raw_snapshot(env.db.users) == before  # every byte, field order included
    assert env.ledger.find_one({"_id": "checkpoint"}) is None and env.ledger.find_one({"_id": "lock"}) is None
    assert env.cli("verify").returncode == 0
