"""The project's settings file: docshift.toml or [tool.docshift] of pyproject.toml, below the environment and flags."""

from pathlib import Path

import pytest

from docshift.errors import SettingsError
from docshift.settings import configure, find_settings_file, get_settings


def test_docshift_toml_is_read_and_its_folders_are_relative_to_it(empty_project, monkeypatch):
    (empty_project / "docshift.toml").write_text('database = "app"\nmigrations_dir = "db/migrations"\ntimezone = "Europe/Berlin"\n')
    (empty_project / "src").mkdir()
    monkeypatch.chdir(empty_project / "src")  # found in the nearest folder above, as git finds .git
    settings = get_settings()
    assert (settings.database, settings.timezone) == ("app", "Europe/Berlin")
    assert settings.migrations_dir == empty_project / "db" / "migrations"
    assert settings.backup_dir == Path("backups")  # not in the file: the default, relative to where docshift runs


def test_pyproject_table_is_read_and_environment_and_flags_win(empty_project, monkeypatch):
    (empty_project / "pyproject.toml").write_text('[project]\nname = "svc"\n\n[tool.docshift]\ndatabase = "app"\n'
                                            'work_pool = "migrations"\n')
    assert find_settings_file() == empty_project / "pyproject.toml"
    assert (get_settings().database, get_settings().work_pool) == ("app", "migrations")
    monkeypatch.setenv("DOCSHIFT_DATABASE", "from_env")
    assert get_settings().database == "from_env"
    configure(database="from_flag")
    assert get_settings().database == "from_flag"
    assert get_settings(read_file=False).work_pool == "docshift"  # what `docshift init` starts from


def test_a_pyproject_without_a_docshift_table_is_not_a_settings_file(empty_project):
    (empty_project / "pyproject.toml").write_text('[project]\nname = "svc"\n')
    assert find_settings_file() is None
    assert get_settings().database == "docshift_demo"


@pytest.mark.parametrize("text, message", [
    ('databse = "app"\n', "unknown setting(s) databse"),
    ("database = \n", "cannot read it as TOML"),
    ("batch_size = -1\n", "invalid settings: batch_size"),
    ('timezone = "Mars/Olympus"\n', "unknown timezone 'Mars/Olympus'"),
])
def test_a_bad_settings_file_is_one_plain_error_naming_it(empty_project, text, message):
    (empty_project / "docshift.toml").write_text(text)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        get_settings()
    assert str(empty_project / "docshift.toml") in str(caught.value)


def test_the_project_is_named_after_the_folder_of_the_settings_file_else_the_working_directory(empty_project, monkeypatch):
    (empty_project / "My_Shop.API").mkdir()
    monkeypatch.chdir(empty_project / "My_Shop.API")
    assert get_settings().project == "my-shop-api"  # a valid deployment name: lowercase letters, digits, dashes
    (empty_project / "pyproject.toml").write_text('[tool.docshift]\ndatabase = "app"\n')
    assert get_settings().project == empty_project.name.replace("_", "-")
    (empty_project / "pyproject.toml").write_text('[tool.docshift]\nproject = "shop-eu"\n')
    assert get_settings().project == "shop-eu"
    monkeypatch.setenv("DOCSHIFT_PROJECT", "shop-us")
    assert get_settings().project == "shop-us"
    monkeypatch.setenv("DOCSHIFT_PROJECT", "Shop US")
    with pytest.raises(SettingsError, match="project: Value error, 'Shop US' is not a project name: lowercase letters, "
                                            "digits and dashes \\(e.g. 'shop-us'\\)"):
        get_settings()
