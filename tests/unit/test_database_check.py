"""The check that a command names a docshift database (not a typo of one): docshift.context.check_database."""

import mongomock
import pytest
from pymongo.errors import OperationFailure

from docshift.context import RunContext, check_database
from docshift.errors import DatabaseError
from docshift.settings import Settings

def test_a_database_without_ledger_or_migrated_collections_is_refused(seed_scripts):
    client = mongomock.MongoClient()
    client["shop"].users.insert_one({"_id": 1})
    ctx = RunContext(Settings(), seed_scripts, client["shpo"])

    with pytest.raises(DatabaseError, match=r"database 'shpo' has no docshift ledger .* databases on this server: shop\. "):
        check_database(ctx)
    check_database(ctx, new_database=True)
    check_database(RunContext(Settings(), seed_scripts, client["shop"]))

def test_without_the_right_to_list_databases_the_refusal_says_so(seed_scripts, monkeypatch):
    client = mongomock.MongoClient()

    def refused(*args, **kwargs):
        raise OperationFailure("not authorized on admin to execute command { listDatabases: 1 }", 13)

    monkeypatch.setattr(client, "list_database_names", refused)
    with pytest.raises(DatabaseError, match="this server does not let docshift list its databases"):
        check_database(RunContext(Settings(), seed_scripts, client["shpo"]))
