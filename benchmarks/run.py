"""The benchmark: one migration timed and costed several ways, side by side, on one FerretDB, in one run.

    .venv/bin/python -m benchmarks.run --sizes 100000 [--baseline 1000] [--budget SIZE[:MODE]=SECONDS ...]
                                       [--modes SIZE=3c,3d ...] [--profile SECONDS]

Per size it seeds `users` once (docshift.demo.seed_users) and keeps the documents in memory at version 1 and at
version 2 (migration 2 applied in Python), then gives every mode a fresh copy in its own database:

  1 -> 2 (additive):       c  `docshift migrate 2` (migration 2 as shipped: up/down functions)
                           u  `docshift migrate 2` with the same change declared as an update (benchmarks/additive)
                           update_many  one server-side `update_many` writing what u writes
  2 -> 3 (split `name`):   a  the original per-document loop   b  the original `limit(1000)` batch loop
                           c  `docshift migrate 3`            d  bare `_id` cursor + unordered bulk_write
                           c2, c4  `docshift migrate 3 --partitions 2|4` on threads
                           k1, k2  `docshift migrate 3 --partitions 2` on a local Dask cluster of 1, 2 worker processes,
                                   migration 3 with ~1 ms more client CPU per document (benchmarks/heavy): client-bound

Every mode runs in a child process of its own, its database traffic through a counting proxy (benchmarks.wire):
wall time, client CPU (user + sys, wait4), peak RSS, bytes each way, round trips, the server's CPU and the peak
size of its files. Per-document costs leave start-up out: each mode also runs at the `--baseline` size and the
costs are the slope between the two sizes. Each result is checked document by document against the expected
documents (computed in memory), so the modes did equal work. With --budget, a mode at that size stops after that
many seconds (c pauses at its maintenance window) and its time is extrapolated, as labelled; --modes runs only some
modes at a size. The tables go to stdout and to benchmarks/results-table.md; benchmarks/results.md is their account.
"""

import argparse
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import bson
import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from docshift.deployments.local_server import local_prefect_server
from docshift.demo import seed_users
from docshift.ledger import Ledger
from docshift.testing import as_bson

from .measure import server_cpu, timed, wire
from .modes import transformer
from .report import ALL_MODES, MODES, Result, extrapolate, load_at_start, profile_summary, report

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RAW = CodecOptions(document_class=RawBSONDocument)
VOLATILE = ("updated_at",)
"""Set to the clock by both migrations: differs between any two runs, so left out of the comparison."""
DASK = {"k1": 1, "k2": 2}
"""Dask modes: worker processes of the local cluster (each runs `--partitions 2`)."""


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    uri: str
    folder: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def pid_file(self) -> Path:
        return self.folder / "ferretdb.pid"


@contextmanager
def ferretdb(work: Path) -> Iterator[Server]:
    """The project's FerretDB (scripts/ferretdb) on its own port and directory; stopped at the end."""
    folder = work / "ferretdb"
    env = {**os.environ, "FERRETDB_PORT": str(free_port()), "FERRETDB_DIR": str(folder), "DOCSHIFT_PYTHON": sys.executable}
    script = str(ROOT / "scripts" / "ferretdb")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    if started.returncode:
        raise SystemExit(f"scripts/ferretdb start failed:\n{started.stderr}")
    try:
        yield Server(started.stdout.strip(), folder)
    finally:
        subprocess.run([script, "stop"], env=env)


@contextmanager
def prefect_server(work: Path) -> Iterator[dict]:
    """A real Prefect server (SQLite, loopback, its own PREFECT_HOME) that (c) reports to, as the tests have."""
    home = work / "prefect-home"
    home.mkdir()
    with local_prefect_server(home, free_port(), timeout=900) as api:  # a busy machine starts it slowly
        yield api


# ---------------------------------------------------------------- data

@dataclass
class Data:
    """One size's users at versions 1 and 2 (raw batches to copy) and the expected documents after 2 and 3."""

    size: int
    batches: dict[int, list[list[RawBSONDocument]]]
    expected: dict[int, dict[str, bytes]]


def digest(doc: dict) -> bytes:
    """A document's canonical BSON without the volatile fields, hashed."""
    return hashlib.sha256(as_bson({k: v for k, v in doc.items() if k not in VOLATILE})).digest()


def prepare(client: pymongo.MongoClient, size: int) -> Data:
    """Seed once, read back at version 1; migration 2 and then 3 applied in memory give the rest."""
    db = client["bench_seed"]
    seed_users(db, size)
    v1 = list(db.users.with_options(codec_options=RAW).find().batch_size(5000))
    client.drop_database(db.name)
    up2, up3 = transformer(2), transformer(3)
    batches: dict[int, list] = {1: [], 2: []}
    expected: dict[int, dict[str, bytes]] = {2: {}, 3: {}}
    for start in range(0, size, 5000):
        chunk = v1[start:start + 5000]
        batches[1].append(chunk)
        at2 = []
        for raw in chunk:
            doc = bson.decode(raw.raw)
            doc2 = apply_update(doc, up2(doc))
            at2.append(RawBSONDocument(bson.encode(doc2)))
            expected[2][doc["user_id"]] = digest(doc2)
            expected[3][doc["user_id"]] = digest(apply_update(doc2, up3(doc2)))
        batches[2].append(at2)
    return Data(size, batches, expected)


