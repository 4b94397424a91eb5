"""Every mistake a user can make ends in one plain message, a non-zero exit, and nothing written."""

import pytest

from docshift.demo import seed_users
from tests.integration.conftest import database_snapshot


@pytest.fixture
def seeded(env):
    seed_users(env.db, 200, seed=4)
    assert env.run("migrate", "2").returncode == 0
    return env


BROKEN_FILES = {
    "syntax error": ("0006_broken.py", "def up(doc)\n    return doc\n", "syntax error at line 1"),
    "import error": ("0006_broken.py", "import no_such_module_here\n", "cannot import: ModuleNotFoundError"),
    "no migration object": ("0006_broken.py", "x = 1\n", "defines no module-level `migration"),
    "wrong type": ("0006_broken.py", "migration = {'version': 6}\n", "`migration` is a dict, not a docshift.Migration"),
    "duplicate version": ("0006_dup.py", "import docshift\nmigration = docshift.Migration(version=5, description='d', "
                          "collection='users', kind='additive', up=lambda d: d, down=lambda d: d)\n", "duplicate version 5"),
    "non-integer version": ("0006_broken.py", "import docshift\nmigration = docshift.Migration(version='6', description='d', "
                            "collection='users', kind='additive', up=lambda d: d, down=lambda d: d)\n",
                            "version: Input should be a valid integer"),
    "missing down": ("0006_broken.py", "import docshift\nmigration = docshift.Migration(version=6, description='d', "
                     "collection='users', kind='additive', up=lambda d: d)\n", "down: Field required"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_migration_file_is_refused_naming_it(seeded, case):
    name, source, message = BROKEN_FILES[case]
    (seeded.migrations / name).write_text(source)
    before = database_snapshot(seeded.db)

    result = seeded.run("migrate")

    assert result.returncode == 1
    assert name in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert database_snapshot(seeded.db) == before


@pytest.mark.parametrize("args,message", [(["migrate", "9"], "unknown target version 9"),
                                          (["migrate", "--", "-1"], "unknown target version -1"),
                                          (["plan", "0"], "unknown target version 0")])
def test_unknown_or_negative_target_is_refused(seeded, args, message):
    before = database_snapshot(seeded.db)
    result = seeded.run(*args)
    assert result.returncode == 1 and message in result.stderr and "known versions: 1, 2, 3, 4, 5" in result.stderr
    assert database_snapshot(seeded.db) == before


def test_non_numeric_target_is_a_usage_error(seeded):
    before = database_snapshot(seeded.db)
    result = seeded.run("migrate", "latest")
    words = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2 and "Invalid value for 'target': Input should be a valid integer" in words
    assert database_snapshot(seeded.db) == before


@pytest.mark.parametrize("uri,message", [
    ("mongodb://admin:s3cr3t-pass@127.0.0.1:1/", "cannot reach MongoDB at mongodb://admin:***@127.0.0.1:1/"),
    ("mongodb://admin:s3cr3t-pass@127.0.0.1:1:2/", "invalid MongoDB URI mongodb://admin:***@"),
    ("postgres://admin:s3cr3t-pass@127.0.0.1/", "invalid MongoDB URI"),
])
@pytest.mark.parametrize("args", [["migrate"], ["status"]])
def test_unusable_connection_is_one_line_without_the_password(env, uri, message, args):
    result = env.run(*args, extra={"DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_SERVER_TIMEOUT_MS": "500"})
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_edited_applied_migration_is_refused_unless_allowed(seeded):
    applied = seeded.migrations / "0002_add_preferences.py"
    applied.write_text(applied.read_text() + "\n# edited after it ran\n")
    before = database_snapshot(seeded.db)

    refused = seeded.run("migrate")

    assert refused.returncode == 1 and "0002_add_preferences.py" in refused.stderr and "--allow-changed" in refused.stderr
    assert database_snapshot(seeded.db) == before
    allowed = seeded.run("migrate", "--allow-changed")
    assert allowed.returncode == 0, allowed.stderr
    assert seeded.db.users.count_documents({"schema_version": 5}) == 200


def test_plan_and_dry_run_write_nothing(seeded):
    before = database_snapshot(seeded.db)

    plan = seeded.run("plan")
    dry = seeded.run("migrate", "--dry-run")

    assert plan.returncode == 0 and dry.returncode == 0, plan.stderr + dry.stderr
    for output in (plan.stdout, dry.stdout):
        assert "from version 2 to 5" in output
        assert "up   3 users: Split name into first_name and last_name (transformative, 200 documents)" in output
        assert "first_name" in output  # a sample diff from a real document
    assert database_snapshot(seeded.db) == before
