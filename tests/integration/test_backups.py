"""Backup files in mongodump format: readable with bson.decode_file_iter, restorable exactly, checked by sha256."""

from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument

from docshift.demo import seed_users
from tests.integration.conftest import database_snapshot, raw_snapshot

N = 100_000


def test_backup_then_restore_of_100000_documents_is_byte_identical_and_tampering_is_refused(env):
    seed_users(env.db, N, seed=18)
    original = raw_snapshot(env.db.users)

    migrated = env.run("migrate", "2", timeout=1800)

    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    entry = env.db["_backups"].find_one()
    listing = env.run("backups")
    assert listing.returncode == 0 and entry["_id"] in listing.stdout and entry["sha256"][:16] in listing.stdout
    data = Path(entry["path"])
    assert data == Path(env.vars["DOCSHIFT_BACKUP_DIR"]) / entry["_id"] / env.database / "users.bson"
    assert '"collectionName": "users"' in data.with_suffix(".metadata.json").read_text()
    assert entry["documents"] == N and entry["bytes"] == data.stat().st_size
    with open(data, "rb") as stream:  # as bsondump reads it: concatenated BSON documents
        from_file = {doc["_id"]: doc.raw for doc in bson.decode_file_iter(
            stream, codec_options=bson.codec_options.CodecOptions(document_class=RawBSONDocument))}
    assert from_file == original  # the pre-images are the exact bytes the server held

    restored = env.run("restore", entry["_id"], timeout=1800)

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"restored {N:,} documents" in restored.stdout
    assert raw_snapshot(env.db.users) == original

    before_tamper = database_snapshot(env.db)
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    data.write_bytes(bytes(damaged))

    refused = env.run("restore", entry["_id"])

    assert refused.returncode == 1 and "does not match its recorded sha256" in refused.stderr
    assert database_snapshot(env.db) == before_tamper
