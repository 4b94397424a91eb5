"""Generated documents of mixed versions and types, and a Profiler fed with them (tests/unit/test_profile.py; also
run in a process of its own to measure its peak memory)."""

from pydantic import BaseModel

from docshift.profile import Profiler


class Person(BaseModel):
    name: str
    age: int


def generated(n: int):
    """`n` documents of mixed versions and types, made one at a time (never a list)."""
    for i in range(n):
        doc = {"_id": i, "name": f"user {i}", "age": i % 90 if i % 3 else f"{i % 90} years", "api_token": f"tok-{i}",
               "address": {"city": ("Oslo", "Lima", None)[i % 3], "zip": i % 1000}, "tags": ["a", i % 7][: i % 3]}
        if i % 4:
            doc["schema_version"] = 1 + i % 4
        if i % 5 == 0:
            del doc["name"]
        yield doc


def fed(n: int) -> Profiler:
    profiler = Profiler("people", Person, 2)
    for doc in generated(n):
        profiler.add(doc)
    return profiler
