"""Model changes: docshift.modeldiff finds each kind, `docshift new --from-model` drafts a migration for it that
loads, and, filled in where the draft says TODO, gives every document back (round trip); `docshift check` fails
before that migration exists and passes after."""

import re
import textwrap
from dataclasses import dataclass, field

import hypothesis
import pytest

from docshift.errors import DocshiftError
from docshift.loader import ScriptDirectory
from docshift.model_commands import ModelError, check, import_model, new_from_model
from docshift.modeldiff import compare_models
from docshift.testing import ROUND_TRIP_SETTINGS, documents_from_model, round_trip_test


@dataclass
class Case:
    """A target model of migration 2 (`Old`), the application's model (`New`), what differs, and the user's fill-in
    of the draft's TODOs (the text after `# TODO: ` on a line, replaced by code)."""

    old: str
    new: str
    kinds: list[tuple[str, str]]
    fill: dict[str, str] = field(default_factory=dict)
    strategies: dict = field(default_factory=dict)
    drafted: str = ""
    """Text the draft must contain."""


CASES = {
    "add_with_default": Case("name: str", "name: str\n    plan: str = 'free'", [("added", "plan")],
                             drafted="update={'$set': {'plan': 'free'}}"),
    "add_computed": Case("name: str", "name: str\n    seen: float = Field(default_factory=time.time)",
                         [("added", "seen")], fill={"the value of seen": "doc['seen'] = 0.0"},
                         drafted="seen: float = Field(default_factory=time)"),
    "remove": Case("name: str\n    legacy: str | None = None", "name: str", [("removed", "legacy")],
                   drafted="kind='destructive'"),
    "retype": Case("name: str\n    age: int", "name: str\n    age: str", [("retyped", "age")],
                   fill={"convert doc['age'] from int to str": "doc['age'] = str(doc['age'])"}),
    "rename": Case("email: str", "email_address: str", [("removed", "email"), ("added", "email_address")],
                   drafted="RENAME"),
    "nested_add": Case("address: Address\n\nclass Address(BaseModel):\n    city: str",
                       "address: Address\n\nclass Address(BaseModel):\n    city: str\n    zip: str = ''",
                       [("added", "address.zip")]),
    "enum_remap": Case("plan: Literal['free', 'pro'] = 'free'",  # the enum's default is the old one's value: not a change
                       "plan: Plan = Plan.free\n\nclass Plan(enum.Enum):\n    free = 'free'\n    premium = 'premium'",
                       [("retyped", "plan")],
                       fill={"convert doc['plan'] from Literal['free', 'pro'] to Plan":
                             "doc['plan'] = 'premium' if doc.get('plan') == 'pro' else doc.get('plan', 'free')"}),
    "optional_to_required": Case("nick: str | None = None", "nick: str", [("retyped", "nick"), ("required", "nick")],
                                 fill={"give doc['nick'] a value where it is missing or None":
                                       "doc['nick'] = doc.get('nick') or ''",
                                       "convert doc['nick'] from str | None to str": "pass"}),
    "default_changed": Case("plan: str = 'free'", "plan: str = 'pro'", [("default", "plan")]),
}
HEADER = ("import enum\nimport time\nfrom typing import ClassVar, Literal\n\nfrom pydantic import BaseModel, ConfigDict, Field\n\n"
          "import docshift\n\n")


def model_source(name: str, body: str, version_field: bool) -> str:
    """`class NAME(BaseModel)` with `body`'s fields; classes after a blank line in `body` come first."""
    fields, _, others = body.partition("\n\n")
    extra = '    model_config = ConfigDict(extra="allow")\n' + ("    schema_version: int\n" if version_field else "")
    return f"{others}\n\n\nclass {name}(BaseModel):\n{extra}    {fields}\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder (the working directory) with migration 2 of `users` whose target_model is a case's `Old`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCSHIFT_MIGRATIONS_DIR", str(tmp_path / "migrations"))
    (tmp_path / "migrations").mkdir()

    def make(case: Case, name: str):
        (tmp_path / "migrations" / "0002_base.py").write_text(
            HEADER + model_source("Old", case.old, True) + textwrap.dedent("""
            migration = docshift.Migration(version=2, description="Base", collection="users", kind="additive",
                                           up=lambda doc: doc, down=lambda doc: doc, target_model=Old)
            """))
        (tmp_path / f"app_{name}.py").write_text(HEADER + model_source("User", case.new, False))
        return f"app_{name}:User"
    return make


