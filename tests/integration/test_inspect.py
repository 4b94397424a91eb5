"""`docshift inspect` and the `inspect` flow on the real server: exact counts equal the server's own counts, a sample
stays within the bound it states, secrets are never shown, the text fits 80 columns, the flow publishes artifacts."""

import json
import random
from collections import Counter

from bson import ObjectId

from docshift.context import RunContext
from docshift.sampling import RESERVOIR, profile_collection
from docshift.settings import get_settings
from tests.support.env import only_migrations
from tests.support.prefect_api import api_post

N = 5000
TYPES = {"string": str, "int": int, "double": float, "bool": bool, "null": type(None), "object": dict, "array": list}
PERSON = """\
    from pydantic import BaseModel, ConfigDict

    class Person(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str
        age: int
        address: dict

    migration = docshift.Migration(version=2, description="People", collection="people", kind="additive",
                                   update={"$set": {"checked": True}}, target_model=Person)
    """


def person(i: int, rng: random.Random) -> dict:
    """Mixed versions and types: ages as numbers or text, names missing or null, nested documents, arrays."""
    doc = {"_id": ObjectId(), "name": rng.choice([f"user {i}", None, "Ada"]),
           "age": rng.choice([rng.randrange(90), f"{rng.randrange(90)}", rng.random() * 90, True]),
           "password": f"hunter{i}", "tags": rng.sample(["a", "b", 7, 2.5, None], rng.randrange(4))}
    if rng.random() < 0.8:
        doc["address"] = {"city": rng.choice(["Oslo", "Lima", None, 12]), "geo": {"lat": rng.random()}} if rng.random() < 0.9 else "n/a"
    if rng.random() < 0.1:
        del doc["name"]
    if (version := rng.choice([None, 1, 2, 2])) is not None:
        doc["schema_version"] = version
    return doc


def seed(env) -> None:
    only_migrations(env, **{"0002_people": PERSON})
    rng = random.Random(24)
    env.db.people.insert_many([person(i, rng) for i in range(N)])


def type_counts(docs, path: str) -> Counter:
    """The values at `path` by type, computed directly in Python (arrays: their elements, `path` ends in [])."""
    counts: Counter = Counter()
    for doc in docs:
        value, found = doc, True
        for part in path.removesuffix("[]").split("."):
            if not isinstance(value, dict) or part not in value:
                found = False
                break
            value = value[part]
        if found:
            for item in (value if path.endswith("[]") else [value]):
                counts[next(name for name, kind in reversed(TYPES.items()) if isinstance(item, kind))] += 1
    return counts


def test_exact_counts_equal_the_servers_and_a_direct_computation(env):
    seed(env)
    result = env.cli("inspect", "people", "--sample", "0", "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    fields = {f["path"]: f for f in profile["fields"]}
    people = env.db.people

    assert profile["exact"] and profile["documents"] == N
    assert profile["versions"] == {"none": people.count_documents({"schema_version": {"$exists": False}}),
                                   "1": people.count_documents({"schema_version": 1}),
                                   "2": people.count_documents({"schema_version": 2})}
    assert fields["tags"]["documents"] == N and fields["tags[]"]["documents"] == people.count_documents({"tags.0": {"$exists": True}})
    for path in ("name", "age", "address", "address.city", "address.geo.lat", "password"):
        assert fields[path]["documents"] == people.count_documents({path: {"$exists": True}}), path
        assert fields[path]["nulls"] == people.count_documents({path: {"$type": "null"}}), path
        expected = {kind: people.count_documents({path: {"$type": kind}}) for kind in ("string", "int", "double", "bool", "object")}
        assert {k: v for k, v in fields[path]["types"].items() if k != "null" and k != "array"} == \
            {k: v for k, v in expected.items() if v}, path
    docs = list(people.find())
    for path in ("age", "address.city", "tags[]", "tags"):
        assert fields[path]["types"] == dict(type_counts(docs, path)), path
    assert fields["password"]["examples"] == ["***"] and "hunter" not in result.stdout

    from pydantic import BaseModel, ConfigDict, ValidationError

    class Person(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str
        age: int
        address: dict

    failing = 0
    for doc in docs:
        try:
            Person.model_validate(doc)
        except ValidationError:
            failing += 1
    validation = profile["validation"]
    assert validation["model"] == "Person" and validation["version"] == 2 and validation["failing"] == failing
    groups = {(g["loc"], g["error"]): g["count"] for g in validation["groups"]}
    assert groups[("name", "missing")] == people.count_documents({"name": {"$exists": False}})
    assert groups[("name", "string_type")] == people.count_documents({"name": {"$type": "null"}})


def test_a_sample_stays_within_its_stated_bound(env):
    seed(env)
    exact = profile_collection(RunContext.open(get_settings()), "people", 0)
    sampled = profile_collection(RunContext.open(get_settings()), "people", 1000, seed=3)
    margin = float(sampled.bound.split("±")[1].split("%")[0]) / 100

    assert sampled.method == RESERVOIR and sampled.documents == 1000 and sampled.total == N and not sampled.exact
    for version, count in exact.versions.items():
        assert abs(sampled.versions.get(version, 0) / 1000 - count / N) <= margin, version
    exact_fields = {f.path: f for f in exact.fields}
    for field in sampled.fields:
        assert abs(field.documents / 1000 - exact_fields[field.path].documents / N) <= margin, field.path

    shown = env.cli("inspect", "people", "--sample", "200", extra={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    assert "a sample of 200 of 5,000 documents" in shown.stdout and "no $sample" in shown.stdout
    assert [line for line in shown.stdout.splitlines() if len(line) > 80] == [] and "hunter" not in shown.stdout
    assert "validated against Person, the target_model of migration 2" in shown.stdout


def test_the_flow_publishes_the_profile_as_artifacts(env, prefect_api):
    seed(env)
    from docshift.flows.inspect import inspect

    profile = inspect(collection="people", sample=0)

    assert profile.documents == N
    api = prefect_api["PREFECT_API_URL"]
    [fields] = [a for a in api_post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["inspect-people-fields"]}}})
                if json.loads(a["data"]) and {r["field"] for r in json.loads(a["data"])} >= {"age", "tags[]"}][-1:]
    rows = {r["field"]: r for r in json.loads(fields["data"])}
    assert rows["password"]["examples"] == "***"


def test_a_missing_collection_is_one_plain_error(env):
    seed(env)
    result = env.cli("inspect", "peeple")
    assert result.returncode == 1 and result.stderr.strip().endswith("has no collection 'peeple'")
