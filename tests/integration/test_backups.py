"""Backup files in mongodump format: readable with bson.decode_file_iter, restorable exactly, checked by sha256.

5,000 documents (formerly 100,000) prove the same: the backup is appended batch by batch and the restore puts it
back in five batches of 1,000, so every seam of both is crossed; the 100,000- and 1,000,000-document runs are the
benchmark's (benchmarks/run.py checks every document of every mode) and the demo's."""

from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument

from docshift.demo import seed_users
from tests.support.fingerprints import database_snapshot, raw_snapshot

N = 5_000


def test_backup_then_restore_of_5000_documents_is_byte_identical_and_tampering_is_refused(env):
    seed_users(env.db, N, seed=18)
    original = raw_snapshot(env.db.users)

    migrated = env.cli("migrate", "2")

    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    entry = env.db["_backups"].find_one()
    listing = env.cli("backups")
    assert listing.returncode == 0 and entry["_id"] in listing.stdout and entry["sha256"][:16] in listing.stdout
    data = Path(entry["path"])
    assert data == Path(env.vars["DOCSHIFT_BACKUP_DIR"]) / entry["_id"] / env.database / "users.bson"
    assert '"collectionName": "users"' in data.with_suffix(".metadata.json").read_text()
    assert entry["documents"] == N and entry["bytes"] == data.stat().st_size
    with open(data, "rb") as stream:  # as bsondump reads it: concatenated BSON documents
        from_file = {doc["_id"]: doc.raw for doc in bson.decode_file_iter(
            stream, codec_options=bson.codec_options.CodecOptions(document_class=RawBSONDocument))}
    assert from_file == original  # the pre-images are the exact bytes the server held

    restored = env.cli("restore", entry["_id"])

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"restored {N:,} documents" in restored.stdout
    assert raw_snapshot(env.db.users) == original

    before_tamper = database_snapshot(env.db)
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    data.write_bytes(bytes(damaged))

    refused = env.cli("restore", entry["_id"])

    assert refused.returncode == 1 and "does not match its recorded sha256" in refused.stderr
    assert database_snapshot(env.db) == before_tamper
