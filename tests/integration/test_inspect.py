"""`docshift inspect` and the `inspect` flow on the real server: exact counts of 100,000 mixed documents equal the
server's own aggregation and Python's count of the generated documents, a sample stays within the bound it states, secrets are never shown, the text fits 80 columns, the flow publishes artifacts."""

import json
from collections import Counter

import pytest

from pydantic import BaseModel, ConfigDict, ValidationError

from benchmarks.inspect import PERSON, seed as seed_people
from docshift.context import RunContext
from docshift.sampling import RESERVOIR, profile_collection
from docshift.settings import get_settings
from tests.support.env import only_migrations
from tests.support.prefect_api import api_post

N = 5000
TYPES = {"string": str, "int": int, "double": float, "bool": bool, "null": type(None), "object": dict, "array": list}


def seed(env) -> None:
    only_migrations(env, **{"0002_people": PERSON})
    seed_people(env.db.people, N)


def values_at(doc: dict, path: str) -> list | None:
    """The values at `path` in `doc`, computed directly in Python (arrays: their elements, `path` ends in []); None
    when the document lacks the path."""
    value = doc
    for part in path.removesuffix("[]").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if path.endswith("[]") else [value]


def type_name(value) -> str:
    return next(name for name, kind in reversed(TYPES.items()) if isinstance(value, kind))


class Person(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    age: int
    address: dict


TYPED = ("name", "age", "address", "address.city", "address.geo.lat", "address.phones", "password", "tags")
"""The paths whose types one aggregation on the server counts ($type of each, grouped together)."""
ELEMENTS = ("tags", "address.phones")


class Expected:
    """Python's own count of generated documents, batch by batch (no batch kept): per path its type counts and the
    documents that hold it, per version the documents, and those the target_model refuses."""

    def __init__(self):
        self.types = {path: Counter() for path in (*TYPED, *(p + "[]" for p in ELEMENTS))}
        self.documents, self.versions, self.failing = Counter(), Counter(), 0

    def add(self, docs: list[dict]) -> None:
        for doc in docs:
            for path, counts in self.types.items():
                if held := values_at(doc, path):
                    counts.update(map(type_name, held))
                    self.documents[path] += 1
            self.versions[str(doc.get("schema_version", "none"))] += 1
            try:
                Person.model_validate(doc)
            except ValidationError:
                self.failing += 1


def server_counts(people) -> tuple[dict[str, Counter], Counter]:
    """Per path its values by type ("missing": documents without it) and per version the documents, from one
    aggregation on the server ($type of each path, grouped). Array elements are counted by Python only: each
    `$unwind` is one more scan of the collection (20 s of the embedded server's CPU at 100,000), and FerretDB 1.24's
    `$unwind` of a dotted path (`address.phones`) leaves `$address.phones` missing where MongoDB gives the element."""
    types = {path: Counter() for path in TYPED}
    versions: Counter = Counter()
    key = {path.replace(".", "_"): {"$type": "$" + path} for path in TYPED}
    for group in people.aggregate([{"$group": {"_id": {"v": "$schema_version", **key}, "n": {"$sum": 1}}}]):
        versions[str(group["_id"].get("v", "none"))] += group["n"]
        for path in TYPED:
            types[path][group["_id"][path.replace(".", "_")]] += group["n"]
    return types, versions


@pytest.mark.slow
def test_exact_counts_of_100000_documents_equal_a_server_aggregation_and_pythons_count(env):
    only_migrations(env, **{"0002_people": PERSON})
    expected = Expected()
    seed_people(env.db.people, 100_000, batches=expected.add)

    result = env.cli("inspect", "people", "--sample", "0", "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)
    fields = {f["path"]: f for f in profile["fields"]}
    server_types, server_versions = server_counts(env.db.people)

    assert profile["exact"] and profile["documents"] == 100_000
    assert profile["versions"] == dict(server_versions) == dict(expected.versions)
    for path in TYPED:
        on_server = {kind: n for kind, n in server_types[path].items() if kind != "missing"}
        assert fields[path]["types"] == on_server == dict(expected.types[path]), path
        assert fields[path]["documents"] == 100_000 - server_types[path]["missing"] == expected.documents[path], path
        assert fields[path]["nulls"] == server_types[path]["null"], path
    for path in ELEMENTS:
        assert fields[path + "[]"]["types"] == dict(expected.types[path + "[]"]), path
        assert fields[path + "[]"]["documents"] == expected.documents[path + "[]"], path
    assert fields["password"]["examples"] == ["***"] and "hunter" not in result.stdout
    validation = profile["validation"]
    assert validation["model"] == "Person" and validation["version"] == 2 and validation["failing"] == expected.failing
    groups = {(g["loc"], g["error"]): g["count"] for g in validation["groups"]}
    assert groups[("name", "missing")] == server_types["name"]["missing"]
    assert groups[("name", "string_type")] == server_types["name"]["null"]


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
