"""The `docshift` console script as a real process: what only the process boundary shows.

Every other integration test runs the commands in-process (Env.cli), which captures what docshift.cli.main prints
but not what a new interpreter would print besides: Prefect's own console log lines (main() keeps them off the
terminal), warnings, a traceback at exit. One case of each kind of error is therefore run again here as the
console script, with the same assertions as its in-process twin (named in each docstring).
"""

import pytest

from docshift.demo import seed_users
from tests.support.fingerprints import collection_fingerprint, database_snapshot


@pytest.fixture
def seeded(env):
    seed_users(env.db, 200, seed=4)
    assert env.cli("migrate", "2").returncode == 0
    return env


def test_console_script_reports_status(seeded):
    """The installed entry point works at all (`[project.scripts]`), with the same output as in-process."""
    result = seeded.run("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == seeded.cli("status").stdout
    assert "current version 2" in result.stdout and result.stderr == ""


def test_broken_migration_file_is_one_line_on_stderr(seeded):
    """Twin of test_bad_input.py::test_broken_migration_file_is_refused_naming_it[syntax error]."""
    (seeded.migrations / "0006_broken.py").write_text("def up(doc)\n    return doc\n")
    before = database_snapshot(seeded.db)

    result = seeded.run("migrate")

    assert result.returncode == 1
    assert "0006_broken.py" in result.stderr and "syntax error at line 1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert database_snapshot(seeded.db) == before


def test_non_numeric_target_is_a_usage_error_with_status_2(seeded):
    """Twin of test_bad_input.py::test_non_numeric_target_is_a_usage_error."""
    before = database_snapshot(seeded.db)
    result = seeded.run("migrate", "latest")
    words = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2 and "Invalid value for 'target': Input should be a valid integer" in words
    assert database_snapshot(seeded.db) == before


def test_unusable_connection_is_one_line_without_the_password(env):
    """Twin of test_bad_input.py::test_unusable_connection_is_one_line_without_the_password[migrate-nothing listening]."""
    result = env.run("migrate", extra={"DOCSHIFT_MONGODB_URI": "mongodb://admin:s3cr3t-pass@127.0.0.1:1/",
                                       "DOCSHIFT_SERVER_TIMEOUT_MS": "500"})
    assert result.returncode == 1
    assert result.stderr.startswith("docshift: error: ") and "cannot reach MongoDB at mongodb://admin:***@127.0.0.1:1/" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.embedded_server("the failure is FerretDB's refusal of a nested array; MongoDB stores it")
def test_failure_inside_a_flow_run_is_one_line_and_prefect_logs_stay_on_the_server(seeded):
    """FerretDB stores no nested arrays: a migration that writes one is refused by the server inside a task run, the
    run rolls back with that reason, not retried; Prefect logs it (with its traceback) and the terminal shows one line.
    Only user_150 gets the nested array, and the pre-flight checks only one document (DOCSHIFT_PLAN_CHECK_DOCUMENTS),
    so that it does not meet it (test_server_refusals.py, test_plan_checks.py)."""
    assert seeded.cli("migrate").returncode == 0
    (seeded.migrations / "0006_matrix.py").write_text(
        "import docshift\nmigration = docshift.Migration(version=6, description='d', collection='users', "
        "kind='additive', up=lambda d: {**d, 'matrix': [[1, 2], [3, 4]]} if d['user_id'] == 'user_150' else d, "
        "down=lambda d: d)\n")
    before = collection_fingerprint(seeded.db.users)

    result = seeded.run("migrate", "--batch-size", "50", extra={"DOCSHIFT_PLAN_CHECK_DOCUMENTS": "1"})

    assert result.returncode == 1
    [error] = result.stderr.strip().splitlines()  # Prefect's log of the failed task run goes to the server only
    assert error.startswith("docshift: error: migration 6 (up) failed and was rolled back"), result.stderr
    assert "the server refused to store" in error and "nested arrays are not supported" in error, error
    assert "Retries are exhausted" not in result.stderr and "Retry " not in result.stderr  # a refusal is not retried
    assert collection_fingerprint(seeded.db.users) == before
    assert seeded.ledger.find_one({"_id": "current"})["version"] == 5
    assert seeded.ledger.find_one({"kind": "history", "version": 6})["outcome"] == "rolled_back"
