"""The migration lock from the command line (in-process): a dead run's lock refuses migrate until `docshift unlock`."""

from docshift.ledger import now
from docshift.demo import seed_users


def test_unlock_breaks_a_dead_runs_lock(env):
    seed_users(env.db, 300, seed=1)
    env.ledger.insert_one({"_id": "lock", "owner": "ghost-host:4242:flow-run x", "acquired_at": now(),
                           "expires_at": now().replace(year=2099)})
    refused = env.cli("migrate")
    assert refused.returncode == 1 and "ghost-host:4242" in refused.stderr
    assert env.db.users.count_documents({"schema_version": {"$exists": True}}) == 0

    unlocked = env.cli("unlock")
    assert unlocked.returncode == 0 and "ghost-host:4242" in unlocked.stdout
    assert env.cli("migrate", "2").returncode == 0
    assert env.db.users.count_documents({"schema_version": 2}) == 300