@pytest.mark.parametrize("name", CASES)
def test_each_change_is_found_drafted_and_round_trips(project, tmp_path, name, capsys):
    case = CASES[name]
    spec = project(case, name)
    old = ScriptDirectory.load(tmp_path / "migrations").get(2).migration.target_model

    assert [(c.kind, c.field) for c in compare_models(old, import_model(spec))] == case.kinds
    assert len(check([f"users={spec}"])) == len(case.kinds)

    [path] = new_from_model(f"App {name}", "users", spec)
    source = path.read_text()
    assert case.drafted in source and "# Decisions" in source
    for todo, code in case.fill.items():
        assert f"# TODO: {todo}" in source, source
        source = re.sub(rf"# TODO: {re.escape(todo)}.*", code, source)
    path.write_text(source)

    migration = ScriptDirectory.load(tmp_path / "migrations").get(3).migration
    documents = documents_from_model(old, version=2, **case.strategies)
    settings = hypothesis.settings(ROUND_TRIP_SETTINGS, max_examples=30, database=None)
    round_trip_test(migration, documents, settings=settings)()
    capsys.readouterr()
    assert check([f"users={spec}"]) == [], capsys.readouterr().out


def test_a_model_that_cannot_be_imported_is_one_plain_error(project):
    project(CASES["rename"], "x")
    with pytest.raises(ModelError, match=r"cannot import model app_nothing:User .*ModuleNotFoundError"):
        import_model("app_nothing:User")
    with pytest.raises(ModelError, match="expected module:Class"):
        import_model("app_x.User")
    with pytest.raises(ModelError, match="not a pydantic model class"):
        import_model("app_x:Literal")


def test_agreeing_models_draft_nothing(project, tmp_path):
    spec = project(Case("name: str", "name: str", []), "same")
    with pytest.raises(ModelError, match="nothing to draft"):
        new_from_model("Nothing", "users", spec)
    assert sorted(p.name for p in (tmp_path / "migrations").glob("*.py")) == ["0002_base.py"]


INDEXED = "email: str\n    __indexes__: ClassVar[list[docshift.Index]] = [{}]"
CREATE_LEGACY = ("import docshift\nmigration = docshift.Migration(version=3, description='Legacy index', collection="
                 "'users', operation=docshift.CreateIndex(keys=[('legacy', 1)]))\n")


@pytest.mark.parametrize("declared, migrations, found, drafted", [
    ("docshift.Index(keys=[('email', 1)], unique=True)", {},
     ["index email_1: added (unique index email_1 (email: 1))"],
     ["operation=docshift.CreateIndex(keys=[('email', 1)], unique=True)"]),
    ("", {"0003_legacy.py": CREATE_LEGACY},
     ["index legacy_1: removed (was index legacy_1 (legacy: 1), created by migration 3)"],
     ["operation=docshift.DropIndex(name='legacy_1')"]),
    ("docshift.Index(keys=[('legacy', 1)], unique=True)", {"0003_legacy.py": CREATE_LEGACY},
     ["index legacy_1: removed (was index legacy_1 (legacy: 1), created by migration 3)",
      "index legacy_1: added (unique index legacy_1 (legacy: 1))"],
     ["operation=docshift.DropIndex(name='legacy_1')", "operation=docshift.CreateIndex(keys=[('legacy', 1)], unique=True)"]),
], ids=["index_add", "index_drop", "index_redeclared"])
def test_an_index_change_is_checked_and_drafted_one_step_each(project, tmp_path, capsys, declared, migrations, found,
                                                               drafted):
    spec = project(Case("email: str", INDEXED.format(declared), []), "indexed")
    for name, source in migrations.items():
        (tmp_path / "migrations" / name).write_text(source)
    head = ScriptDirectory.load(tmp_path / "migrations").head

    assert check([f"users={spec}"]) == [f"users: {line} [{spec} against the indexes its migrations create]"
                                        for line in found]
    paths = new_from_model("Indexes", "users", spec)
    scripts = ScriptDirectory.load(tmp_path / "migrations")
    assert [p.name[:4] for p in paths] == [f"{v:04d}" for v in range(head + 1, head + 1 + len(drafted))]
    for path, text in zip(paths, drafted):
        source = path.read_text()
        assert text in source and "# Decisions" in source and "up=" not in source, source
        assert scripts.get(int(path.name[:4])).migration.operation is not None
    capsys.readouterr()
    assert check([f"users={spec}"]) == [], capsys.readouterr().out
    with pytest.raises(ModelError, match="nothing to draft"):
        new_from_model("Again", "users", spec)


