"""Reading a collection for its profile (docshift.profile): all of it in `_id` order, or a uniform sample.

A sample uses the server's `$sample` stage where it has one (MongoDB); where it has none (FerretDB 1.24 refuses the
stage) a reservoir sample over one scan of the collection: as uniform, but as long as an exact profile's read.
Memory: an exact profile holds one batch of documents, a sample its `N` documents, whatever the collection's size.
"""

import math
import random

from pydantic import BaseModel
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from .context import RunContext
from .errors import DocshiftError, TargetError
from .modeldiff import latest_target
from .profile import Profile, Profiler

BATCH = 1000
EXACT = "exact: every document, in _id order"
SAMPLE_STAGE = "$sample"
RESERVOIR = "reservoir sample over one scan (the server has no $sample)"


class InspectError(DocshiftError):
    """`docshift inspect` cannot profile what it was asked to: no such collection, or a version without a model."""


def target_model(ctx: RunContext, collection: str, version: int | None) -> tuple[int | None, type[BaseModel] | None]:
    """The migration whose target_model documents are checked against: `version`, or the latest migration of the
    collection that declares one (None, None when there is none)."""
    scripts = ctx.scripts
    if version is not None:
        if version not in scripts.versions:
            raise TargetError(f"no migration {version}; known: {', '.join(map(str, scripts.versions)) or 'none'}")
        migration = scripts.part(version, scripts.document_part(version, collection))
        if migration.target_model is None:
            raise InspectError(f"migration {version} declares no target_model to check documents against")
        return version, migration.target_model
    return latest_target(scripts, collection)


def profile_collection(ctx: RunContext, collection: str, sample: int, version: int | None = None,
                       seed: int | None = None) -> Profile:
    """The profile of `collection`: exact when `sample` is 0, else of a uniform sample of `sample` documents."""
    if collection not in ctx.db.list_collection_names():
        raise InspectError(f"database {ctx.db.name!r} has no collection {collection!r}")
    model_version, model = target_model(ctx, collection, version)
    profiler = Profiler(collection, model, model_version)
    coll = ctx.db[collection]
    if sample == 0:
        for doc in coll.find().sort("_id", 1).batch_size(BATCH):
            profiler.add(doc)
        return profiler.profile(EXACT, exact=True)
    try:
        docs = coll.aggregate([{"$sample": {"size": sample}}], batchSize=BATCH)
        method, total = SAMPLE_STAGE, None
    except OperationFailure:
        docs, total = reservoir(coll, sample, random.Random(seed))
        method = RESERVOIR
    for doc in docs:
        profiler.add(doc)
    return profiler.profile(method, exact=False, total=total, bound=margin(profiler.count, total))


def reservoir(coll: Collection, size: int, rng: random.Random) -> tuple[list[dict], int]:
    """`size` documents drawn uniformly from the collection (Algorithm R over one scan), and its count. One scan of
    whole documents, not of `_id`s and then a fetch by `_id`: FerretDB decodes every document for either, and an `$in`
    of `_id`s is a second full scan there."""
    chosen: list[dict] = []
    seen = 0
    for doc in coll.find().batch_size(BATCH):
        seen += 1
        if len(chosen) < size:
            chosen.append(doc)
        elif (slot := rng.randrange(seen)) < size:
            chosen[slot] = doc
    return chosen, seen


def margin(n: int, total: int | None) -> str | None:
    """How far a share in a uniform sample of `n` may be from the collection's at 95% (worst case, p = 1/2, with the
    finite-population correction when the total is known)."""
    if n == 0:
        return None
    correction = math.sqrt((total - n) / (total - 1)) if total and total > 1 else 1.0
    return f"shares within ±{1.96 * 0.5 / math.sqrt(n) * correction:.1%} of the collection's (95%)"
