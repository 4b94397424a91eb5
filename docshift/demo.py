"""Realistic, messy `users` at schema version 1 for the demo, the tests and the benchmarks.

Run `python -m docshift.demo N` to empty the configured database and seed N users into it.
"""

import random
import sys
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from pymongo.database import Database

FIRST = ["Ada", "Grace", "Linus", "Zoë", "José", "Ngozi", "Søren", "李", "Mohammed", "Ana María", "O'Brien", "Jean-Luc"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Nørgaard", "García Márquez", "Okafor", "明", "van der Berg", "Ó Súilleabháin"]


def user(i: int, rng: random.Random) -> dict:
    """One user at version 1; about one in eight has something odd about the name."""
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(60 * 24 * 40))
    doc = {"_id": ObjectId(), "user_id": f"user_{i}", "email": f"user{i}@example.com"}
    odd = rng.randrange(16)
    if odd == 0:
        pass  # no name at all
    elif odd == 1:
        doc["name"] = None
    elif odd == 2:
        doc["name"] = rng.choice(FIRST)  # one word
    elif odd == 3:
        doc["name"] = f"  {rng.choice(FIRST)}   {rng.choice(LAST)} "  # stray spaces
    elif odd == 4:
        doc["name"] = "🦄 " + rng.choice(LAST) + " 🚀"
    elif odd == 5:
        doc["name"] = ""
    else:
        doc["name"] = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if rng.randrange(5) == 0:
        doc["deprecated_field"] = rng.choice(["legacy", 0, None, {"v": 1}, [1, 2]])
    doc["created_at"] = created
    doc["updated_at"] = created
    return doc


def seed_users(db: Database, n: int, seed: int = 42, batch: int = 5000) -> int:
    """Replace `users` with `n` generated users; deterministic for a given seed (but for fresh ObjectIds)."""
    rng = random.Random(seed)
    db.users.drop()
    for start in range(0, n, batch):
        db.users.insert_many([user(i, rng) for i in range(start, min(n, start + batch))], ordered=False)
    return n


if __name__ == "__main__":
    from .db import connect
    from .settings import get_settings

    db = connect(get_settings())
    db.client.drop_database(db.name)
    count = seed_users(db, int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    print(f"seeded {count:,} users at schema version 1")
