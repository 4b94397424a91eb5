"""Adaptive batch sizes and the throttle, with a fake clock and a fake replication lag."""

from datetime import timedelta

import pytest

from docshift.errors import ThrottleError
from docshift.ledger import now
from docshift.pacing import BatchSizer, Throttle, replication_lag


def run_batches(sizer: BatchSizer, seconds_per_document: float, document_bytes: int, batches: int) -> list[int]:
    sizes = []
    for _ in range(batches):
        size = sizer.next()
        sizes.append(size)
        sizer.record(size, size * document_bytes, size * seconds_per_document)
    return sizes


def test_batch_size_converges_to_the_target_time_per_batch():
    sizer = BatchSizer(target_seconds=0.5)
    sizes = run_batches(sizer, seconds_per_document=0.0005, document_bytes=300, batches=12)  # 2,000 docs/s
    assert sizes[0] == 100 and sizes[1] == 200  # grows at most twofold per batch
    assert abs(sizes[-1] - 1000) <= 20  # 0.5 s at 2,000 docs/s


def test_batch_size_shrinks_when_batches_get_slow():
    sizer = BatchSizer(target_seconds=0.5, size=1000)
    sizes = run_batches(sizer, seconds_per_document=0.005, document_bytes=300, batches=10)  # 200 docs/s
    assert sizes[1] == 500 and abs(sizes[-1] - 100) <= 5


def test_batch_size_stays_within_the_server_batch_limit_and_one_message():
    fast = BatchSizer(target_seconds=10, max_documents=1000)
    assert max(run_batches(fast, 0.00001, 100, 20)) == 1000
    huge = BatchSizer(target_seconds=10)
    assert run_batches(huge, 0.00001, 15 * 1024 * 1024, 5)[1:] == [1, 1, 1, 1]  # 15 MB documents: one per batch


def test_an_explicit_batch_size_is_fixed():
    assert run_batches(BatchSizer(fixed=250), 0.01, 100, 5) == [250] * 5


class FakeTime:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def clock(self):
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds


def test_throttle_pauses_between_batches_and_waits_while_lag_is_high():
    time, lags = FakeTime(), iter([30.0, 12.0, 4.0])
    throttle = Throttle(pause_seconds=0.2, max_lag_seconds=10, lag=lambda: next(lags), sleep=time.sleep, clock=time.clock)
    throttle.wait()
    assert time.sleeps == [0.2, 1.0, 1.0] and throttle.waited_seconds == 2.0


def test_throttle_fails_closed_when_lag_cannot_be_measured():
    time = FakeTime()
    throttle = Throttle(max_lag_seconds=10, max_wait_seconds=5, lag=lambda: None, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ThrottleError, match="replication lag cannot be measured for 5 s; stopped at the last checkpoint"):
        throttle.wait()
    assert time.sleeps == [1.0] * 5


def test_throttle_stops_waiting_when_the_window_closes():
    time = FakeTime()
    throttle = Throttle(max_lag_seconds=10, lag=lambda: 60.0, sleep=time.sleep, clock=time.clock)
    throttle.wait(deadline=now() - timedelta(seconds=1))
    assert time.sleeps == []


class ReplicaSet:
    """Just enough of a pymongo Database for replication_lag: `db.client.admin.command("replSetGetStatus")`."""

    def __init__(self, members):
        self.client = self
        self.admin = self
        self.members = members

    def command(self, name):
        assert name == "replSetGetStatus"
        return {"members": self.members}


def test_replication_lag_is_the_furthest_secondary_behind_the_primary():
    t = now()
    members = [{"stateStr": "PRIMARY", "optimeDate": t}, {"stateStr": "SECONDARY", "optimeDate": t - timedelta(seconds=3)},
               {"stateStr": "SECONDARY", "optimeDate": t - timedelta(seconds=7)}, {"stateStr": "ARBITER"}]
    assert replication_lag(ReplicaSet(members)) == 7.0
    assert replication_lag(ReplicaSet(members[1:])) is None  # no primary: cannot be measured


def test_batch_size_does_not_collapse_when_a_batch_costs_more_than_its_documents():
    # a prefetch query and a checkpoint per batch of 0.8 s on a slow server, 1 ms per document: dividing documents by
    # seconds shrank the batches towards one document each (each batch then nearly all overhead)
    sizer = BatchSizer(target_seconds=0.5)
    sizes = []
    for _ in range(15):
        size = sizer.next()
        sizes.append(size)
        sizer.record(size, size * 300, 0.8 + 0.001 * size)
    assert sizes[-1] >= 800 and min(sizes) >= 50  # the documents' time at least the batch's overhead


def test_batch_size_fills_the_target_after_a_small_cost_per_batch():
    sizer = BatchSizer(target_seconds=0.5)
    for _ in range(15):
        size = sizer.next()
        sizer.record(size, size * 300, 0.1 + 0.0004 * size)
    assert abs(sizer.next() - 1000) <= 30  # (0.5 - 0.1) s / 0.4 ms