def test_indexes_that_are_not_a_list_of_index_are_one_plain_error(project):
    spec = project(Case("email: str", "email: str\n    __indexes__: ClassVar[list] = [('email', 1)]", []), "bad")
    with pytest.raises(DocshiftError, match=r"__indexes__ must be a list of docshift.Index"):
        check([f"users={spec}"])


def test_the_documents_held_are_compared_by_their_bson_types():
    from pydantic import BaseModel

    from docshift.datadiff import accepted_types, compare_with_data
    from docshift.profile import Profiler

    class Address(BaseModel):
        city: str
        zip: str = ""

    class User(BaseModel):
        name: str
        age: float
        nick: str | None = None
        plan: str = "free"
        address: Address

    profiler = Profiler("users")
    for i in range(10):
        profiler.add({"_id": i, "name": f"u{i}", "age": i if i % 2 else float(i), "nick": None,
                      **({"plan": 1} if i == 3 else {}), "address": {"city": "Oslo"} if i else "Oslo", "old": 1})
    data = compare_with_data(User, profiler.profile("exact", exact=True))
    assert data.matching == ["name", "age", "nick", "address.city"]
    assert [(f.field, f.other, f.nulls, f.missing) for f in data.findings] == [("plan", 1, 0, 9), ("address", 1, 0, 0)]
    assert [(c.kind, c.field) for c in data.changes] == [("added", "address.zip")]
    assert data.extra == {"old": 10} and data.findings[0].counts() == "int 1; missing in 9 of 10 documents"
    assert accepted_types(int | None) == {"int", "long", "null"} and accepted_types(object) is None


def test_after_a_sample_an_added_default_never_overwrites():
    from pydantic import BaseModel

    from docshift.datadiff import compare_with_data
    from docshift.draft import Basis, draft_source
    from docshift.profile import Profiler

    class User(BaseModel):
        name: str
        level: str = "basic"

    profiler = Profiler("users")
    for i in range(5):
        profiler.add({"_id": i, "name": f"u{i}"})
    for exact, expected in [(True, "update={'$set': {'level': 'basic'}}"), (False, "doc.setdefault('level', 'basic')")]:
        data = compare_with_data(User, profiler.profile("exact" if exact else "a sample", exact=exact, total=50))
        source = draft_source(2, "Users", "users", User, Basis(None, [], data))
        assert expected in source and ("update=" in source) is exact, source


def test_an_arrays_elements_of_another_type_are_drafted_as_a_conversion():
    from pydantic import BaseModel

    from docshift.datadiff import compare_with_data, item_annotation
    from docshift.draft import Basis, draft_source
    from docshift.profile import Profiler

    class Address(BaseModel):
        phones: list[int] = []

    class User(BaseModel):
        scores: list[int]
        tags: list[str] | None = None
        address: Address

    profiler = Profiler("users")
    for i in range(10):
        profiler.add({"_id": i, "scores": [1, "2"] if i < 3 else [i], "tags": ["a", None] if i == 4 else ["b"],
                      "address": {"phones": [i, str(i)] if i == 5 else [i]}})
    data = compare_with_data(User, profiler.profile("exact", exact=True))
    assert data.matching == ["address"]
    assert [(f.field, [(e.path, e.other) for e in f.elements]) for f in data.findings] == [
        ("scores", [("scores[]", 3)]), ("tags", [("tags[]", 1)]), ("address.phones", [("address.phones[]", 1)])]
    assert data.findings[0].counts() == "array 10; missing in 0 of 10 documents; scores[]: int 10, string 3"
    source = draft_source(2, "Users", "users", User, Basis(None, [], data))
    assert ("# TODO: convert the elements of doc['scores'] to int where they hold another type (read: array 10; "
            "missing in 0 of 10 documents; scores[]: int 10, string 3)") in source, source
    assert "convert the elements of phones inside doc['address'] to int" in source and "kind='transformative'" in source
    assert item_annotation(tuple[int, ...]) is int and item_annotation(dict[str, int]) is None
