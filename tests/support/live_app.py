"""The application during a live migration (tests/faults/test_live_traffic.py): inserts users at the old and the new version,
updates them with `docshift.compat.dual_write`, reads each back through `upgrade` + `read_field`.

    python tests/support/live_app.py URI DATABASE MIGRATIONS_DIR FOLDER

Runs until FOLDER/stop exists; inserts at version 4 (an old instance) until FOLDER/new-only exists. Every acknowledged
write goes into FOLDER/writes.json (`_id` hex -> the last e-mail written); any error or unreadable document is
printed and makes the exit status 1.
"""

import json
import random
import sys
import time
from pathlib import Path

import pymongo

from docshift.compat import dual_write, read_field, upgrade, version_of
from docshift.demo import user
from docshift.loader import ScriptDirectory

RENAMES = {"email_address": "email"}


def main(uri: str, database: str, migrations: str, folder: str) -> int:
    folder, scripts, rng = Path(folder), ScriptDirectory.load(migrations), random.Random(6)
    users = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[database].users
    known = [doc["_id"] for doc in users.find({}, {"_id": 1}).limit(2000)]
    writes: dict[str, str] = {}
    errors, n = [], 0
    while not (folder / "stop").exists() and not errors:
        n += 1
        try:
            email = f"app-{n}@example.com"
            if n % 3:  # an update of an existing user, written under both names
                doc_id = rng.choice(known)
                result = users.update_one({"_id": doc_id}, dual_write(RENAMES, {"email_address": email}))
                assert result.matched_count == 1, f"user {doc_id} is gone"
            else:  # a new user, by an old instance (version 4, both names) or a new one (version 5)
                old = not (folder / "new-only").exists()
                doc = upgrade(user(100_000 + n, rng), scripts, "users", to_version=4 if old else None)
                doc.pop("email", None)
                doc.update(dual_write(RENAMES, {"email_address": email})["$set"] if old else {"email_address": email})
                doc_id = users.insert_one(doc).inserted_id
                known.append(doc_id)
            writes[str(doc_id)] = email
            seen = upgrade(users.find_one({"_id": doc_id}), scripts, "users")
            assert version_of(seen) == scripts.head, f"read {doc_id} at version {version_of(seen)}"
            assert read_field(seen, "email_address", "email") == email, f"read back {seen!r}, wrote {email}"
            upgrade(users.find_one({"_id": rng.choice(known)}), scripts, "users")  # any user stays readable
        except Exception as exc:  # noqa: BLE001 - the application must never see one
            errors.append(f"write {n}: {type(exc).__name__}: {exc}")
        time.sleep(0.002)
    (folder / "writes.json").write_text(json.dumps(writes))
    print(f"{n} operations, {len(writes)} users written, errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
