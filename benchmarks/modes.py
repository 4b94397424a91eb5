"""The benchmark's modes other than `docshift migrate`, each run in a child process of its own:

    python -m benchmarks.modes MODE URI DATABASE VERSION SECONDS       prints its measurement as JSON

a, b: the original design's two loops; d: the bare ceiling; update_many: the additive ceiling. They use docshift's
own per-document transform (transform_one + transform.update_for), so they write exactly what docshift writes.
"""

import json
import sys
import time
from pathlib import Path

import pymongo
from pymongo import UpdateOne

from docshift.engine.steps import make_step, transform_one
from docshift.loader import ScriptDirectory
from docshift.transform import update_for, version_filter

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000


def transformer(version: int, migrations: Path = ROOT / "migrations"):
    """The update docshift would write for one document at the step to `version` (same functions, same diff)."""
    scripts = ScriptDirectory.load(migrations)
    migration, step = scripts.get(version).migration, make_step(scripts, version, "up")
    return lambda doc: update_for(doc, transform_one(migration, step, doc, None), step.to_version)


def per_document(coll, version: int, budget: float) -> dict:
    """(a) The original design: `find(...).toArray()`, then one `updateOne` per document."""
    update, start = transformer(version), time.perf_counter()
    docs = coll.find(version_filter(version - 1)).to_list()
    fixed, done = time.perf_counter() - start, 0
    for doc in docs:
        if time.perf_counter() - start > budget:
            break
        coll.update_one({"_id": doc["_id"]}, update(doc))
        done += 1
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": fixed, "batches": done}


def batch_loop(coll, version: int, budget: float) -> dict:
    """(b) The original design: `find(...).limit(1000)` + `bulkWrite` + 100 ms sleep until nothing is left.

    Without an index each find scans past every document already migrated, so an iteration costs more the later
    it comes: the per-iteration times are returned for the extrapolation.
    """
    update, start, done, iterations = transformer(version), time.perf_counter(), 0, []
    while time.perf_counter() - start <= budget:
        began = time.perf_counter()
        batch = coll.find(version_filter(version - 1)).limit(BATCH).to_list()
        if not batch:
            break
        coll.bulk_write([UpdateOne({"_id": doc["_id"]}, update(doc)) for doc in batch])
        done += len(batch)
        time.sleep(0.1)
        iterations.append(time.perf_counter() - began)
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": 0.0, "iterations": iterations,
            "batches": len(iterations)}


def ceiling(coll, version: int, budget: float) -> dict:
    """(d) What the server allows: one `_id`-ordered cursor, an unordered bulk_write per 1000, no bookkeeping."""
    update, start, done, batches = transformer(version), time.perf_counter(), 0, 0
    cursor = coll.find(version_filter(version - 1)).sort("_id", 1).batch_size(BATCH)
    batch: list = []
    for doc in cursor:
        batch.append(UpdateOne({"_id": doc["_id"]}, update(doc)))
        if len(batch) == BATCH:
            coll.bulk_write(batch, ordered=False)
            done, batch, batches = done + BATCH, [], batches + 1
            if time.perf_counter() - start > budget:
                break
    else:
        if batch:
            coll.bulk_write(batch, ordered=False)
            done, batches = done + len(batch), batches + 1
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": 0.0, "batches": batches}


def update_many(coll, version: int, budget: float) -> dict:
    """The additive ceiling: one server-side `update_many` of migration 2's update form (benchmarks/additive, mode u)
    and the version: what u writes (the seeded users have no preferences)."""
    update = ScriptDirectory.load(ROOT / "benchmarks" / "additive").get(2).migration.update
    start = time.perf_counter()
    result = coll.update_many(version_filter(version - 1), {"$set": {**update["$set"], "schema_version": version}})
    return {"done": result.modified_count, "seconds": time.perf_counter() - start, "fixed": 0.0, "batches": 1}


MODES = {"a": per_document, "b": batch_loop, "d": ceiling, "update_many": update_many}


def main() -> None:
    mode, uri, database, version, seconds = sys.argv[1:6]
    coll = pymongo.MongoClient(uri)[database].users
    print(json.dumps(MODES[mode](coll, int(version), float(seconds))))


if __name__ == "__main__":
    main()
