"""ScriptDirectory: loading migration folders, refusing unusable files by name, and version arithmetic."""

import hashlib
import sys
import textwrap
from pathlib import Path

import pytest

import docshift
from docshift.engine.steps import make_step
from docshift.errors import MigrationFileError, TargetError
from docshift.loader import Script, ScriptDirectory

SEED_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

HEADER = """\
import docshift

def up(doc):
    return doc

def down(doc):
    return doc

"""


def migration_source(version="2", collection="users", **overrides) -> str:
    """The text of a migration file; `overrides` replaces or (with None) leaves out keyword arguments."""
    kwargs = {"version": version, "description": "'a change'", "collection": repr(collection),
              "kind": "'additive'", "up": "up", "down": "down"}
    kwargs.update(overrides)
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items() if v is not None)
    return HEADER + f"migration = docshift.Migration({args})\n"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def refusal(folder: Path) -> MigrationFileError:
    with pytest.raises(MigrationFileError) as info:
        ScriptDirectory.load(folder)
    return info.value


# --- loading -------------------------------------------------------------------------------------------------


def test_loads_the_seed_migrations_with_checksums_of_the_file_bytes():
    scripts = ScriptDirectory.load(SEED_MIGRATIONS)
    assert scripts.versions == [2, 3, 4, 5]
    assert scripts.head == 5
    for version, script in scripts.scripts.items():
        assert script.version == version == script.migration.version
        assert script.path.parent == SEED_MIGRATIONS
        assert script.path.name.startswith(f"{version:04d}_")
        assert script.checksum == hashlib.sha256(script.path.read_bytes()).hexdigest()
        assert script.migration.collection == "users"
    assert len({s.checksum for s in scripts.scripts.values()}) == 4


def test_versions_are_ordered_by_version_not_by_file_name(tmp_path):
    write(tmp_path, "0001_late.py", migration_source(version="7"))
    write(tmp_path, "0009_early.py", migration_source(version="3"))
    scripts = ScriptDirectory.load(tmp_path)
    assert scripts.versions == [3, 7]
    assert scripts.get(7).path.name == "0001_late.py"


def test_files_not_named_like_migrations_are_ignored(tmp_path):
    write(tmp_path, "0002_ok.py", migration_source())
    write(tmp_path, "helpers.py", "raise RuntimeError('must not be imported')\n")
    write(tmp_path, "__init__.py", "raise RuntimeError('must not be imported')\n")
    write(tmp_path, "0003_notes.txt", "not python")
    assert ScriptDirectory.load(tmp_path).versions == [2]


def test_an_empty_folder_has_the_initial_version_as_head(tmp_path):
    scripts = ScriptDirectory.load(tmp_path)
    assert scripts.versions == []
    assert scripts.head == 1


def test_a_missing_folder_is_refused(tmp_path):
    error = refusal(tmp_path / "nowhere")
    assert "nowhere" in str(error)


def test_checksum_changes_when_the_file_changes(tmp_path):
    path = write(tmp_path, "0002_ok.py", migration_source())
    before = ScriptDirectory.load(tmp_path).get(2).checksum
    path.write_text(path.read_text() + "# an edit\n")
    after = ScriptDirectory.load(tmp_path).get(2).checksum
    assert before != after
    assert after == hashlib.sha256(path.read_bytes()).hexdigest()



HELPED = """\
import docshift
from _helpers import rename

def up(doc):
    return rename(doc, "email", "email_address")

def down(doc):
    return rename(doc, "email_address", "email")

migration = docshift.Migration(version=2, description="rename", collection="users", kind="transformative", up=up,
                               down=down)
"""


def helper_source(suffix: str = "") -> str:
    return f"def rename(doc, old, new):\n    doc[new + {suffix!r}] = doc.pop(old)\n    return doc\n"


