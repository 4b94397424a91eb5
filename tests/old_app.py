"""Old application code during a live migration (test_old_app_traffic.py): plain pymongo, nothing of docshift.
It inserts users without `schema_version` and sets `last_login` on random users it knows (seeded or its own).

    python tests/old_app.py URI DATABASE FOLDER

Runs until FOLDER/stop exists. Every acknowledged write goes into FOLDER/writes.json: `last_login` (`_id` hex -> the
last value written) and `inserted` (`_id` hex of each user it inserted). Any error is printed and makes the exit
status 1.
"""

import json
import random
import sys
import time
from pathlib import Path

import pymongo
from bson import ObjectId

from docshift.demo import user


def main(uri: str, database: str, folder: str) -> int:
    folder, rng = Path(folder), random.Random(12)
    users = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[database].users
    known = [doc["_id"] for doc in users.find({}, {"_id": 1})]
    last_login: dict[str, str] = {}
    inserted: list[str] = []
    errors, n = [], 0
    while not (folder / "stop").exists() and not errors:
        n += 1
        try:
            if n % 4:
                doc_id = rng.choice(known)
                stamp = f"2026-11-29T10:00:00.{n:06d}"
                result = users.update_one({"_id": doc_id}, {"$set": {"last_login": stamp}})
                assert result.matched_count == 1, f"user {doc_id} is gone"
                last_login[str(doc_id)] = stamp
            else:
                doc = user(200_000 + n, rng)
                doc["_id"] = ObjectId()
                known.append(users.insert_one(doc).inserted_id)
                inserted.append(str(doc["_id"]))
        except Exception as exc:  # noqa: BLE001 - the application must never see one
            errors.append(f"write {n}: {type(exc).__name__}: {exc}")
        time.sleep(0.002)
    (folder / "writes.json").write_text(json.dumps({"last_login": last_login, "inserted": inserted}))
    print(f"{n} operations, {len(last_login)} users logged in, {len(inserted)} inserted, errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
