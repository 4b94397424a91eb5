"""Lookups in other collections from a migration's functions, on FerretDB: they follow the run's connection and
database (the command line's --uri/--database over the environment) and, in `rehearse`, the scratch copy."""

import pymongo
from bson import Int64

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


ORDER_COUNT = """\
import docshift

def up(doc, lookup):
    doc["orders"] = lookup.count("orders", {"customer_id": doc["_id"]})
    doc["last_order"] = (lookup.find("orders", {"customer_id": doc["_id"]}) or [{"_id": None}])[-1]["_id"]
    return doc

def down(doc):
    doc.pop("orders")
    doc.pop("last_order")
    return doc

migration = docshift.Migration(version=2, description="order counts", collection="customers", kind="additive",
                               up=up, down=down, reads={"orders": docshift.Prefetch(key="customer_id")})
"""


def test_a_count_and_a_find_by_a_declared_key_are_prefetched_and_answer_as_the_server_does(env):
    only_migrations(env, **{"0002_order_count": ORDER_COUNT})
    shop(env.db)
    env.db.orders.insert_many([{"_id": 1000, "customer_id": Int64(4)}, {"_id": 1001, "customer_id": 5.0},
                               {"_id": 1002, "customer_id": [6, 7]}])

    result = env.cli("migrate", "--batch-size", "7")

    assert result.returncode == 0, result.stdout + result.stderr
    for customer in env.db.customers.find():
        mine = list(env.db.orders.find({"customer_id": customer["_id"]}).sort("_id", 1))
        assert customer["orders"] == len(mine) and customer["last_order"] == mine[-1]["_id"], customer
    assert env.db.customers.find_one({"_id": 6})["orders"] == 21 and env.db.customers.find_one({"_id": 4})["last_order"] == 1000
