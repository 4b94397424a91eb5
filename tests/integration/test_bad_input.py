"""Every mistake a user can make ends in one plain message, a non-zero exit, and nothing written.

The commands run in-process (Env.cli, through docshift.cli.main); test_cli_process.py runs one case of each kind
again as a real `docshift` process, where Prefect's own console output would also reach stderr.
"""

from urllib.parse import urlparse

import pytest

from docshift.demo import seed_users
from tests.support.env import only_migrations
from tests.support.fingerprints import collection_fingerprint, database_snapshot, expected_after_all_ups, fingerprint
from tests.support.prefect_api import prefect_logs


@pytest.fixture
def seeded(env):
    seed_users(env.db, 200, seed=4)
    assert env.cli("migrate", "2").returncode == 0
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
    # found by running `up` on a real document in memory before anything is written
    "up returning a non-dict": ("0006_broken.py", "import docshift\nmigration = docshift.Migration(version=6, description='d', "
                                "collection='users', kind='additive', up=lambda d: [d], down=lambda d: d)\n",
                                "migration 6 up returned list, not a document"),
    "up removing _id": ("0006_broken.py", "import docshift\nmigration = docshift.Migration(version=6, description='d', "
                        "collection='users', kind='additive', up=lambda d: {k: v for k, v in d.items() if k != '_id'}, "
                        "down=lambda d: d)\n", "migration 6 up removed or changed _id"),
    "up writing a key with a dot": ("0006_broken.py", "import docshift\nmigration = docshift.Migration(version=6, "
                                    "description='d', collection='users', kind='additive', up=lambda d: {**d, 'a.b': 1}, "
                                    "down=lambda d: d)\n", "migration 6 up returned the field name 'a.b'"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_migration_file_is_refused_naming_it(seeded, case):
    name, source, message = BROKEN_FILES[case]
    (seeded.migrations / name).write_text(source)
    before = database_snapshot(seeded.db)

    result = seeded.cli("migrate")

    assert result.returncode == 1
    assert name in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert database_snapshot(seeded.db) == before


@pytest.mark.parametrize("args,message", [(["migrate", "9"], "unknown target version 9"),
                                          (["migrate", "--", "-1"], "unknown target version -1"),
                                          (["plan", "0"], "unknown target version 0")])
def test_unknown_or_negative_target_is_refused(seeded, args, message):
    before = database_snapshot(seeded.db)
    result = seeded.cli(*args)
    assert result.returncode == 1 and message in result.stderr and "known versions: 1, 2, 3, 4, 5" in result.stderr
    assert database_snapshot(seeded.db) == before


def test_non_numeric_target_is_a_usage_error(seeded):
    before = database_snapshot(seeded.db)
    result = seeded.cli("migrate", "latest")
    words = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2 and "Invalid value for 'target': Input should be a valid integer" in words
    assert database_snapshot(seeded.db) == before


CONNECTIONS = {  # {server}: the session's server with its options, no user; {http}: the Prefect server's port, which does not speak MongoDB
    "nothing listening": ("mongodb://admin:s3cr3t-pass@127.0.0.1:1/", "cannot reach MongoDB at mongodb://admin:***@127.0.0.1:1/"),
    "unreachable host": ("mongodb://admin:s3cr3t-pass@192.0.2.1:27017/", "cannot reach MongoDB at mongodb://admin:***@192.0.2.1"),
    "wrong port": ("mongodb://admin:s3cr3t-pass@{http}/", "cannot reach MongoDB at mongodb://admin:***@{http}/"),
    # FerretDB's SQLite backend has no users: it refuses every login, as a server refuses a wrong password
    "wrong credentials": ("{scheme}://admin:s3cr3t-pass@{server}",
                          "MongoDB at {scheme}://admin:***@{server} refused docshift: {{'ok': 0"),
    "malformed URI": ("mongodb://admin:s3cr3t-pass@127.0.0.1:1:2/", "invalid MongoDB URI mongodb://admin:***@"),
    "not a MongoDB URI": ("postgres://admin:s3cr3t-pass@127.0.0.1/", "invalid MongoDB URI"),
}


def prefect_address(env) -> str:
    """host:port of the session's Prefect server."""
    return urlparse(env.vars["PREFECT_API_URL"]).netloc


@pytest.mark.parametrize("case", list(CONNECTIONS))
@pytest.mark.parametrize("args", [["migrate"], ["status"]])
def test_unusable_connection_is_one_line_without_the_password(env, case, args):
    scheme, rest = env.uri.split("://", 1)
    authority, slash, options = rest.partition("/")
    hosts = {"scheme": scheme, "server": authority.rpartition("@")[2] + slash + options,  # without the user's own credentials
             "http": prefect_address(env)}
    uri, message = (text.format(**hosts) for text in CONNECTIONS[case])
    result = env.cli(*args, extra={"DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_SERVER_TIMEOUT_MS": "500"})
    assert result.returncode == 1
    assert result.stderr.startswith("docshift: error: ") and message in result.stderr, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cr3t" not in prefect_logs(env.vars["PREFECT_API_URL"])


def test_edited_applied_migration_is_refused_unless_allowed(seeded):
    applied = seeded.migrations / "0002_add_preferences.py"
    applied.write_text(applied.read_text() + "\n# edited after it ran\n")
    before = database_snapshot(seeded.db)

    refused = seeded.cli("migrate")

    assert refused.returncode == 1 and "0002_add_preferences.py" in refused.stderr and "--allow-changed" in refused.stderr
    assert database_snapshot(seeded.db) == before
    allowed = seeded.cli("migrate", "--allow-changed")
    assert allowed.returncode == 0, allowed.stderr
    assert seeded.db.users.count_documents({"schema_version": 5}) == 200



def test_an_edited_helper_module_of_an_applied_migration_is_refused_unless_allowed(env):
    """Migration 2 takes its functions from _helpers.py in the folder: the helper is part of what was applied."""
    seed_users(env.db, 200, seed=4)
    only_migrations(env, _helpers="""\
        def with_plan(doc):
            return {**doc, "plan": "free"}


        def without_plan(doc):
            return {k: v for k, v in doc.items() if k != "plan"}
        """, **{"0002_plan": """\
        from _helpers import with_plan, without_plan

        migration = docshift.Migration(version=2, description="Plan", collection="users", kind="additive",
                                       up=with_plan, down=without_plan)
        """, "0003_seats": """\
        migration = docshift.Migration(version=3, description="Seats", collection="users", kind="additive",
                                       up=lambda doc: {**doc, "seats": 1}, down=lambda doc: doc)
        """})
    assert env.cli("migrate", "2").returncode == 0
    assert env.db.users.count_documents({"plan": "free", "schema_version": 2}) == 200
    helper = env.migrations / "_helpers.py"
    helper.write_text(helper.read_text().replace('"free"', '"basic"'))
    before = database_snapshot(env.db)

    refused = env.cli("migrate")

    assert refused.returncode == 1, refused.stdout
    assert "0002_plan.py (with _helpers.py; applied as" in refused.stderr and "--allow-changed" in refused.stderr
    assert database_snapshot(env.db) == before
    allowed = env.cli("migrate", "--allow-changed")
    assert allowed.returncode == 0, allowed.stderr
    assert env.db.users.count_documents({"plan": "free", "seats": 1, "schema_version": 3}) == 200


def test_plan_and_dry_run_write_nothing(seeded):
    before = database_snapshot(seeded.db)

    plan = seeded.cli("plan")
    dry = seeded.cli("migrate", "--dry-run")

    assert plan.returncode == 0 and dry.returncode == 0, plan.stderr + dry.stderr
    for output in (plan.stdout, dry.stdout):
        assert "from version 2 to 5" in output
        assert "up   3 users: Split name into first_name and last_name (transformative, 200 documents)" in output
        assert "first_name" in output  # a sample diff from a real document
    assert database_snapshot(seeded.db) == before


SPECIAL = {  # a v1 user with an unusual `name` (or other field) among ordinary ones
    "missing name": {},
    "null name": {"name": None},
    "non-string name": {"name": 42},
    "very long name": {"name": "Ada " + "Lovelace" * 250_000},
    "unicode and emoji": {"name": "  Zoë\u200d 李明 🦄👩\u200d💻 Ó Súilleabháin 🚀 "},
    "15 MB document": {"name": "Ada Lovelace", "bio": "x" * 15 * 1024 * 1024},  # under the 16 MiB BSON limit
}


@pytest.mark.parametrize("case", list(SPECIAL))
def test_unusual_data_migrates_exactly_and_back(env, case):
    """Through migration 3 (split `name`) and back: the expected documents, then the original ones exactly."""
    seed_users(env.db, 50, seed=5)
    env.db.users.insert_one({"user_id": "special", "email": "special@example.com", **SPECIAL[case]})
    original = list(env.db.users.find())

    up = env.cli("migrate", "3")

    assert up.returncode == 0, up.stdout + up.stderr
    assert collection_fingerprint(env.db.users, drop={"updated_at"}) == fingerprint(
        expected_after_all_ups(original, env.migrations, to_version=3))
    down = env.cli("migrate", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    assert collection_fingerprint(env.db.users, exact=False) == fingerprint(original)  # fields, values and types


@pytest.mark.parametrize("case", ["collection that does not exist", "empty collection"])
def test_a_migration_of_no_documents_succeeds_and_creates_nothing(env, case):
    for script in env.migrations.glob("000*.py"):
        script.unlink()
    (env.migrations / "0002_ghosts.py").write_text(
        "import docshift\nmigration = docshift.Migration(version=2, description='d', collection='ghosts', "
        "kind='additive', up=lambda d: {**d, 'seen': True}, down=lambda d: d)\n")
    if case == "empty collection":
        env.db.create_collection("ghosts")

    result = env.cli("migrate", "--new-database")  # no collection docshift knows yet: a new database on purpose

    assert result.returncode == 0, result.stdout + result.stderr
    assert env.ledger.find_one({"_id": "current"})["version"] == 2
    assert env.ledger.find_one({"kind": "history"})["documents"] == 0
    assert ("ghosts" in env.db.list_collection_names()) == (case == "empty collection")
    assert env.db.ghosts.count_documents({}) == 0


PREFECT_APIS = {  # PREFECT_API_URL: what a user may set it to by mistake; {server}: the session's Prefect server
    "nothing listening": ("http://127.0.0.1:9/api", "the Prefect API at http://127.0.0.1:9/api does not answer (",
                          "unset PREFECT_API_URL"),
    "the UI's address": ("http://{server}", "http://{server} answers, but not as a Prefect API (",
                         "PREFECT_API_URL is the API's address"),
}


@pytest.mark.parametrize("case", list(PREFECT_APIS))
@pytest.mark.parametrize("args", [["migrate"], ["fleet", "migrate", "--databases", "{database}"]])
def test_a_prefect_api_url_where_no_prefect_api_answers_is_one_line_and_nothing_is_written(seeded, case, args):
    """PREFECT_API_URL naming a server that is not there (a wrong port, a server not started), or not the API (the
    UI's address, without /api): refused before the run, and before any lock is taken."""
    url, message, advice = (text.format(server=prefect_address(seeded)) for text in PREFECT_APIS[case])
    before = database_snapshot(seeded.db)
    args = [arg.format(database=seeded.database) for arg in args]
    result = seeded.cli(*args, extra={"PREFECT_API_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith(f"docshift: error: {message}"), result.stderr
    assert advice in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert database_snapshot(seeded.db) == before