def test_a_helper_module_of_the_folder_is_imported_afresh_and_covered_by_the_importing_migrations_checksum(tmp_path):
    helper = write(tmp_path, "_helpers.py", helper_source())
    helped = write(tmp_path, "0002_rename.py", HELPED)
    alone = write(tmp_path, "0003_alone.py", migration_source(version="3"))
    first = ScriptDirectory.load(tmp_path)

    assert first.get(2).helpers == ("_helpers.py",) and first.get(3).helpers == ()
    assert first.get(2).migration.up({"_id": 1, "email": "a@b"}) == {"_id": 1, "email_address": "a@b"}
    assert first.get(2).checksum != first.get(2).file_checksum == hashlib.sha256(helped.read_bytes()).hexdigest()
    assert first.get(3).checksum == hashlib.sha256(alone.read_bytes()).hexdigest()  # as recorded before helpers counted
    assert "_helpers" not in sys.modules and str(tmp_path) not in sys.path

    helper.write_text(helper_source("_v2"))
    edited = ScriptDirectory.load(tmp_path)

    assert edited.get(2).migration.up({"_id": 1, "email": "a@b"}) == {"_id": 1, "email_address_v2": "a@b"}
    assert edited.get(2).checksum != first.get(2).checksum and edited.get(2).file_checksum == first.get(2).file_checksum
    assert edited.get(3).checksum == first.get(3).checksum
    assert not edited.get(2).matches(first.get(2).checksum) and edited.get(2).matches(edited.get(2).checksum)
    assert edited.get(2).matches(edited.get(2).file_checksum)  # recorded by a docshift that did not count helpers


# --- refusals: each names the file ----------------------------------------------------------------------------


def test_syntax_error_names_the_file_and_line(tmp_path):
    write(tmp_path, "0002_ok.py", migration_source())
    bad = write(tmp_path, "0003_broken.py", "import docshift\n\ndef up(doc:\n    return doc\n")
    error = refusal(tmp_path)
    assert error.path == bad
    assert "0003_broken.py" in str(error)
    assert "syntax error at line 3" in str(error)


def test_module_raising_at_import_names_the_file_and_the_exception(tmp_path):
    write(tmp_path, "0002_boom.py", "raise RuntimeError('kaboom at import')\n")
    error = refusal(tmp_path)
    assert "0002_boom.py" in str(error)
    assert "RuntimeError" in str(error) and "kaboom at import" in str(error)


def test_module_importing_a_missing_module_names_the_file(tmp_path):
    write(tmp_path, "0002_needs.py", "import docshift_no_such_module_xyz\n" + migration_source())
    error = refusal(tmp_path)
    assert "0002_needs.py" in str(error)
    assert "ModuleNotFoundError" in str(error) and "docshift_no_such_module_xyz" in str(error)


def test_file_without_migration_object_is_refused(tmp_path):
    write(tmp_path, "0002_empty.py", HEADER)
    error = refusal(tmp_path)
    assert "0002_empty.py" in str(error)
    assert "no module-level `migration" in str(error)


@pytest.mark.parametrize("value, type_name", [("{'version': 2}", "dict"), ("'0002'", "str"), ("up", "function")])
def test_migration_of_the_wrong_type_is_refused(tmp_path, value, type_name):
    write(tmp_path, "0002_wrong.py", HEADER + f"migration = {value}\n")
    error = refusal(tmp_path)
    assert "0002_wrong.py" in str(error)
    assert f"`migration` is a {type_name}, not a docshift.Migration" in str(error)


def test_duplicate_versions_name_both_files(tmp_path):
    write(tmp_path, "0002_first.py", migration_source(version="2"))
    write(tmp_path, "0003_second.py", migration_source(version="2"))
    error = refusal(tmp_path)
    assert "0003_second.py" in str(error) and "0002_first.py" in str(error)
    assert "duplicate version 2" in str(error)


@pytest.mark.parametrize("version", ["'3'", "3.0", "True", "None"])
def test_non_integer_version_is_refused(tmp_path, version):
    write(tmp_path, "0003_typed.py", migration_source(version=version))
    error = refusal(tmp_path)
    assert "0003_typed.py" in str(error)
    assert "invalid migration" in str(error) and "version" in str(error)


@pytest.mark.parametrize("version", ["1", "0", "-4"])
def test_version_below_two_is_refused(tmp_path, version):
    write(tmp_path, "0001_initial.py", migration_source(version=version))
    error = refusal(tmp_path)
    assert "0001_initial.py" in str(error)
    assert "version" in str(error) and "greater than or equal to 2" in str(error)


@pytest.mark.parametrize("missing", ["up", "down"])
def test_missing_up_or_down_is_refused(tmp_path, missing):
    write(tmp_path, "0002_half.py", migration_source(**{missing: None}))
    error = refusal(tmp_path)
    assert "0002_half.py" in str(error)
    assert f"{missing}: Field required" in str(error)


