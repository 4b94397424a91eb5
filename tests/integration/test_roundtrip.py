"""Migrate up and down through the CLI (in-process) on FerretDB: every document comes back as it was."""

import collections
import uuid

from bson import Binary

import bson

from docshift.demo import seed_users
from tests.support.env import only_migrations
from tests.support.fingerprints import raw_snapshot, snapshot

N, BATCH = 600, "200"  # formerly 3000, then 1200 in batches of 400: still three batches per migration, 12 steps in all


def versions(coll):
    return collections.Counter(d.get("schema_version") for d in coll.find({}, {"schema_version": 1}))


def test_up_to_latest_down_to_initial_and_up_again(env):
    seed_users(env.db, N, seed=7)
    original, exact = snapshot(env.db.users), raw_snapshot(env.db.users)

    up = env.cli("migrate", "--batch-size", BATCH)
    assert up.returncode == 0, up.stdout + up.stderr
    assert versions(env.db.users) == {5: N}
    doc = env.db.users.find_one({"name_source": {"$exists": False}, "first_name": {"$ne": None}})
    assert {"preferences", "first_name", "last_name", "email_address"} <= doc.keys()
    assert "name" not in doc and "email" not in doc and "deprecated_field" not in doc
    first_up = snapshot(env.db.users, drop={"updated_at"})
    assert env.ledger.find_one({"_id": "current"})["version"] == 5

    down = env.cli("migrate", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    assert snapshot(env.db.users) == original  # same fields, values and BSON types, deprecated_field included
    assert raw_snapshot(env.db.users) == exact  # and the same bytes: email back in its place, not at the end
    assert env.ledger.find_one({"_id": "current"})["version"] == 1

    again = env.cli("migrate")
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(env.db.users, drop={"updated_at"}) == first_up

    outcomes = [(e["version"], e["direction"], e["outcome"]) for e in env.ledger.find({"kind": "history"}).sort("started_at")]
    assert outcomes == [(v, "up", "applied") for v in (2, 3, 4, 5)] + [(v, "down", "reverted") for v in (5, 4, 3, 2)] + [
        (v, "up", "applied") for v in (2, 3, 4, 5)]
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["documents"] == N and entry["changed"] == N and entry["flow_run_id"]


def test_a_field_renamed_by_functions_comes_back_in_its_place_byte_for_byte(env):
    """A `down` that does not take the pre-image still gives each document its pre-image's bytes where it gives back
    its values, and its key order where the application changed a value since."""
    only_migrations(env, **{"0002_email_address": """\
        def up(doc):
            doc["email_address"] = doc.pop("email")
            return doc


        def down(doc):
            doc["email"] = doc.pop("email_address")
            return doc


        migration = docshift.Migration(version=2, description="Rename email", collection="users",
                                       kind="transformative", up=up, down=down)
        """})
    seed_users(env.db, 600, seed=11)
    original = raw_snapshot(env.db.users)
    assert env.cli("migrate", "--batch-size", "200").returncode == 0
    written_since = env.db.users.find_one({}, sort=[("_id", -1)])["_id"]
    env.db.users.update_one({"_id": written_since}, {"$set": {"user_id": "changed by the application"}})

    down = env.cli("migrate", "1", "--batch-size", "200")

    assert down.returncode == 0, down.stdout + down.stderr
    restored = raw_snapshot(env.db.users)
    assert {i: raw for i, raw in restored.items() if i != written_since} == {
        i: raw for i, raw in original.items() if i != written_since}
    doc, before = bson.decode(restored[written_since]), bson.decode(original[written_since])
    assert list(doc) == list(before) and doc == {**before, "user_id": "changed by the application"}
    entry = env.ledger.find_one({"kind": "history", "version": 2, "direction": "down"})
    assert entry["documents"] == entry["changed"] == 600


def test_migrate_down_runs_the_downs_in_reverse_and_stops_at_target(env):
    seed_users(env.db, 500, seed=3)
    assert env.cli("migrate").returncode == 0
    result = env.cli("migrate", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert versions(env.db.users) == {2: 500}
    reverted = [e["version"] for e in env.ledger.find({"kind": "history", "direction": "down"}).sort("started_at")]
    assert reverted == [5, 4, 3]
    status = env.cli("status")
    assert "current version 2" in status.stdout and "pending         3, 4, 5" in status.stdout


def test_a_failing_up_is_rolled_back_byte_for_byte(env):
    seed_users(env.db, 1000, seed=11)  # formerly 2000 in batches of 200: seven batches written before the failure
    assert env.cli("migrate", "2").returncode == 0
    before = raw_snapshot(env.db.users)
    env.break_split_name(["user_750"], "boom")

    result = env.cli("migrate", "--batch-size", "100")

    assert result.returncode == 1
    assert "migration 3 (up) failed and was rolled back" in result.stderr and "boom" in result.stderr
    assert raw_snapshot(env.db.users) == before  # the exact bytes, field order included
    entry = env.ledger.find_one({"kind": "history", "version": 3})
    assert entry["outcome"] == "rolled_back" and "boom" in entry["error"] and entry["restored"] > 0
    assert env.ledger.find_one({"_id": "current"})["version"] == 2
    assert env.ledger.find_one({"_id": "lock"}) is None and env.ledger.find_one({"_id": "checkpoint"}) is None


def test_failed_verification_rolls_back(env):
    seed_users(env.db, 1000, seed=5)
    wrong = env.migrations / "0002_add_preferences.py"
    wrong.write_text(wrong.read_text().replace('doc.setdefault("preferences", dict(DEFAULT_PREFERENCES))',
                                               'doc.setdefault("preferences", {"theme": 1})'))
    before = raw_snapshot(env.db.users)

    result = env.cli("migrate", "2")

    assert result.returncode == 1, result.stdout
    assert "verification failed" in result.stderr and "UserV2" in result.stderr
    assert raw_snapshot(env.db.users) == before
    assert env.ledger.find_one({"kind": "history", "version": 2})["outcome"] == "rolled_back"


def test_uuid_ids_plan_as_mongosh_prints_them_and_come_back_byte_for_byte(env):
    # Java/Spring and Mongock projects keep UUID _ids (Binary subtype 4): plan printed them as raw bytes (b'\xc1U!...')
    seed_users(env.db, 300, seed=9)
    docs = [{**d, "_id": Binary.from_uuid(uuid.UUID(int=i + 1))} for i, d in enumerate(env.db.users.find().sort("_id"))]
    env.db.users.drop()
    env.db.users.insert_many(docs)
    before = raw_snapshot(env.db.users)

    plan = env.cli("plan", "3")
    assert plan.returncode == 0, plan.stderr
    assert '_id UUID("00000000-0000-0000-0000-00000000000' in plan.stdout and "_id b'" not in plan.stdout

    assert env.cli("migrate", "3", "--batch-size", "100").returncode == 0
    assert versions(env.db.users) == {3: 300}
    down = env.cli("migrate", "1")
    assert down.returncode == 0, down.stderr
    assert raw_snapshot(env.db.users) == before  # the exact bytes, key order included
