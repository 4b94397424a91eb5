"""Lookups in other collections from a migration's functions, on FerretDB: they follow the run's connection and
database (the command line's --uri/--database over the environment) and, in `rehearse`, the scratch copy."""

import pymongo

from tests.support.fingerprints import database_snapshot
from tests.support.env import only_migrations, scratch_databases

TIER = """\
import docshift

def up(doc):
    doc["tier"] = "gold" if doc["spent"] > 100 else "basic"
    return doc

def down(doc):
    doc.pop("tier")
    return doc

migration = docshift.Migration(version=2, description="customer tiers", collection="customers", kind="additive",
                               up=up, down=down)
"""
ORDER_TIER = """\
import docshift

def up(doc, lookup):
    customer = lookup.find_one("customers", {"_id": doc["customer_id"]})
    doc["tier"] = customer["tier"]  # only there once migration 2 ran on the customers this run reads
    return doc

def down(doc):
    doc.pop("tier")
    return doc

migration = docshift.Migration(version=3, description="orders carry the tier", collection="orders", kind="additive",
                               up=up, down=down, reads={"customers": "customer_id"})
"""


def shop(db, spent=lambda i: i * 10):
    db.customers.insert_many([{"_id": i, "spent": spent(i)} for i in range(30)])
    db.orders.insert_many([{"_id": n, "customer_id": n % 30} for n in range(600)])


def test_lookups_follow_the_command_lines_uri_and_database_not_the_environment(env):
    only_migrations(env, **{"0002_tier": TIER, "0003_order_tier": ORDER_TIER})
    shop(env.db)
    decoy = pymongo.MongoClient(env.uri)[f"{env.database}_decoy"]
    shop(decoy, spent=lambda i: 0)  # every customer there is basic
    try:
        result = env.cli("--uri", env.uri, "--database", env.database, "migrate",
                         extra={"DOCSHIFT_MONGODB_URI": "mongodb://127.0.0.1:1/", "DOCSHIFT_DATABASE": decoy.name})
        assert result.returncode == 0, result.stdout + result.stderr
        tiers = {o["_id"]: o["tier"] for o in env.db.orders.find()}
        assert tiers[11] == "gold" and tiers[5] == "basic" and len(tiers) == 600
        assert decoy.orders.count_documents({"tier": {"$exists": True}}) == 0
    finally:
        decoy.client.drop_database(decoy.name)


def test_rehearse_looks_up_in_the_scratch_copy(env):
    only_migrations(env, **{"0002_tier": TIER, "0003_order_tier": ORDER_TIER})
    shop(env.db)
    before = database_snapshot(env.db)

    result = env.cli("rehearse", "--sample", "100")

    assert result.returncode == 0, result.stdout + result.stderr  # the source's customers have no tier: a lookup there fails
    assert "customers: 30" in result.stdout and "orders: 100" in result.stdout  # read collections are copied whole
    assert database_snapshot(env.db) == before and scratch_databases(env) == []


def test_a_lookup_in_an_undeclared_collection_is_refused_by_plan_naming_it(env):
    only_migrations(env, **{"0002_tier": TIER, "0003_order_tier": ORDER_TIER.replace(
        'reads={"customers": "customer_id"}', 'reads=["invoices"]')})
    shop(env.db)
    env.db.customers.update_many({}, {"$set": {"tier": "basic"}})
    before = database_snapshot(env.db)

    for command in ("plan", "migrate"):
        result = env.cli(command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.strip() == ("docshift: error: migration 3 looks up collection 'customers', which it does not "
                                         "declare: add it to the migration's reads= (declared: invoices)")
    assert database_snapshot(env.db) == before
