"""A migration that counts each document's related documents, against the same migration without the lookup.

    .venv/bin/python -m benchmarks.lookups URI [N]     (scratch databases `bench_lookups_*` on that server)

Seeds N customers (3,000) and three orders each, then runs migration 2 of `customers` with the engine's batch loop
(adaptive batch sizes, as a run without --batch-size has them) three ways, each on a copy of its own, in turns:

  plain      sets `orders` to 0: no lookup (the floor)
  prefetch   `lookup.count("orders", {"customer_id": doc["_id"]})` declared with docshift.Prefetch(counts=True): one
             query per batch
  per-doc    the same count declared without prefetching (`reads=["orders"]`): one round trip per document

and prints wall time, documents per second and batches of each, and the ratios to `plain` (target for prefetch: <= 3).
"""

import sys
import tempfile
from pathlib import Path

import pymongo

import docshift
from docshift.context import RunContext
from docshift.ledger import Ledger
from docshift.loader import Script, ScriptDirectory
from docshift.settings import Settings

from .engine_loop import run_step


def count_orders(doc, lookup):
    doc["orders"] = lookup.count("orders", {"customer_id": doc["_id"]})
    return doc


def no_orders(doc):
    doc["orders"] = 0
    return doc


def drop_orders(doc):
    doc.pop("orders", None)
    return doc


WAYS = {"plain": (no_orders, {}),
        "prefetch": (count_orders, {"orders": docshift.Prefetch(key="customer_id", counts=True)}),
        "per-doc": (count_orders, {"orders": None})}


def scripts_for(up, reads) -> ScriptDirectory:
    migration = docshift.Migration(version=2, description="order counts", collection="customers", kind="additive",
                                   up=up, down=drop_orders, reads=reads)
    return ScriptDirectory([Script(migration, Path("0002_order_counts.py"), "benchmark")], Path("."))


def seed(db, n: int) -> None:
    db.customers.insert_many([{"_id": i, "name": f"customer {i}"} for i in range(n)])
    db.orders.insert_many([{"_id": o, "customer_id": o % n, "total": o} for o in range(3 * n)])
    Ledger(db).set_current(1)


def main() -> None:
    uri, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    client = pymongo.MongoClient(uri)
    wall = {}
    with tempfile.TemporaryDirectory() as backups:
        for way, (up, reads) in WAYS.items():
            db = client[f"bench_lookups_{way.replace('-', '_')}"]
            client.drop_database(db.name)
            seed(db, n)
            ctx = RunContext(Settings(database=db.name, backup_dir=Path(backups)), scripts_for(up, reads), db)
            timing = run_step(ctx, 2, "up", Path(backups))
            wall[way] = timing.wall
            counted = db.customers.count_documents({"orders": 3 if up is count_orders else 0})
            client.drop_database(db.name)
            print(f"{way:9} {timing.wall:7.2f} s  {n / timing.wall:7,.0f} docs/s  {1e6 * timing.cpu / n:6.0f} µs CPU/doc  "
                  f"({counted:,} of {n:,} documents as expected)")
    print(f"{n:,} customers: prefetch / plain {wall['prefetch'] / wall['plain']:.2f} (target <= 3), "
          f"per-doc / plain {wall['per-doc'] / wall['plain']:.2f}")


if __name__ == "__main__":
    main()