def apply_update(doc: dict, update: dict) -> dict:
    """The document a $set/$unset update leaves (top-level fields only, as docshift's updates are)."""
    new = copy.deepcopy(doc)
    new.update(update.get("$set", {}))
    for name in update.get("$unset", {}):
        new.pop(name, None)
    return new


def load(client: pymongo.MongoClient, data: Data, version: int, database: str) -> None:
    """A fresh database with the size's users at `version` (and docshift's ledger saying so)."""
    client.drop_database(database)
    for batch in data.batches[version]:
        client[database].users.insert_many(batch, ordered=False)
    if version > 1:
        Ledger(client[database]).set_current(version)


def check(client: pymongo.MongoClient, data: Data, version: int, database: str, done: int) -> str:
    """Every document now at `version` is exactly the expected one, and there are `done` of them (all, unless capped)."""
    found = {doc["user_id"]: digest(doc) for doc in client[database].users.find({"schema_version": version})}
    wrong = [uid for uid, d in found.items() if data.expected[version].get(uid) != d]
    if wrong or len(found) != done:
        raise SystemExit(f"{database}: {len(wrong)} document(s) differ from the expected ones (e.g. {wrong[:3]}), "
                         f"{len(found)} at version {version} where the mode reports {done}")
    return "identical" if done == data.size else f"identical ({done:,} migrated)"


# ---------------------------------------------------------------- running the modes

@dataclass
class Bench:
    """The servers and settings one benchmark run shares across sizes and modes."""

    server: Server
    prefect: dict
    work: Path
    budgets: dict
    profile: float | None

    def budget(self, size: int, version: int, mode: str) -> float | None:
        """Seconds allowed to the mode at that size (SIZE:MODE=SECONDS, else SIZE=SECONDS), or None: to the end."""
        return self.budgets.get((size, f"{version}{mode}"), self.budgets.get(size))

    @cached_property
    def client(self) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.server.uri)

    def run_mode(self, data: Data, version: int, mode: str) -> Result:
        """Copy the users at the version before, run the mode in a child process through the counting proxy, check it."""
        database = f"bench_{mode}_{version}"
        load(self.client, data, version - 1, database)
        budget = self.budget(data.size, version, mode)
        cpu_before = server_cpu(self.server.pid_file)
        with wire(self.server.uri) as (uri, counts):
            if mode in ("c", "c2", "c4", "u", *DASK):
                result = self.run_docshift(data, (version, mode), uri, database, budget)
            else:
                usage = timed([sys.executable, "-m", "benchmarks.modes", mode, uri, database, str(version),
                               str(budget or 10 ** 9)], {**os.environ, "PYTHONPATH": str(ROOT)}, self.server.data)
                measured = json.loads(usage.text.strip().splitlines()[-1])
                estimate, note = extrapolate(data.size, measured)
                result = Result(data.size, f"{version - 1}→{version}", mode, measured["done"], measured["seconds"],
                                estimate, usage, note=note, batches=measured["batches"])  # its own timing: no start-up
        result.server_cpu_s = server_cpu(self.server.pid_file) - cpu_before
        result.wire = counts
        result.check = check(self.client, data, version, database, result.done)
        self.client.drop_database(database)
        print(f"  {result.step} {mode:>11}: {result.done:,} docs in {result.seconds:,.1f} s, {result.rate:,.0f} docs/s, "
              f"client CPU {result.usage.cpu_s:,.1f} s, server CPU {result.server_cpu_s:,.1f} s, wire {counts}, "
              f"peak RSS {result.usage.rss_mib:,.0f} MiB {result.note}", flush=True)
        return result

    def run_docshift(self, data: Data, step: tuple[int, str], uri: str, database: str, budget: float | None) -> Result:
        """`docshift migrate VERSION` as a user runs it: backup, checkpoints, verification, through the Prefect server.
        c2, c4: with `--partitions 2|4` on threads; k1, k2: `--partitions 2` on Dask with benchmarks/heavy's migration 3;
        u: migrations of benchmarks/additive."""
        version, mode = step
        migrations = ROOT / {"u": "benchmarks/additive", "k1": "benchmarks/heavy", "k2": "benchmarks/heavy"}.get(mode, "migrations")
        env = {**os.environ, **self.prefect, "DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_DATABASE": database,
               "DOCSHIFT_MIGRATIONS_DIR": str(migrations), "DOCSHIFT_BACKUP_DIR": str(self.work / "backups"),
               "PREFECT_LOGGING_LEVEL": "WARNING", "COLUMNS": "160"}
        command = [str(BIN / "docshift"), "migrate", str(version)]
        if mode in ("c2", "c4"):
            command += ["--partitions", mode[1:]]
        if mode in DASK:
            command += ["--partitions", "2"]
            env.update(DOCSHIFT_TASK_RUNNER="dask", DOCSHIFT_DASK_WORKERS=str(DASK[mode]))
        if budget is not None:
            command += ["--window-minutes", str(budget / 60)]
        if self.profile and version == 3 and mode == "c":
            self.record_profile(data, command, env, database)
        usage = timed(command, env, self.server.data, tree=mode in DASK)
        entry = Ledger(self.client[database]).history()[-1]
        estimate, note = extrapolate(data.size, {"done": entry["documents"], "seconds": usage.seconds})
        return Result(data.size, f"{version - 1}→{version}", mode, entry["documents"], usage.seconds, estimate, usage,
                      note=note, batches=entry.get("batches", 0), extra={"run_s": entry["duration_s"],
                                                                         **orchestration(self.prefect, entry["flow_run_id"], usage.seconds)})

    def record_profile(self, data: Data, command: list[str], env: dict, database: str) -> None:
        """One py-spy profile of the client's CPU (on-CPU samples, 250 a second): (c) 2 -> 3 at the first size for
        --profile seconds, in a run of its own before the timed one."""
        raw = ROOT / "benchmarks" / "profile-c.txt"
        timed([str(BIN / "py-spy"), "record", "--nonblocking", "--rate", "250", "--format", "raw", "-o", str(raw),
               "--", *command[:3], "--window-minutes", str(self.profile / 60)], env)
        self.profile = None
        print(f"  profile of (c) written to {raw.relative_to(ROOT)}: {profile_summary(raw)}", flush=True)
        load(self.client, data, 2, database)


