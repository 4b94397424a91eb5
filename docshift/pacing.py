"""How fast a run goes: batch sizes that follow a target time per batch, and a throttle between batches.

Both are plain Python over a pymongo database, so they are unit-tested with a fake clock and a fake lag.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pymongo.database import Database
from pymongo.errors import PyMongoError

from . import stop
from .errors import ThrottleError
from .ledger import now

BSON_LIMIT = 16 * 1024 * 1024
"""MongoDB's largest document and the size of one batch's pre-images sent in one message."""


@dataclass
class BatchSizer:
    """How many documents the next batch takes.

    Fixed when the user gave a size; otherwise it follows `target_seconds` per batch, as pt-online-schema-change's
    --chunk-time does, at most doubling or halving at once, never more than the server's maxWriteBatchSize nor more
    bytes than one 16 MB message. A batch's time is modelled as a cost per batch plus a cost per document (a least
    squares fit over the last batches): the size fills the target after the per-batch cost, and never drops to where
    the per-batch cost (a prefetch query, the checkpoint, a slow server's round trips) would be more than half of a
    batch's time. A sizer that only divided documents by seconds shrank such batches towards one document each.
    """

    fixed: int | None = None
    target_seconds: float = 0.5
    max_documents: int = 100_000
    max_bytes: int = BSON_LIMIT
    size: int = 100
    document_bytes: float | None = None
    samples: deque = field(default_factory=lambda: deque(maxlen=8))
    """The last batches' (documents, seconds)."""

    @classmethod
    def for_server(cls, db: Database, fixed: int | None, target_seconds: float) -> "BatchSizer":
        """A sizer within the limits the server reports in `hello`."""
        hello = db.command("hello")
        return cls(fixed, target_seconds, int(hello.get("maxWriteBatchSize", 100_000)),
                   int(hello.get("maxBsonObjectSize", BSON_LIMIT)))

    def next(self) -> int:
        if self.fixed:
            return self.fixed
        limit = self.max_documents
        if self.document_bytes:
            limit = min(limit, max(1, int(self.max_bytes // self.document_bytes)))
        return max(1, min(self.size, limit))

    def record(self, documents: int, nbytes: int, seconds: float) -> None:
        """Learn from a finished batch: its documents, their bytes, and how long it took end to end."""
        if self.fixed or documents == 0 or seconds <= 0:
            return
        self.samples.append((documents, seconds))
        size = nbytes / documents
        self.document_bytes = size if self.document_bytes is None else max(size, 0.7 * self.document_bytes + 0.3 * size)
        per_batch, per_document = self.costs()
        wanted = max(self.target_seconds - per_batch, per_batch) / per_document
        self.size = int(min(max(wanted, self.size / 2), self.size * 2)) or 1

    def costs(self) -> tuple[float, float]:
        """(seconds per batch, seconds per document) fitted to the samples; all per document while the sizes have
        not varied, or where the fit makes no sense (noise)."""
        n = len(self.samples)
        mean_docs = sum(d for d, _ in self.samples) / n
        mean_secs = sum(s for _, s in self.samples) / n
        spread = sum((d - mean_docs) ** 2 for d, _ in self.samples)
        if spread > 0:
            per_document = sum((d - mean_docs) * (s - mean_secs) for d, s in self.samples) / spread
            per_batch = mean_secs - per_document * mean_docs
            if per_document > 0 and 0 <= per_batch <= min(s for _, s in self.samples):
                return per_batch, per_document
        return 0.0, mean_secs / mean_docs


def replication_lag(db: Database) -> float | None:
    """Seconds the furthest secondary is behind the primary; None when that cannot be measured."""
    try:
        members = db.client.admin.command("replSetGetStatus").get("members", [])
    except PyMongoError:
        return None
    primary = [m["optimeDate"] for m in members if m.get("stateStr") == "PRIMARY" and "optimeDate" in m]
    secondaries = [m["optimeDate"] for m in members if m.get("stateStr") == "SECONDARY" and "optimeDate" in m]
    if not primary:
        return None
    return max(((primary[0] - s).total_seconds() for s in secondaries), default=0.0)


@dataclass
class Throttle:
    """Between batches: an optional pause, and a wait while replication lag is over the limit.

    It fails closed: lag that cannot be measured counts as too high. Waiting longer than `max_wait_seconds` stops the
    run at its checkpoint with a plain error (a re-run resumes); a maintenance window's end or a request to stop the
    run (docshift.stop: the batch loop then raises Interrupted) ends the wait too.
    """

    pause_seconds: float = 0.0
    max_lag_seconds: float = 10.0
    max_wait_seconds: float = 600.0
    lag: Callable[[], float | None] | None = None
    sleep: Callable[[float], None] = stop.sleep
    clock: Callable[[], float] = time.monotonic
    waited_seconds: float = 0.0

    @classmethod
    def for_server(cls, db: Database, pause_seconds: float, max_lag_seconds: float | None,
                   max_wait_seconds: float) -> "Throttle":
        """On a replica set (and a lag limit set) the lag is checked; a standalone server has no replication to wait for."""
        replica_set = "setName" in db.command("hello")
        probe = (lambda: replication_lag(db)) if replica_set and max_lag_seconds is not None else None
        return cls(pause_seconds, max_lag_seconds or 0.0, max_wait_seconds, probe)

    def wait(self, deadline: datetime | None = None) -> None:
        if self.pause_seconds:
            self.sleep(self.pause_seconds)
        if self.lag is None:
            return
        started = self.clock()
        while (lag := self.lag()) is None or lag > self.max_lag_seconds:
            waited = self.clock() - started
            if deadline and now() >= deadline or stop.stop_requested():
                return  # the window closed, or the run was asked to stop: it stops at its checkpoint instead
            if waited >= self.max_wait_seconds:
                reason = "cannot be measured" if lag is None else f"is {lag:.1f} s, over {self.max_lag_seconds:g} s"
                raise ThrottleError(f"replication lag {reason} for {waited:.0f} s; stopped at the last checkpoint "
                                    f"(run again to resume)")
            self.sleep(1.0)
        self.waited_seconds += self.clock() - started
