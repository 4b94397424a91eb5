"""The issue's ten model changes one after another, as a team makes them: for each, `docshift check` fails, `docshift
new --from-model` drafts its migration, the user fills in the draft's TODOs, and check passes; then the ten drafts
plan together on the real server, migrate up, and migrate back down to every document exactly as it was."""

import re

from docshift.ledger import Ledger
from docshift.testing import as_bson
from tests.support.env import only_migrations

START = {"name": "str", "email": "str", "age": "int", "legacy": "str | None = None", "nick": "str | None = None",
         "plan": "Literal['free', 'pro'] = 'free'", "address": "Address"}
ADDRESS = {"city": "str"}
PLAN = "class Plan(enum.Enum):\n    free = 'free'\n    premium = 'premium'\n"


def step(fields: dict, address: dict | None = None, indexes: str = "", fill: dict | None = None) -> tuple:
    return fields, address or ADDRESS, indexes, fill or {}


STEPS = {
    "add with default": step({**START, "level": "str = 'basic'"}),
    "add computed": step({**START, "level": "str = 'basic'", "seen": "float = Field(default_factory=time.time)"},
                         fill={"the value of seen": "doc['seen'] = 0.0"}),
}
FIELDS = dict(STEPS["add computed"][0])
del FIELDS["legacy"]
STEPS["remove"] = step(dict(FIELDS))
FIELDS["age"] = "str"
STEPS["retype"] = step(dict(FIELDS), fill={"convert doc['age'] from int to str": "doc['age'] = str(doc['age'])"})
FIELDS = {("email_address" if k == "email" else k): v for k, v in FIELDS.items()}
STEPS["rename"] = step(dict(FIELDS))
NESTED = {"city": "str", "zip": "str = ''"}
STEPS["nested add"] = step(dict(FIELDS), NESTED)
STEPS["index add"] = step(dict(FIELDS), NESTED, "docshift.Index(keys=[('name', 1)], unique=True)")
STEPS["index drop"] = step(dict(FIELDS), NESTED)
FIELDS["plan"] = "Plan = Plan.free"
STEPS["enum remap"] = step(dict(FIELDS), NESTED, fill={
    "convert doc['plan'] from Literal['free', 'pro'] to Plan": "doc['plan'] = 'premium' if doc.get('plan') == 'pro' "
                                                               "else doc.get('plan', 'free')"})
FIELDS["nick"] = "str"
STEPS["optional to required"] = step(dict(FIELDS), NESTED, fill={
    "give doc['nick'] a value where it is missing or None": "doc['nick'] = doc.get('nick') or ''",
    "convert doc['nick'] from str | None to str": "pass"})


def app_source(fields: dict, address: dict, indexes: str) -> str:
    lines = "\n".join(f"    {name}: {annotation}" for name, annotation in fields.items())
    nested = "\n".join(f"    {name}: {annotation}" for name, annotation in address.items())
    return (f"import enum\nimport time\nfrom typing import ClassVar, Literal\n\nfrom pydantic import BaseModel, Field\n\n"
            f"import docshift\n\n\n{PLAN}\n\nclass Address(BaseModel):\n{nested}\n\n\nclass Person(BaseModel):\n"
            f"{lines}\n    __indexes__: ClassVar[list[docshift.Index]] = [{indexes}]\n")


def test_the_ten_model_changes_are_checked_drafted_planned_and_round_trip(env, tmp_path, monkeypatch):
    start = "\n".join(f"    {name}: {annotation}" for name, annotation in START.items())
    only_migrations(env, **{"0002_people": f"""\
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Address(BaseModel):
    city: str


class PersonV2(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
{start}


migration = docshift.Migration(version=2, description="People", collection="people", kind="additive",
                               update={{"$set": {{"legacy": None}}}}, target_model=PersonV2)
"""})
    env.db.people.insert_many([{"name": f"p{i}", "email": f"p{i}@example.com", "age": i, "schema_version": 2,
                                **({"legacy": "x"} if i % 2 else {}), **({"nick": f"n{i}"} if i % 3 else {}),
                                **({"plan": "pro"} if i % 4 else {}), "address": {"city": "Oslo"}}
                               for i in range(40)])
    Ledger(env.db).set_current(2)
    before = {doc["_id"]: as_bson(doc) for doc in env.db.people.find()}
    monkeypatch.chdir(tmp_path)

    for number, (name, (fields, address, indexes, fill)) in enumerate(STEPS.items(), start=1):
        spec = f"app_step{number}:Person"  # a module per step: a rewritten module could be read from its stale .pyc
        (tmp_path / f"app_step{number}.py").write_text(app_source(fields, address, indexes))
        failed = env.cli("check", "--model", f"people={spec}")
        assert failed.returncode == 1 and failed.stdout, (name, failed.stdout, failed.stderr)
        drafted = env.cli("new", name, "--collection", "people", "--from-model", spec)
        assert drafted.returncode == 0, (name, drafted.stderr)
        [path] = env.migrations.glob(f"{number + 2:04d}_*.py")
        source = path.read_text()
        for todo, code in fill.items():
            assert f"# TODO: {todo}" in source, (name, source)
            source = re.sub(rf"# TODO: {re.escape(todo)}.*", code, source)
        assert "# TODO" not in source.split("# Decisions")[1], (name, source)
        path.write_text(source)
        passed = env.cli("check", "--model", f"people={spec}")
        assert passed.returncode == 0, (name, passed.stdout)

    plan = env.cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert "create unique index name_1 (name: 1) on people" in plan.stdout and "drop index name_1" in plan.stdout
    up = env.cli("migrate")
    assert up.returncode == 0, up.stderr
    assert env.db.people.count_documents({"schema_version": 12, "email_address": {"$exists": True},
                                          "nick": {"$type": "string"}, "address.zip": ""}) == 40
    assert env.db.people.count_documents({"plan": "premium"}) == 30
    down = env.cli("migrate", "2")
    assert down.returncode == 0, down.stderr
    assert {doc["_id"]: as_bson(doc) for doc in env.db.people.find()} == before
