"""Helpers for tests that drive the `docshift` command line against FerretDB and a Prefect server."""

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import bson
import pymongo
import pytest

from tests.conftest import BIN
from tests.helpers import canonical


@dataclass
class Env:
    """One test's database, migrations folder and the environment the CLI runs with."""

    uri: str
    database: str
    migrations: Path
    vars: dict

    @property
    def db(self):
        return pymongo.MongoClient(self.uri)[self.database]

    @property
    def ledger(self):
        return self.db["_migrations"]

    def run(self, *args: str, timeout: float = 600, extra: dict | None = None) -> subprocess.CompletedProcess:
        """`docshift ARGS` as a user runs it; returns the finished process (never raises on exit status)."""
        return subprocess.run([str(BIN / "docshift"), *args], env={**self.vars, **(extra or {})}, capture_output=True,
                              text=True, timeout=timeout)

    def break_split_name(self, user_ids: list[str], message: str) -> str:
        """Make migration 3's `up` raise ValueError(f"{message} {user_id}") for these users; returns the original source."""
        path = self.migrations / "0003_split_name.py"
        original = path.read_text()
        path.write_text(original.replace("def up(doc: dict) -> dict:\n", "def up(doc: dict) -> dict:\n"
                                         f"    if doc['user_id'] in {user_ids!r}:\n"
                                         f"        raise ValueError({message!r} + ' ' + doc['user_id'])\n", 1))
        return original

    def start(self, *args: str, extra: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "docshift"), *args], env={**self.vars, **(extra or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.fixture
def env(ferretdb_uri, prefect_api, migrations_dir):
    database = f"t_{uuid.uuid4().hex[:10]}"
    variables = {**os.environ, **prefect_api, "DOCSHIFT_MONGODB_URI": ferretdb_uri, "DOCSHIFT_DATABASE": database,
                 "DOCSHIFT_MIGRATIONS_DIR": str(migrations_dir), "DOCSHIFT_BACKUP_DIR": str(migrations_dir.parent / "backups"), "PREFECT_LOGGING_LEVEL": "WARNING", "COLUMNS": "200"}
    e = Env(ferretdb_uri, database, migrations_dir, variables)
    yield e
    pymongo.MongoClient(ferretdb_uri).drop_database(database)


def snapshot(collection, drop=()) -> dict:
    """_id -> canonical BSON bytes of each document (fields in `drop` left out)."""
    return {doc["_id"]: bson.encode(canonical({k: v for k, v in doc.items() if k not in drop})) for doc in collection.find()}


def raw_snapshot(collection) -> dict:
    """_id -> the exact BSON bytes the server returns (field order included)."""
    raw = collection.with_options(codec_options=bson.codec_options.CodecOptions(document_class=bson.raw_bson.RawBSONDocument))
    return {doc["_id"]: doc.raw for doc in raw.find()}


def database_snapshot(db) -> dict:
    """Every collection's exact documents: for asserting that nothing at all was written."""
    return {name: raw_snapshot(db[name]) for name in sorted(db.list_collection_names())}
