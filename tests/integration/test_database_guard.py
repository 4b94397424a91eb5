"""Issue 12, item 5: a mistyped database name (`-d shpo`) is refused, naming the databases that exist, instead of
reading as "version 1, everything pending" or getting a new ledger; `--new-database` starts one on purpose."""

import pytest

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
