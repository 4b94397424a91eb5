"""Data of our own beside the demo users: an `orders` collection and three migrations of it (6, 7, 8), for the tests
of issue 12 (restore and drift, signals, the database guard, rehearsal and quarantine reports)."""

import random
from pathlib import Path

from bson import ObjectId

from docshift.engine.steps import make_step, transform_one
from docshift.loader import ScriptDirectory

MIGRATIONS = {
    "0006_order_total_cents.py": '''"""Version 6: money as integer cents (`total` 12.5 -> `total_cents` 1250)."""
import docshift


def up(doc):
    doc["total_cents"] = round(doc.pop("total") * 100)
    return doc


def down(doc, pre_image):
    cents = doc.pop("total_cents")
    doc["total"] = pre_image["total"] if pre_image else cents / 100
    return doc


migration = docshift.Migration(version=6, description="Total in cents", collection="orders", kind="transformative",
                               up=up, down=down)
''',
    "0007_order_state.py": '''"""Version 7: the free-text `status` becomes a clean `state`."""
import docshift


def up(doc):
    doc["state"] = str(doc.pop("status")).strip().lower()
    return doc


def down(doc, pre_image):
    doc.pop("state")
    return docshift.restore_from(doc, pre_image, "status")


migration = docshift.Migration(version=7, description="Order state", collection="orders", kind="transformative",
                               up=up, down=down)
''',
    "0008_order_currency.py": '''"""Version 8: every order names its currency (EUR where it did not)."""
import docshift


def up(doc):
    doc.setdefault("currency", "EUR")
    return doc


def down(doc, pre_image):
    return docshift.restore_from(doc, pre_image, "currency")


migration = docshift.Migration(version=8, description="Order currency", collection="orders", kind="additive",
                               up=up, down=down)
''',
}
STATUSES = ["PAID", "paid ", "Shipped", "new", " Cancelled"]


def add_orders_migrations(migrations: Path, without_users: bool = False) -> None:
    """Write migrations 6-8 of `orders` beside the seed migrations 2-5 of `users` (or instead of them)."""
    if without_users:
        for script in migrations.glob("000[2-5]_*.py"):
            script.unlink()
    for name, source in MIGRATIONS.items():
        (migrations / name).write_text(source)


def order(i: int, rng: random.Random) -> dict:
    doc = {"_id": ObjectId(), "order_id": f"o-{i}", "total": round(rng.uniform(1, 500), 2), "status": rng.choice(STATUSES)}
    if rng.randrange(3) == 0:
        doc["currency"] = rng.choice(["USD", "GBP"])
    return doc


def seed_orders(db, n: int, seed: int = 7) -> None:
    """`n` orders at version 1 (no `schema_version`)."""
    rng = random.Random(seed)
    db.orders.insert_many([order(i, rng) for i in range(n)], ordered=False)


def expected_orders(docs, migrations: Path, to_version: int) -> list[dict]:
    """What uninterrupted runs of the orders migrations up to `to_version` make of `docs` (the functions in memory)."""
    scripts = ScriptDirectory.load(migrations)
    chain = [v for v in scripts.versions if scripts.get(v).migration.collection == "orders" and v <= to_version]
    result = []
    for doc in docs:
        doc = dict(doc)
        for version in chain:
            if (doc.get("schema_version") or 1) < version:
                doc = transform_one(scripts.get(version).migration, make_step(scripts, version, "up"), doc, None)
        result.append(doc)
    return result


def break_state(migrations: Path, order_ids: list[str]) -> None:
    """Make migration 7's `up` raise ValueError("no state for <order_id>") for these orders."""
    path = migrations / "0007_order_state.py"
    path.write_text(path.read_text().replace("def up(doc):\n", (
        "def up(doc):\n"
        f"    if doc['order_id'] in {order_ids!r}:\n"
        "        raise ValueError('no state for ' + doc['order_id'])\n")))
