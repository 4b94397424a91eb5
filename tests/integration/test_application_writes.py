"""An application's writes that land between docshift's read and its write are never lost (issue 12, item 10).

The application is simulated inside the migration's own `up`: when it meets a chosen user it writes, on its own
plain pymongo connection as old code would, to users the run has read or written. That puts each write at an exact
place: between a batch's read and its write, or after the run wrote a document and before the run is rolled back.
"""

from docshift.demo import seed_users
from docshift.dump import RAW
from tests.support.fingerprints import fingerprint

APPLICATION = '''
import os

import pymongo

import docshift

_users = None


def app():
    """The application: plain pymongo on a connection of its own."""
    global _users
    if _users is None:
        _users = pymongo.MongoClient(os.environ["DOCSHIFT_MONGODB_URI"])[os.environ["DOCSHIFT_DATABASE"]].users
    return _users


def down(doc: dict) -> dict:
    doc.pop("tier", None)
    return doc


migration = docshift.Migration(version=2, description="Give users a tier", collection="users", kind="additive",
                               up=up, down=down)
'''


def only_migration(env, up_source: str) -> None:
    """Replace the seed migrations by one migration 2 whose `up` is `up_source` (it may call `app()`)."""
    for script in env.migrations.glob("000*.py"):
        script.unlink()
    head, tail = APPLICATION.split("\n\ndef down", 1)
    (env.migrations / "0002_tier.py").write_text(head + "\n\n" + up_source.strip() + "\n\n\ndef down" + tail)


def test_a_write_between_a_batch_read_and_its_write_is_never_overwritten(env):
    """As-read guard: a field the application adds to a document after the batch read it. A field the update sets
    (`tier`) was overwritten before the fix; a field the update leaves alone (`last_login`) was always kept."""
    seed_users(env.db, 300, seed=60)
    only_migration(env, '''
def up(doc: dict) -> dict:
    if doc["user_id"] == "user_7":  # users 0-99 are read; none is written yet
        app().update_one({"user_id": "user_8"}, {"$set": {"tier": "gold"}})
        app().update_one({"user_id": "user_9"}, {"$set": {"last_login": "2026-11-29T10:00:00"}})
    doc.setdefault("tier", "basic")
    return doc
''')

    result = env.cli("migrate", "--batch-size", "100")

    assert result.returncode == 0, result.stdout + result.stderr
    users = {d["user_id"]: d for d in env.db.users.find()}
    assert users["user_8"]["tier"] == "gold" and users["user_8"]["schema_version"] == 2  # migrated by a sweep
    assert users["user_9"]["last_login"] == "2026-11-29T10:00:00" and users["user_9"]["tier"] == "basic"
    assert env.db.users.count_documents({"schema_version": 2}) == 300


def test_rollback_keeps_a_field_the_application_added_after_the_run_wrote_the_document(env):
    """The run writes users 0-199, then the application adds `last_login` to two of them, changes one's e-mail and
    removes a null `name` from another; then the run fails and rolls back. Each of those four gets the inverse
    function (the application's write kept); every other user gets its pre-image back byte for byte."""
    seed_users(env.db, 300, seed=61)
    null_name = env.db.users.find_one({"name": None, "user_id": {"$in": [f"user_{i}" for i in range(20, 200)]}})
    assert null_name is not None and "name" in null_name
    touched = ["user_5", "user_150", "user_12", null_name["user_id"]]
    original = {d["user_id"]: d for d in env.db.users.find()}
    others = {"user_id": {"$nin": touched}}
    before = fingerprint(env.db.users.with_options(codec_options=RAW).find(others))
    only_migration(env, f'''
def up(doc: dict) -> dict:
    if doc["user_id"] == "user_250":  # users 0-199 are written
        app().update_many({{"user_id": {{"$in": ["user_5", "user_150"]}}}}, {{"$set": {{"last_login": "2026-11-29"}}}})
        app().update_one({{"user_id": "user_12"}}, {{"$set": {{"email": "new-address@example.com"}}}})
        app().update_one({{"user_id": "{null_name["user_id"]}"}}, {{"$unset": {{"name": ""}}}})
    if doc["user_id"] == "user_280":
        raise ValueError("cannot migrate user_280")
    doc["tier"] = "basic"
    return doc
''')

    # `up` stands in for the application here (its writes when it reaches user_250): plan's in-memory check of up to
    # 1,000 documents would make them before the run, so it checks one document only
    result = env.cli("migrate", "--batch-size", "100", extra={"DOCSHIFT_PLAN_CHECK_DOCUMENTS": "1"})

    assert result.returncode == 1 and "failed and was rolled back" in result.stderr, result.stdout + result.stderr
    users = {d["user_id"]: d for d in env.db.users.find()}
    expected = {
        "user_5": {**original["user_5"], "last_login": "2026-11-29"},
        "user_150": {**original["user_150"], "last_login": "2026-11-29"},
        "user_12": {**original["user_12"], "email": "new-address@example.com"},
        null_name["user_id"]: {k: v for k, v in original[null_name["user_id"]].items() if k != "name"},
    }
    assert fingerprint(users[u] for u in touched) == fingerprint(expected.values())  # fields, values and types
    assert fingerprint(env.db.users.with_options(codec_options=RAW).find(others)) == before  # exact bytes
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["outcome"] == "rolled_back" and (entry["restored"], entry["undone_by_function"]) == (196, 4)


def test_documents_old_code_inserts_after_the_last_sweep_are_counted_not_a_failure(env):
    """Each time the run migrates a user it inserted, the application inserts another at version 1, behind the
    cursor: the sweeps (engine/cursor.SWEEPS) keep finding one until they run out. The run completes; the one left
    is named and counted in the history entry as written at the old version during the run (`behind`)."""
    seed_users(env.db, 200, seed=62)
    only_migration(env, '''
def up(doc: dict) -> dict:
    uid = doc["user_id"]
    if uid == "user_3" or uid.startswith("late-"):
        n = int(uid[5:]) + 1 if uid.startswith("late-") else 0
        try:  # string _ids sort before ObjectIds: always behind the cursor
            app().insert_one({"_id": f"late-{n}", "user_id": f"late-{n}", "email": f"late{n}@example.com"})
        except pymongo.errors.DuplicateKeyError:
            pass
    doc["tier"] = "basic"
    return doc
''')

    result = env.cli("migrate", "--batch-size", "100")

    assert result.returncode == 0, result.stdout + result.stderr
    left = [d["_id"] for d in env.db.users.find({"schema_version": {"$exists": False}})]
    assert len(left) == 1 and left[0].startswith("late-")
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["outcome"] == "applied" and entry["behind"] == 1 and entry["behind_ids"] == left
    assert "1 written at version 1 during the run" in entry["verification"]
    assert "migration 2: 1 document written at the old version during the run was left there" in result.stdout
    assert env.ledger.find_one({"_id": "current"})["version"] == 2
