"""A user's own project: `docshift init`, the templates of `docshift new --kind`, and the schedules an
expand-contract migration declares for `docshift deploy`."""

import tomllib

import pytest
from pydantic import ValidationError

import docshift
from docshift.errors import ProjectError
from docshift.loader import ScriptDirectory
from docshift.project import init_project, new_migration
from docshift.settings import EnvironmentSettings, get_settings
from tests.support.paths import SEED_MIGRATIONS


def test_init_writes_settings_that_docshift_then_reads(empty_project, monkeypatch):
    monkeypatch.setenv("DOCSHIFT_DATABASE", "shop")
    monkeypatch.setenv("DOCSHIFT_MONGODB_URI", "mongodb://db.internal:27017/")
    layout = init_project(empty_project / "svc", EnvironmentSettings())
    assert layout.settings_file == empty_project / "svc" / "docshift.toml"
    assert layout.migrations.is_dir() and "docshift new" in layout.readme.read_text()
    for name in ("DOCSHIFT_DATABASE", "DOCSHIFT_MONGODB_URI"):
        monkeypatch.delenv(name)
    monkeypatch.chdir(empty_project / "svc")
    settings = get_settings()
    assert (settings.database, settings.mongodb_uri.get_secret_value()) == ("shop", "mongodb://db.internal:27017/")
    assert settings.migrations_dir == empty_project / "svc" / "migrations"
    assert 'project = "svc"' in layout.settings_file.read_text() and settings.project == "svc"
    assert "`migrate/svc`" in layout.readme.read_text() and "`expand/svc-NAME`" in layout.readme.read_text()


def test_init_puts_its_table_into_an_existing_pyproject_and_keeps_a_password_out(empty_project):
    (empty_project / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "1"')
    init_project(empty_project, EnvironmentSettings(mongodb_uri="mongodb://app:s3cret@db:27017/", database="shop",
                                                    alert_url="https://hooks.example/T0K3N", alert_secret="shop-alerts"))
    text = (empty_project / "pyproject.toml").read_text()
    table = tomllib.loads(text)["tool"]["docshift"]
    assert table["database"] == "shop" and table["alert_secret"] == "shop-alerts"
    assert table["project"] == empty_project.name.lower().replace("_", "-")  # made a valid name: test_x0 → test-x0
    assert "mongodb_uri" not in table and "alert_url" not in table and "T0K3N" not in text
    assert text.startswith('[project]\nname = "svc"\nversion = "1"\n') and "s3cret" not in text


def test_init_refuses_to_overwrite_anything_and_names_every_file(empty_project):
    (empty_project / "migrations").mkdir()
    (empty_project / "migrations" / "README.md").write_text("ours")
    (empty_project / "docshift.toml").write_text("")
    with pytest.raises(ProjectError, match="would overwrite .*docshift.toml, .*README.md; nothing was written"):
        init_project(empty_project, EnvironmentSettings())
    assert (empty_project / "migrations" / "README.md").read_text() == "ours"
    (empty_project / "docshift.toml").unlink()
    (empty_project / "migrations" / "README.md").unlink()
    (empty_project / "pyproject.toml").write_text("[tool.docshift]\n")
    with pytest.raises(ProjectError, match=r"pyproject.toml \[tool.docshift\]"):
        init_project(empty_project, EnvironmentSettings())


@pytest.mark.parametrize("kind", ["additive", "transformative", "destructive"])
def test_new_writes_a_loadable_migration_of_each_kind_into_a_missing_folder(tmp_path, kind):
    path = new_migration(tmp_path / "db" / "migrations", "first change", "audit.events", kind)
    assert path.name == "0002_first_change.py"
    migration = ScriptDirectory.load(path.parent).get(2).migration
    assert (migration.kind, migration.collection) == (kind, "audit.events")
    assert migration.target_model.__name__ == "AuditEventsV2"
    doc = {"_id": 1, "old_field": "x"}
    migrated = migration.up(dict(doc))
    assert migration.down(dict(migrated), doc) == doc  # each template is a working round trip as written
    assert new_migration(path.parent, "second", "audit.events", kind).name == "0003_second.py"


def expand_contract(**fields):
    return docshift.ExpandContract(backfill=lambda d: d, removes=("email",), **fields)


def test_expand_contract_declares_its_schedules_with_defaults():
    plan = expand_contract(backfill_schedule="FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1", cleanup_schedule=None,
                           timezone="Europe/Berlin")
    assert plan.schedule("expand") == "0 21 * * 1" and plan.schedule("backfill").startswith("FREQ=WEEKLY")
    assert plan.schedule("cleanup") is None and plan.window_minutes == 120
    for bad in (dict(timezone="Mars/Olympus"), dict(expand_schedule="every monday"), dict(name="Users Email")):
        with pytest.raises(ValidationError):
            expand_contract(**bad)


def test_the_seed_migration_5_keeps_the_demos_schedules():
    plan = ScriptDirectory.load(SEED_MIGRATIONS).get(5).migration.expand_contract
    assert (plan.name, plan.timezone, plan.window_minutes) == ("users-email-address", "Europe/Berlin", 120)