def orchestration(prefect: dict, flow_run_id: str, wall: float) -> dict:
    """(c)'s time outside its task runs, from the Prefect API.

    `overhead_s`: the apply-migration flow run's duration minus the run times of its task runs (start-run, backup,
    batch-migrate × n, verify, finish-run): task-run creation and state changes, progress artifacts, the flow body.
    `outside_tasks_s`: the whole process's wall time minus those task run times: adds the interpreter start,
    imports, CLI preflight and the parent `migrate` flow run.
    """
    os.environ.update(prefect)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        tasks, offset = [], 0
        while page := client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
                                            limit=200, offset=offset):
            tasks += page
            offset += len(page)
    in_tasks = sum(t.total_run_time.total_seconds() for t in tasks)
    flow_s = (flow_run.end_time - flow_run.start_time).total_seconds()
    return {"task_runs": len(tasks), "in_tasks_s": in_tasks, "flow_s": flow_s, "overhead_s": flow_s - in_tasks,
            "outside_tasks_s": wall - in_tasks}


# ---------------------------------------------------------------- command line

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--baseline", type=int, default=1000,
                        help="also run every mode at this size: per-document costs are the slope between the sizes (0: none)")
    parser.add_argument("--budget", nargs="*", default=[], metavar="SIZE[:MODE]=SECONDS",
                        help="at SIZE, stop each mode (or MODE, e.g. 3b) after SECONDS and extrapolate its time (labelled)")
    parser.add_argument("--profile", type=float, metavar="SECONDS",
                        help="first profile (c) 2->3 at the first size with py-spy for SECONDS (benchmarks/profile-c.txt)")
    parser.add_argument("--modes", nargs="*", default=[], metavar="SIZE=MODE,...",
                        help="at SIZE, run only these modes (3c 3d 3a 3b 3c2 3c4 3k1 3k2 2c 2u 2update_many)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-table.md")
    args = parser.parse_args()
    budgets = {budget_key(key): float(seconds) for key, seconds in (b.split("=") for b in args.budget)}
    only = {int(n): m.split(",") for n, m in (x.split("=") for x in args.modes)}
    print(report(run(args.sizes, budgets, args.profile, args.out, only, args.baseline)))


def budget_key(key: str) -> int | tuple[int, str]:
    """`1000000` (every mode at that size) or `1000000:3b` (one mode)."""
    size, _, mode = key.partition(":")
    return (int(size), mode) if mode else int(size)


def run(sizes: list[int], budgets: dict, profile: float | None, out: Path,
        only: dict[int, list[str]] | None = None, baseline: int = 0) -> list[Result]:
    """Every mode at every size on one FerretDB and one Prefect server of its own; the table goes to `out`.

    With a `baseline` size, each mode runs there first (results kept in each result's `baseline`)."""
    load_at_start()  # the report's load average is the one from before the servers and modes ran
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as tmp:
        work = Path(tmp)
        with ferretdb(work) as server, prefect_server(work) as prefect:
            bench = Bench(server, prefect, work, budgets, profile)
            small = prepare(bench.client, baseline) if baseline else None
            for size in sizes:
                start = time.perf_counter()
                data = prepare(bench.client, size)
                print(f"N={size:,}: seeded in {time.perf_counter() - start:,.0f} s", flush=True)
                for version, mode in ALL_MODES:
                    if f"{version}{mode}" not in (only or {}).get(size, [f"{v}{m}" for v, m in MODES]):
                        continue
                    base = bench.run_mode(small, version, mode) if small and baseline < size else None
                    results.append(bench.run_mode(data, version, mode))
                    results[-1].baseline = base
                    out.write_text(report(results))  # after every mode: a run cut short keeps what it measured
    return results


if __name__ == "__main__":
    main()
