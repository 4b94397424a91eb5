"""docshift.compat with the seed migrations: read fallback, dual write, upgrade on read."""

import mongomock
import pytest

from docshift import compat
from docshift.loader import ScriptDirectory
from tests.support.fingerprints import as_bson

from tests.support.paths import SEED_MIGRATIONS

SCRIPTS = ScriptDirectory.load(SEED_MIGRATIONS)


def test_read_field_prefers_the_new_name_and_falls_back_to_the_old():
    assert compat.read_field({"email_address": "new@x", "email": "old@x"}, "email_address", "email") == "new@x"
    assert compat.read_field({"email": "old@x"}, "email_address", "email") == "old@x"
    assert compat.read_field({"email_address": None, "email": "old@x"}, "email_address", "email") is None
    assert compat.read_field({}, "email_address", "email", default="?") == "?"


def test_dual_write_sets_both_names_and_a_reader_of_either_sees_the_value():
    update = compat.dual_write({"email_address": "email"}, {"email_address": "a@x", "user_id": "u1"})
    assert update == {"$set": {"email_address": "a@x", "email": "a@x", "user_id": "u1"}}
    users = mongomock.MongoClient().db.users
    users.insert_one({"_id": 1, "email": "old@x", "schema_version": 4})
    users.update_one({"_id": 1}, update)
    doc = users.find_one({"_id": 1})
    assert doc["email"] == doc["email_address"] == compat.read_field(doc, "email_address", "email") == "a@x"


def test_upgrade_on_read_gives_what_the_migrations_would_write():
    v1 = {"_id": 7, "user_id": "user_7", "email": "u7@example.com", "name": "  Ada   Lovelace ", "deprecated_field": 3}

    latest = compat.upgrade(v1, SCRIPTS, "users")
    at_3 = compat.upgrade(v1, SCRIPTS, "users", to_version=3)

    assert latest["schema_version"] == 5 and latest["email_address"] == "u7@example.com" and "email" not in latest
    assert (latest["first_name"], latest["last_name"], latest["name_source"]) == ("Ada", "Lovelace", "  Ada   Lovelace ")
    assert "deprecated_field" not in latest and latest["preferences"]["theme"] == "light"
    assert at_3["schema_version"] == 3 and at_3["deprecated_field"] == 3 and at_3["email"] == "u7@example.com"
    again = compat.upgrade(at_3, SCRIPTS, "users")
    assert as_bson({k: v for k, v in again.items() if k != "updated_at"}) == as_bson(
        {k: v for k, v in latest.items() if k != "updated_at"})
    assert compat.upgrade(latest, SCRIPTS, "users") == latest  # already current: unchanged
    assert v1 == {"_id": 7, "user_id": "user_7", "email": "u7@example.com", "name": "  Ada   Lovelace ", "deprecated_field": 3}


def test_upgrade_refuses_a_version_it_cannot_reach():
    with pytest.raises(ValueError, match="cannot upgrade a document at version 9"):
        compat.upgrade({"_id": 1, "schema_version": 9}, SCRIPTS, "users")