@pytest.mark.parametrize("field, value", [
    ("up", "lambda: {}"),                      # takes no document
    ("up", "lambda doc, pre: doc"),            # up takes only the document
    ("down", "lambda doc, pre, extra: doc"),   # down takes at most the document and the pre-image
    ("kind", "'sideways'"),
    ("collection", "'$bad'"),
    ("description", "''"),
])
def test_other_invalid_definitions_are_refused(tmp_path, field, value):
    write(tmp_path, "0002_odd.py", migration_source(**{field: value}))
    error = refusal(tmp_path)
    assert "0002_odd.py" in str(error)
    assert f"invalid migration: {field}" in str(error)


def test_refusal_of_a_later_file_does_not_depend_on_earlier_ones(tmp_path):
    write(tmp_path, "0002_ok.py", migration_source(version="2"))
    write(tmp_path, "0003_ok.py", migration_source(version="3"))
    write(tmp_path, "0004_bad.py", "this is not python\n")
    error = refusal(tmp_path)
    assert "0004_bad.py" in str(error) and "0002_ok.py" not in str(error)


# --- targets and predecessors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [1, 2, 3, 4, 5])
def test_check_target_accepts_known_versions(seed_scripts, target):
    assert seed_scripts.check_target(target) == target


@pytest.mark.parametrize("target", [0, -1, -5, 6, 100, "3", 3.0, True, None])
def test_check_target_refuses_unknown_negative_and_non_integer(seed_scripts, target):
    with pytest.raises(TargetError) as info:
        seed_scripts.check_target(target)
    assert repr(target) in str(info.value)
    assert "known versions: 1, 2, 3, 4, 5" in str(info.value)


@pytest.fixture
def interleaved(tmp_path) -> ScriptDirectory:
    """users: 2, 4, 6; orders: 3, 5."""
    for version, collection in [(2, "users"), (3, "orders"), (4, "users"), (5, "orders"), (6, "users")]:
        write(tmp_path, f"{version:04d}_{collection}.py", migration_source(version=str(version), collection=collection))
    return ScriptDirectory.load(tmp_path)


def test_collection_predecessor_stays_within_the_collection(interleaved):
    assert {v: interleaved.collection_predecessor(v) for v in interleaved.versions} == {2: 1, 3: 1, 4: 2, 5: 3, 6: 4}


def test_global_predecessor_is_the_previous_migration_of_any_collection(interleaved):
    assert {v: interleaved.global_predecessor(v) for v in interleaved.versions} == {2: 1, 3: 2, 4: 3, 5: 4, 6: 5}
    assert interleaved.head == 6


def test_predecessors_of_the_seed_migrations(seed_scripts):
    assert [seed_scripts.collection_predecessor(v) for v in seed_scripts.versions] == [1, 2, 3, 4]
    assert [seed_scripts.global_predecessor(v) for v in seed_scripts.versions] == [1, 2, 3, 4]

def same(doc):
    return doc


def scripts_of(*migrations) -> ScriptDirectory:
    return ScriptDirectory([Script(m, Path(f"{m.version:04d}.py"), "") for m in migrations], Path("."))


def test_document_migrations_follow_renames_and_copies_start_at_version_1():
    scripts = scripts_of(
        docshift.Migration(version=2, description="d", collection="products", kind="additive", up=same, down=same),
        docshift.Migration(version=3, description="d", collection="products", kind="additive",
                           operation=docshift.CreateIndex(keys=[("sku", 1)])),
        docshift.Migration(version=4, description="d", collection="products", kind="transformative",
                           operation=docshift.RenameCollection(to="catalog")),
        docshift.Migration(version=5, description="d", collection="catalog", kind="additive", up=same, down=same),
        docshift.Migration(version=6, description="d", collection="catalog", kind="additive",
                           operation=docshift.CopyDocuments(to="prices")),
        docshift.Migration(version=7, description="d", collection="prices", kind="additive", up=same, down=same))
    assert scripts.collection_predecessor(5) == 2  # through the rename, past the index
    assert scripts.collection_predecessor(7) == 1  # the copies start at the initial schema
    assert make_step(scripts, 4, "up").operation == "RenameCollection" and make_step(scripts, 4, "up").selector == {}
    assert scripts.document_versions("catalog") == [5]
