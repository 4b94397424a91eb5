"""The same migrations over users whose `_id`s are ObjectIds and over users whose `_id`s are UUIDs, side by side.

    .venv/bin/python -m benchmarks.id_types URI [N]     (scratch databases `bench_ids_*` on that server)

Seeds N users (3,000) twice, once with ObjectId `_id`s and once with UUID `_id`s (Binary subtype 4, as Java/Spring
and Mongock projects store them), then runs the engine's batch loop (as batch-migrate tasks run it, without Prefect
around it) for migration 2 up, 3 up, 3 down, 2 down on each, in turns, and prints the wall time and documents per
second of each kind and the ratio UUID / ObjectId. Every lookup and update by `_id` goes through the server's `_id`
index on MongoDB; on the embedded FerretDB only for the `_id` types its pushdown patch serves.
"""

import random
import sys
import tempfile
import uuid
from pathlib import Path

import pymongo
from bson import Binary

from docshift.context import RunContext
from docshift.demo import seed_users
from docshift.ledger import Ledger
from docshift.loader import ScriptDirectory
from docshift.settings import Settings

from .engine_loop import run_step

ROOT = Path(__file__).resolve().parent.parent
STEPS = ((2, "up"), (3, "up"), (3, "down"), (2, "down"))


def seed(db, n: int, ids: str) -> None:
    """N users at version 1; with `ids="uuid"` each keeps its fields but gets a random UUID `_id`."""
    seed_users(db, n)
    if ids == "uuid":
        rng = random.Random(7)
        docs = [{**d, "_id": Binary.from_uuid(uuid.UUID(int=rng.getrandbits(128), version=4))} for d in db.users.find()]
        db.users.drop()
        db.users.insert_many(docs)
    Ledger(db).set_current(1)


def main() -> None:
    uri, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    client = pymongo.MongoClient(uri)
    scripts = ScriptDirectory.load(ROOT / "migrations")
    wall = {"objectid": 0.0, "uuid": 0.0}
    with tempfile.TemporaryDirectory() as backups:
        contexts = {}
        for ids in wall:
            db = client[f"bench_ids_{ids}"]
            client.drop_database(db.name)
            seed(db, n, ids)
            contexts[ids] = RunContext(Settings(database=db.name, backup_dir=Path(backups)), scripts, db)
        for version, direction in STEPS:  # in turns, so that the machine's load falls on both alike
            for ids, ctx in contexts.items():
                seconds = run_step(ctx, version, direction, Path(backups)).wall
                wall[ids] += seconds
                print(f"{ids:8} {direction:4} {version}: {seconds:7.2f} s  {n / seconds:8,.0f} docs/s")
    for ids in wall:
        client.drop_database(f"bench_ids_{ids}")
    print(f"{len(STEPS)} steps of {n:,} documents: ObjectId {wall['objectid']:.2f} s, UUID {wall['uuid']:.2f} s, "
          f"UUID / ObjectId {wall['uuid'] / wall['objectid']:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
