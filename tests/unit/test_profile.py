"""docshift.profile: what a Profiler counts, that it redacts secrets, and that its state does not grow with the
number of documents it is fed."""

import pickle
import subprocess
import sys

from bson import Int64, ObjectId

from docshift.profile import DISTINCT_LIMIT, REDACTED, Profiler, bson_type
from tests.support.paths import ROOT
from tests.support.profiles import fed, generated


def test_counts_types_missing_nulls_arrays_and_nested_paths():
    profile = fed(60).profile("test", exact=True)
    by_path = {f.path: f for f in profile.fields}

    assert profile.documents == 60 and profile.versions == {"none": 15, "2": 15, "3": 15, "4": 15}
    assert by_path["age"].types == {"int": 40, "string": 20} and by_path["age"].share("string") == 1 / 3
    assert by_path["name"].missing(60) == 12 and by_path["name"].distinct is None  # 48 names: more than the limit
    assert by_path["address.city"].nulls == 20 and by_path["address.city"].distinct == 3
    assert by_path["address"].types == {"object": 60} and by_path["address"].distinct is None
    assert by_path["tags"].types == {"array": 60}
    assert by_path["tags[]"].types == {"string": 40, "int": 20} and by_path["tags[]"].documents == 40
    assert by_path["api_token"].examples == [REDACTED] and by_path["api_token"].redacted
    assert "tok-" not in profile.model_dump_json()
    assert len(by_path["age"].examples) == 3


def test_validation_groups_by_field_and_error_type():
    validation = fed(60).profile("test", exact=True).validation
    groups = {(g.loc, g.error): g for g in validation.groups}

    assert validation.checked == 60 and validation.failing == 28  # 20 with a string age (4 of them nameless too), 8 more nameless
    assert groups[("age", "int_parsing")].count == 20 and groups[("name", "missing")].count == 12
    assert groups[("name", "missing")].example_ids == ["0", "5", "10", "15", "20"]
    assert validation.failing_at_version == sum(1 for d in generated(60) if d.get("schema_version") == 2
                                                and ("name" not in d or isinstance(d["age"], str)))


def test_bson_types_are_mongodbs_names():
    assert [bson_type(v) for v in (1, 2**40, Int64(1), 1.0, True, None, "x", {}, [], ObjectId())] == [
        "int", "long", "long", "double", "bool", "null", "string", "object", "array", "objectId"]


def test_distinct_values_are_told_apart_as_bson_stores_them():
    profiler = Profiler("c")
    for value in (1, 1.0, True, 0.0, -0.0, float("nan"), float("nan"), Int64(1), 2**40, Int64(2**40), "1", "1", None):
        profiler.add({"v": value})
    [field] = profiler.profile("t", True).fields
    assert field.distinct == 10 and field.types == {"double": 5, "long": 3, "string": 2, "int": 1, "bool": 1, "null": 1}
    assert field.examples == ["1", "1.0", "True"]


def test_distinct_values_are_capped():
    profiler = Profiler("c")
    for i in range(DISTINCT_LIMIT):
        profiler.add({"n": i})
    assert profiler.profile("t", True).fields[0].distinct == DISTINCT_LIMIT
    profiler.add({"n": "another"})
    assert profiler.profile("t", True).fields[0].distinct is None


def test_state_does_not_grow_with_the_number_of_documents():
    """The profiler's whole state (counters, examples, distinct sets, failure examples) is the same size after
    100,000 documents as after 10,000, and so is the memory it allocates while counting them."""
    small, large = fed(10_000), fed(100_000)
    assert len(pickle.dumps(large)) <= len(pickle.dumps(small)) + 200  # counters gain digits, nothing more
    assert large.count == 100_000

    def peak(n: int) -> int:
        """Peak memory traced while feeding `n` documents, in a process of its own: in this one, other threads (a
        flow run's log and event workers, left by earlier tests) allocate meanwhile and count too."""
        code = ("import tracemalloc; from tests.support.profiles import fed; tracemalloc.start(); "
                f"fed({n}); print(tracemalloc.get_traced_memory()[1])")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert peak(100_000) < 1.2 * peak(10_000)


def test_a_server_with_sample_is_sampled_by_it(tmp_path):
    """Where the server has `$sample` (MongoDB; mongomock here), a sample is drawn by it, and the total is not
    counted (FerretDB's reservoir path is tests/integration/test_inspect.py's)."""
    import mongomock

    from docshift.context import RunContext
    from docshift.loader import ScriptDirectory
    from docshift.sampling import SAMPLE_STAGE, profile_collection
    from docshift.settings import Settings

    db = mongomock.MongoClient().db
    db.people.insert_many(list(generated(2000)))
    ctx = RunContext(Settings(_env_file=None), ScriptDirectory([], tmp_path), db)

    profile = profile_collection(ctx, "people", 300)

    assert (profile.method, profile.documents, profile.total, profile.exact) == (SAMPLE_STAGE, 300, None, False)
    assert profile.bound == "shares within ±5.7% of the collection's (95%)"
    assert len({f.path for f in profile.fields} - {"_id", "schema_version"}) == 8
