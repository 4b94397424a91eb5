"""An exact `docshift inspect` of a generated collection of mixed documents: how long it takes, where the time goes.

    .venv/bin/python -m benchmarks.inspect URI [N] [--profile]     (scratch database `bench_inspect` on that server)
    .venv/bin/python -m benchmarks.inspect memory [N]              (no server: the profiler's own CPU per document)

Seeds N documents (100,000) of mixed versions and types (the ones tests/integration/test_inspect.py checks), unless
the database holds them already (`--reseed`: anyway), then times `profile_collection(..., sample=0)` with the migration's target_model
(seconds, documents per second, client and server CPU per document: the server's when URI is the embedded server of
FERRETDB_PID); `--profile` prints cProfile's top functions instead. `memory` feeds the generated documents straight
to the Profiler, without and with the target_model: the per-document Python cost that bounds an exact inspect of
10 million documents on a fast server.
"""

import cProfile
import os
import pstats
import random
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from bson import ObjectId

from docshift.context import RunContext
from docshift.profile import Profiler
from docshift.sampling import profile_collection
from docshift.settings import Settings

DATABASE = "bench_inspect"
SEED_BATCH = 10_000
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
"""The migration whose target_model the documents are validated against (`0002_people.py`, after `import docshift`)."""


def person(i: int, rng: random.Random) -> dict:
    """Mixed versions and types: ages as numbers, text or booleans, names missing or null, nested documents, arrays
    of mixed elements (arrays inside arrays: FerretDB 1.24 refuses them)."""
    doc = {"_id": ObjectId(), "name": rng.choice([f"user {i}", None, "Ada"]),
           "age": rng.choice([rng.randrange(90), f"{rng.randrange(90)}", rng.random() * 90, True]),
           "password": f"hunter{i}", "tags": rng.sample(["a", "b", 7, 2.5, None], rng.randrange(4))}
    if rng.random() < 0.8:
        doc["address"] = {"city": rng.choice(["Oslo", "Lima", None, 12]), "geo": {"lat": rng.random()},
                          "phones": [{"kind": "home", "number": i}][:rng.randrange(2)]} if rng.random() < 0.9 else "n/a"
    if rng.random() < 0.1:
        del doc["name"]
    if (version := rng.choice([None, 1, 2, 2])) is not None:
        doc["schema_version"] = version
    return doc


def seed(collection, n: int, batches: Callable[[list[dict]], None] | None = None) -> None:
    """`n` generated documents, inserted in batches of SEED_BATCH (one insert command each); `batches` sees each
    batch (a test counts them itself), none is kept."""
    rng = random.Random(24)
    for start in range(0, n, SEED_BATCH):
        docs = [person(i, rng) for i in range(start, min(n, start + SEED_BATCH))]
        collection.insert_many(docs, ordered=False)
        if batches is not None:
            batches(docs)


def migrations(folder: Path) -> Path:
    (folder / "0002_people.py").write_text("import docshift\n\n" + textwrap.dedent(PERSON))
    return folder


def in_memory(n: int) -> None:
    rng = random.Random(24)
    docs = [person(i, rng) for i in range(n)]
    namespace: dict = {}
    exec(textwrap.dedent(PERSON).split("migration =")[0], namespace)
    for label, model in (("walk only", None), ("walk + validation", namespace["Person"])):
        profiler = Profiler("people", model, 2)
        cpu = time.process_time()
        for doc in docs:
            profiler.add(doc)
        print(f"{label}: {(time.process_time() - cpu) / n * 1e6:.1f} µs/doc of client CPU ({n:,} documents)")


def server_cpu() -> float:
    """CPU seconds of the embedded server named by FERRETDB_PID (0 without it)."""
    if not (pid := os.environ.get("FERRETDB_PID")):
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> None:
    uri, n = argv[0], int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 100_000
    if uri == "memory":
        return in_memory(n)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(mongodb_uri=uri, database=DATABASE, migrations_dir=migrations(Path(tmp)))
        ctx = RunContext.open(settings)
        if "--reseed" in argv or ctx.db.people.count_documents({}) != n:
            ctx.db.people.drop()
            started, server = time.perf_counter(), server_cpu()
            seed(ctx.db.people, n)
            print(f"seeded {n:,} documents in {time.perf_counter() - started:.1f} s (server CPU {server_cpu() - server:.1f} s)")
        cpu, wall, server = time.process_time(), time.perf_counter(), server_cpu()
        if "--profile" in argv:
            profiler = cProfile.Profile()
            profile = profiler.runcall(profile_collection, ctx, "people", 0)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        else:
            profile = profile_collection(ctx, "people", 0)
        cpu, wall, server = time.process_time() - cpu, time.perf_counter() - wall, server_cpu() - server
    print(f"exact inspect of {profile.documents:,} documents: {wall:.1f} s ({profile.documents / wall:,.0f} docs/s), "
          f"client CPU {cpu / profile.documents * 1e6:.0f} µs/doc, server CPU {server / profile.documents * 1e6:.0f} "
          f"µs/doc; {profile.validation.failing:,} failing")


if __name__ == "__main__":
    main(sys.argv[1:])
