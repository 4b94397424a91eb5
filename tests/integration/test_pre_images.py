"""Every document a `down` reverts gets the pre-image of the run that changed it, whichever run that was."""

from docshift.demo import seed_users
from tests.support.fingerprints import snapshot

FAILING = ["user_10", "user_250", "user_777"]


def break_remove_field(env, user_ids: list[str]) -> str:
    """Make migration 4's `up` raise for these users; returns the original source."""
    path = env.migrations / "0004_remove_deprecated_field.py"
    original = path.read_text()
    path.write_text(original.replace("def up(doc: dict) -> dict:\n", "def up(doc: dict) -> dict:\n"
                                     f"    if doc['user_id'] in {user_ids!r}:\n"
                                     "        raise ValueError('cannot remove for ' + doc['user_id'])\n", 1))
    return original


def test_quarantine_fix_retry_then_down_gives_every_document_its_removed_field_back(env):
    """The documented fix-and-retry path: the first run changed 997 users and the retry 3; the destructive `down`
    must give all 1,000 their removed field back, not only the retry's 3."""
    seed_users(env.db, 1000, seed=21)
    assert env.cli("migrate", "3").returncode == 0
    before = snapshot(env.db.users)
    assert sum(1 for d in env.db.users.find({"deprecated_field": {"$exists": True}})) > 100
    original = break_remove_field(env, FAILING)
    first = env.cli("migrate", "4", "--max-failures", "3", "--batch-size", "100")
    assert first.returncode == 0, first.stderr
    (env.migrations / "0004_remove_deprecated_field.py").write_text(original)
    retry = env.cli("migrate", "4", "--allow-changed")
    assert retry.returncode == 0, retry.stderr
    assert env.db.users.count_documents({"deprecated_field": {"$exists": True}}) == 0

    down = env.cli("migrate", "3", "--allow-changed")

    assert down.returncode == 0, down.stdout + down.stderr
    assert snapshot(env.db.users) == before
    runs = [e for e in env.ledger.find({"kind": "history", "version": 4})]
    assert sorted((e["direction"], e["outcome"]) for e in runs) == [("down", "reverted"), ("up", "applied"), ("up", "applied")]


def test_a_down_whose_backup_is_gone_refuses_before_any_write(env):
    seed_users(env.db, 200, seed=22)
    assert env.cli("migrate", "4").returncode == 0
    applied = env.ledger.find_one({"kind": "history", "version": 4, "direction": "up"})
    env.db.drop_collection(f"_docshift_backup.{applied['_id']}")
    before = snapshot(env.db.users)

    down = env.cli("migrate", "3")

    assert down.returncode == 1
    assert f"the backup of run(s) {applied['_id']} is missing" in down.stderr
    assert snapshot(env.db.users) == before
    assert env.ledger.find_one({"_id": "current"})["version"] == 4
