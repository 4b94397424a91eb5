"""Values the server cannot store (issue 12, item 6): FerretDB refuses nested arrays and keys with dots or `$` with
an error, and a Decimal128 kills the connection (its handler panics; the server itself survives). The pre-flight of
`docshift migrate` and of the migrate flow puts one transformed document per step through the real server, so each
is refused before any write, naming the migration and the field; one met later, during the run, is not retried as
if the connection had failed, and the message says what was refused."""

import subprocess
import sys

import pymongo
import pytest

from docshift.demo import seed_users
from tests.support.fingerprints import collection_fingerprint
from tests.support.fingerprints import database_snapshot
from tests.support.prefect_api import api_post

pytestmark = pytest.mark.embedded_server("these values are refused by FerretDB 1.24; MongoDB stores them")

MIGRATION = ("import docshift\nfrom bson.decimal128 import Decimal128\n"
             "migration = docshift.Migration(version=6, description='d', collection='users', kind='additive', "
             "up=lambda d: {up}, down=lambda d: d)\n")
REFUSED = {  # the value `up` adds, the field named, and what the message says of it
    "Decimal128": ("{**d, 'balance': Decimal128('12.50')}", "'balance'", "(Decimal128): the server closed the connection"),
    "nested array": ("{**d, 'matrix': [[1, 2], [3, 4]]}", "'matrix'", "nested arrays are not supported"),
    "key with a dot in a subdocument": ("{**d, 'meta': {'a.b': 1}}", "'meta.a.b'", "must not contain '.'"),
    "key with a $ in a subdocument": ("{**d, 'meta': {'$x': 1}}", "'meta.$x'", "must not start with '$'"),
    "Decimal128 in a subdocument": ("{**d, 'price': {'currency': 'EUR', 'amount': Decimal128('1.5')}}", "'price.amount'",
                                    "(Decimal128): the server closed the connection"),
}


@pytest.fixture
def at_5(env):
    seed_users(env.db, 200, seed=64)
    assert env.cli("migrate").returncode == 0
    return env


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_value_the_server_refuses_is_reported_before_any_write(at_5, case):
    up, field, reason = REFUSED[case]
    (at_5.migrations / "0006_refused.py").write_text(MIGRATION.format(up=up))
    before = database_snapshot(at_5.db)

    result = at_5.cli("migrate")

    assert result.returncode == 1
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("docshift: error: ") and "0006_refused.py" in error, error
    assert f"migration 6 up returns a document the server refuses to store: field {field}" in error, error
    assert reason in error and "nothing was changed" in error, error
    assert database_snapshot(at_5.db) == before  # the scratch collection is gone too
    assert at_5.db.command("ping")["ok"] == 1  # the server survived the probe


def test_the_migrate_flow_makes_the_same_check_without_the_command_line(at_5):
    """A deployment's run (UI, schedule, `prefect deployment run`) does not pass through `docshift migrate`."""
    (at_5.migrations / "0006_refused.py").write_text(MIGRATION.format(up=REFUSED["Decimal128"][0]))
    before = database_snapshot(at_5.db)

    run = subprocess.run([sys.executable, "-c", "from docshift.flows.migrate import migrate; migrate()"], env=at_5.vars,
                         capture_output=True, text=True, timeout=300)

    assert run.returncode == 1
    assert "MigrationFileError" in run.stderr and "field 'balance' (Decimal128" in run.stderr, run.stderr[-3000:]
    assert database_snapshot(at_5.db) == before


def test_a_refused_value_met_during_the_run_is_not_retried_and_is_named(at_5, prefect_api):
    """Only user_150 gets a Decimal128, and the pre-flight checks only one document (DOCSHIFT_PLAN_CHECK_DOCUMENTS), so
    it passes it: the batch's write kills its connection. The server still answers, so the run names what it refused
    and rolls back at once."""
    (at_5.migrations / "0006_refused.py").write_text(MIGRATION.format(
        up="{**d, 'balance': Decimal128('12.50')} if d['user_id'] == 'user_150' else {**d, 'balance': 1}"))
    before = collection_fingerprint(at_5.db.users)

    result = at_5.cli("migrate", "--batch-size", "50", extra={"DOCSHIFT_PLAN_CHECK_DOCUMENTS": "1"})

    assert result.returncode == 1
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("docshift: error: migration 6 (up) failed and was rolled back"), error
    user_150 = at_5.db.users.find_one({"user_id": "user_150"})["_id"]
    assert f"document _id={user_150!r}" in error and "field 'balance' (Decimal128)" in error, error
    assert collection_fingerprint(at_5.db.users) == before
    assert at_5.ledger.find_one({"kind": "history", "version": 6})["outcome"] == "rolled_back"
    subflow = at_5.ledger.find_one({"kind": "history", "version": 6})["flow_run_id"]
    runs = api_post(prefect_api["PREFECT_API_URL"], "/task_runs/filter",
                    {"task_runs": {"flow_run_id": {"any_": [subflow]}, "name": {"like_": "batch-migrate"}}})
    assert runs and max(r["run_count"] for r in runs) == 1  # not retried as if the connection had failed
    assert pymongo.MongoClient(at_5.uri).admin.command("ping")["ok"] == 1
