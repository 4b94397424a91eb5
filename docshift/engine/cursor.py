"""Reading a step's documents: the checkpointed `_id` cursor, and the server's kept count of a collection."""

import itertools
from collections.abc import Iterator
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

from ..dump import RAW
from ..servers import UNSUPPORTED

SWEEPS = 3
"""Extra passes after the `_id` cursor ends, for documents written behind it while it ran."""


class BatchCursor:
    """The step's documents (its selector) in `_id` order, from the checkpoint on; then bounded sweeps."""

    def __init__(self, coll: Collection, selector: dict, last_id: Any, started: bool):
        self.coll = coll.with_options(codec_options=RAW)
        self.selector = selector
        self.last_id, self.started = last_id, started
        self.sweeps_left = SWEEPS
        self._docs: Iterator | None = None

    def _query(self, bounded: bool) -> Iterator:
        query = dict(self.selector)
        if bounded and self.started:
            query["_id"] = {**query.get("_id", {}), "$gt": self.last_id}  # within a partition's range too
        return iter(self.coll.find(query).sort("_id", 1).batch_size(1000))

    def next_batch(self, size: int) -> list[RawBSONDocument]:
        """The next documents in `_id` order; once the cursor ends, sweeps from the start until one finds none (none
        after a pass that started there and found nothing)."""
        if self._docs is None:
            self._docs = self._query(bounded=True)
        batch = list(itertools.islice(self._docs, size))
        if not batch and not self.started:
            self.sweeps_left = 0  # a pass from the start found nothing: a sweep would repeat it
        while not batch and self.sweeps_left:
            self.sweeps_left -= 1
            self._docs = self._query(bounded=False)
            batch = list(itertools.islice(self._docs, size))
            if not batch:
                self.sweeps_left = 0
        if batch:
            self.last_id, self.started = batch[-1]["_id"], True
        return batch

    def reopen(self, last_id: Any, started: bool) -> None:
        """Start again after the checkpoint (after an error): the batch that failed is read again."""
        self.last_id, self.started = last_id, started
        self._docs = None


def collection_count(coll: Collection) -> int:
    """The collection's document count as the server keeps it (`$collStats`, summed over shards): no scan.

    It is the fast count (as `estimatedDocumentCount`), which FerretDB keeps exactly; where a server has no
    `$collStats` (mongomock, some compatibles: docshift.servers) the documents are counted.
    """
    try:
        return sum(shard["count"] for shard in coll.aggregate([{"$collStats": {"count": {}}}]))
    except UNSUPPORTED:
        return coll.count_documents({})
