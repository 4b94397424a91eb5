"""Issue 12, item 5: a mistyped database name (`-d shpo`) is refused, naming the databases that exist, instead of
reading as "version 1, everything pending" or getting a new ledger; `--new-database` starts one on purpose. And a
ledger dropped under a running migration stops it with one line, leaving nothing the next command trips on."""

import pytest

from docshift.demo import seed_users
from tests.support.orders import add_orders_migrations, seed_orders


@pytest.fixture
def typo(env):
    name = env.database[:-2] + "xq"  # a neighbour of the real name, with nothing in it
    yield name
    env.client.drop_database(name)


def test_a_database_without_ledger_or_migrated_collections_is_refused_naming_those_that_exist(env, typo):
    add_orders_migrations(env.migrations)
    seed_orders(env.db, 50)
    client = env.client

    for args in (("status",), ("plan",), ("history",), ("migrate",), ("migrate", "--dry-run"), ("verify",), ("rehearse",)):
        result = env.cli("-d", typo, *args)

        assert result.returncode == 1 and result.stdout == "", args
        [line] = result.stderr.splitlines()
        assert line.startswith(f"docshift: error: database '{typo}' has no docshift ledger and none of the collections "
                               f"the migrations change (orders, users), so nothing was done; databases on this server: "), line
        assert env.database in line.split("databases on this server: ")[1]
        assert line.endswith("if it is a new database, run `docshift migrate --new-database` to start its ledger"), line
        assert typo not in client.list_database_names(), args

    started = env.cli("-d", typo, "migrate", "--new-database")

    assert started.returncode == 0, started.stdout + started.stderr
    assert client[typo]["_migrations"].find_one({"_id": "current"})["version"] == 8
    assert "current version 8" in env.cli("-d", typo, "status").stdout  # it has a ledger now


def test_a_database_that_has_the_collections_but_no_ledger_yet_is_accepted(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, 50)

    status = env.cli("status")

    assert status.returncode == 0 and "current version 1" in status.stdout and "pending         6, 7, 8" in status.stdout


def test_a_ledger_dropped_under_a_run_stops_it_with_one_line_and_the_next_command_still_reads_the_database(env):
    seed_users(env.db, 600, seed=45)
    victim = env.db.users.find().sort("_id", 1).skip(300).limit(1)[0]["user_id"]
    path = env.migrations / "0003_split_name.py"
    path.write_text(path.read_text().replace("def up(doc: dict) -> dict:\n", (
        "def up(doc: dict) -> dict:\n"
        f"    if doc['user_id'] == {victim!r}:  # someone drops the ledger while the run goes\n"
        f"        import pymongo; pymongo.MongoClient({env.uri!r})[{env.database!r}].drop_collection('_migrations')\n"), 1))

    stopped = env.cli("migrate", "3", "--batch-size", "100")

    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    [line] = stopped.stderr.splitlines()
    assert "is gone from" in line and "dropped while the run went" in line, line
    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    assert checkpoint is None or "version" in checkpoint, checkpoint  # never a checkpoint of a few fields
    status = env.cli("status")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert env.db.users.count_documents({}) == 600
