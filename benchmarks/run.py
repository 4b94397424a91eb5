"""The benchmark of issue 5: one migration timed five ways, side by side, on one FerretDB, in one run.

    .venv/bin/python -m benchmarks.run --sizes 100000 1000000 [--budget SIZE[:MODE]=SECONDS ...]
                                       [--modes SIZE=3c,3d ...] [--profile SECONDS]

Per size it seeds `users` once (docshift.demo.seed_users) and keeps the documents in memory at version 1 and at
version 2 (migration 2 applied in Python), then gives every mode a fresh copy in its own database:

  1 -> 2 (additive):       c  `docshift migrate 2`          ceiling: one server-side `update_many`
  2 -> 3 (split `name`):   a  the original per-document loop   b  the original `limit(1000)` batch loop
                           c  `docshift migrate 3`            d  bare `_id` cursor + unordered bulk_write
                           c2, c4  `docshift migrate 3 --partitions 2|4` (the speed-up of parallel partitions)

Every mode runs in its own child process, so that its peak RSS is its own (os.wait4); a, b, d and update_many
are the small functions below with docshift's own transform (transform_one + transform.update_for), so
the writes are identical; c is the real CLI against a real Prefect server. Each result is checked document by
document against the expected documents (computed in memory), so the modes did equal work. With --budget, a mode
at that size stops after that many seconds (c pauses at its maintenance window) and its time is extrapolated, as
labelled (SIZE:MODE=SECONDS for one mode, e.g. 1000000:3b=300); --modes runs only some modes at a size (on this
machine 1,000,000 users take hours for the original loops).
The tables go to stdout and to benchmarks/results-table.md; benchmarks/results.md is their written account.
"""

import argparse
import copy
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import bson
import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne

from docshift.deployments.local_server import local_prefect_server
from docshift.engine.steps import make_step, transform_one
from docshift.demo import seed_users
from docshift.ledger import Ledger
from docshift.loader import ScriptDirectory
from docshift.testing import as_bson
from docshift.transform import update_for, version_filter

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RAW = CodecOptions(document_class=RawBSONDocument)
BATCH = 1000
VOLATILE = ("updated_at",)
"""Set to the clock by both migrations: differs between any two runs, so left out of the comparison."""


# ---------------------------------------------------------------- the modes (run in a child process)

def transformer(version: int):
    """The update docshift would write for one document at the step to `version` (same functions, same diff)."""
    scripts = ScriptDirectory.load(ROOT / "migrations")
    migration, step = scripts.get(version).migration, make_step(scripts, version, "up")
    return lambda doc: update_for(doc, transform_one(migration, step, doc, None), step.to_version)


def per_document(coll, version: int, budget: float) -> dict:
    """(a) The original design: `find(...).toArray()`, then one `updateOne` per document."""
    update, start = transformer(version), time.perf_counter()
    docs = coll.find(version_filter(version - 1)).to_list()
    fixed, done = time.perf_counter() - start, 0
    for doc in docs:
        if time.perf_counter() - start > budget:
            break
        coll.update_one({"_id": doc["_id"]}, update(doc))
        done += 1
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": fixed}


def batch_loop(coll, version: int, budget: float) -> dict:
    """(b) The original design: `find(...).limit(1000)` + `bulkWrite` + 100 ms sleep until nothing is left.

    Without an index each find scans past every document already migrated, so an iteration costs more the later
    it comes: the per-iteration times are returned for the extrapolation.
    """
    update, start, done, iterations = transformer(version), time.perf_counter(), 0, []
    while time.perf_counter() - start <= budget:
        began = time.perf_counter()
        batch = coll.find(version_filter(version - 1)).limit(BATCH).to_list()
        if not batch:
            break
        coll.bulk_write([UpdateOne({"_id": doc["_id"]}, update(doc)) for doc in batch])
        done += len(batch)
        time.sleep(0.1)
        iterations.append(time.perf_counter() - began)
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": 0.0, "iterations": iterations}


def ceiling(coll, version: int, budget: float) -> dict:
    """(d) What the server allows: one `_id`-ordered cursor, an unordered bulk_write per 1000, no bookkeeping."""
    update, start, done = transformer(version), time.perf_counter(), 0
    cursor = coll.find(version_filter(version - 1)).sort("_id", 1).batch_size(BATCH)
    batch: list = []
    for doc in cursor:
        batch.append(UpdateOne({"_id": doc["_id"]}, update(doc)))
        if len(batch) == BATCH:
            coll.bulk_write(batch, ordered=False)
            done, batch = done + BATCH, []
            if time.perf_counter() - start > budget:
                break
    else:
        if batch:
            coll.bulk_write(batch, ordered=False)
            done += len(batch)
    return {"done": done, "seconds": time.perf_counter() - start, "fixed": 0.0}


def update_many(coll, version: int, budget: float) -> dict:
    """The additive ceiling: one server-side `update_many` with migration 2's fields (the seeded users have none)."""
    scripts = ScriptDirectory.load(ROOT / "migrations")
    defaults = scripts.get(2).migration.up({})
    start = time.perf_counter()
    result = coll.update_many(version_filter(version - 1), {"$set": {**defaults, "schema_version": version}})
    return {"done": result.modified_count, "seconds": time.perf_counter() - start, "fixed": 0.0}


CHILD_MODES = {"a": per_document, "b": batch_loop, "d": ceiling, "update_many": update_many}


def child(args) -> None:
    """One mode in this (child) process; prints its measurement as JSON."""
    coll = pymongo.MongoClient(args.uri)[args.database].users
    print(json.dumps(CHILD_MODES[args.child](coll, args.version, args.seconds)))


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ferretdb(work: Path) -> Iterator[str]:
    """The project's FerretDB (scripts/ferretdb) on its own port and directory; stopped at the end."""
    env = {**os.environ, "FERRETDB_PORT": str(free_port()), "FERRETDB_DIR": str(work / "ferretdb"),
           "DOCSHIFT_PYTHON": sys.executable}
    script = str(ROOT / "scripts" / "ferretdb")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    if started.returncode:
        raise SystemExit(f"scripts/ferretdb start failed:\n{started.stderr}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([script, "stop"], env=env)


@contextmanager
def prefect_server(work: Path) -> Iterator[dict]:
    """A real Prefect server (SQLite, loopback, its own PREFECT_HOME) that (c) reports to, as the tests have."""
    home = work / "prefect-home"
    home.mkdir()
    with local_prefect_server(home, free_port()) as api:
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


# ---------------------------------------------------------------- timing

@dataclass
class Result:
    size: int
    step: str
    mode: str
    done: int
    seconds: float
    estimate: float
    rss_mib: float
    check: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.size / self.estimate if self.estimate else 0.0


def extrapolate(size: int, measured: dict) -> tuple[float, str]:
    """The time the whole migration would take, from a capped run: linear, or per-iteration linear for (b)."""
    done, seconds = measured["done"], measured["seconds"]
    if done >= size:
        return seconds, ""
    if not done:
        return float("inf"), f"no document done within {seconds:.0f} s"
    iterations = measured.get("iterations")
    if iterations and len(iterations) >= 4:
        k = len(iterations)
        xs = range(k)
        mx, my = (k - 1) / 2, sum(iterations) / k
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, iterations)) / sum((x - mx) ** 2 for x in xs)
        n = -(-size // BATCH)
        total = sum(my + slope * (x - mx) for x in range(n))
        return total, (f"extrapolated from {k} iterations ({done:,} docs in {seconds:.0f} s); "
                       f"iteration time fitted as {my - slope * mx:.2f} s + {slope * 1000:.1f} ms × iteration")
    fixed = measured.get("fixed", 0.0)
    return fixed + (seconds - fixed) * size / done, f"extrapolated from {done:,} docs in {seconds:.0f} s"


def timed(command: list[str], env: dict) -> tuple[float, float, str]:
    """Run one child to its end: wall seconds, its peak RSS in MiB, its stdout.

    The peak is VmHWM of /proc/PID/status sampled every 0.2 s: it starts afresh at exec, whereas the child's
    ru_maxrss (os.wait4) also counts the harness's own memory that the fork copied.
    """
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, high_water_kib(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{text[-4000:]}")
    return seconds, peak / 1024, text


def high_water_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), or 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


@dataclass
class Bench:
    """The servers and settings one benchmark run shares across sizes and modes."""

    uri: str
    prefect: dict
    work: Path
    budgets: dict
    profile: float | None

    def budget(self, size: int, version: int, mode: str) -> float | None:
        """Seconds allowed to the mode at that size (SIZE:MODE=SECONDS, else SIZE=SECONDS), or None: to the end."""
        return self.budgets.get((size, f"{version}{mode}"), self.budgets.get(size))

    @cached_property
    def client(self) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.uri)

    def run_mode(self, data: Data, version: int, mode: str) -> Result:
        """Copy the users at the version before, run the mode in a child process, check and time it."""
        database = f"bench_{mode}_{version}"
        load(self.client, data, version - 1, database)
        budget = self.budget(data.size, version, mode)
        if mode.startswith("c"):
            result = self.run_docshift(data, version, mode, database, budget)
        else:
            seconds, rss, text = timed([sys.executable, "-m", "benchmarks.run", "--child", mode, "--uri", self.uri,
                                        "--database", database, "--version", str(version),
                                        "--seconds", str(budget or 10 ** 9)],
                                       {**os.environ, "PYTHONPATH": str(ROOT)})
            measured = json.loads(text.strip().splitlines()[-1])
            estimate, note = extrapolate(data.size, measured)
            result = Result(data.size, f"{version - 1}→{version}", mode, measured["done"], measured["seconds"], estimate,
                            rss, note=note)
        result.check = check(self.client, data, version, database, result.done)
        self.client.drop_database(database)
        print(f"  {result.step} {mode:>11}: {result.done:,} docs in {result.seconds:,.1f} s, {result.rate:,.0f} docs/s, "
              f"peak RSS {result.rss_mib:,.0f} MiB {result.note} {result.extra or ''}", flush=True)
        return result

    def run_docshift(self, data: Data, version: int, mode: str, database: str, budget: float | None) -> Result:
        """(c) `docshift migrate VERSION` as a user runs it: backup, checkpoints, verification, through the Prefect server
        (c2, c4: with `--partitions 2|4`, the `_id` ranges as parallel task runs on threads)."""
        env = {**os.environ, **self.prefect, "DOCSHIFT_MONGODB_URI": self.uri, "DOCSHIFT_DATABASE": database,
               "DOCSHIFT_MIGRATIONS_DIR": str(ROOT / "migrations"), "DOCSHIFT_BACKUP_DIR": str(self.work / "backups"),
               "PREFECT_LOGGING_LEVEL": "WARNING", "COLUMNS": "160"}
        command = [str(BIN / "docshift"), "migrate", str(version)]
        if mode != "c":
            command += ["--partitions", mode[1:]]
        if budget is not None:
            command += ["--window-minutes", str(budget / 60)]
        if self.profile and version == 3 and mode == "c":
            # one profile: (c) 2 -> 3 at the first size for --profile seconds, in a run of its own before the timed one
            raw = ROOT / "benchmarks" / "profile-c.txt"
            timed([str(BIN / "py-spy"), "record", "--nonblocking", "--idle", "--subprocesses", "--format", "raw", "-o", str(raw),
                   "--", *command[:3], "--window-minutes", str(self.profile / 60)], env)
            self.profile = None
            print(f"  profile of (c) written to {raw.relative_to(ROOT)}: {profile_summary(raw)}", flush=True)
            load(self.client, data, version - 1, database)
        seconds, rss, _ = timed(command, env)
        entry = Ledger(self.client[database]).history()[-1]
        measured = {"done": entry["documents"], "seconds": seconds}
        estimate, note = extrapolate(data.size, measured)
        return Result(data.size, f"{version - 1}→{version}", mode, entry["documents"], seconds, estimate, rss,
                      note=note, extra={"run_s": entry["duration_s"], **orchestration(self.prefect, entry["flow_run_id"], seconds)})


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


def profile_summary(raw: Path) -> str:
    """Shares of the main thread's sampled time (py-spy's collapsed stacks, idle included), most first.

    A stack counts for the innermost part it passes through: a batch-migrate task's pymongo call is pymongo's,
    though Prefect's task engine is further out; a Prefect API call from the flow body is Prefect's.
    """
    parts = {
        "imports": ("_find_and_load ",),
        "pymongo: server round trips and BSON": ("pymongo/",),
        "backup file append (dump.py)": ("docshift/dump.py",),
        "transform in Python": ("docshift/transform.py", "migrations/"),
        "Prefect: task/flow runs, API calls, artifacts": ("prefect/",),
        "docshift, other": ("docshift/", "tasks/", "flows/"),
    }
    totals, overall = dict.fromkeys([*parts, "other"], 0), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or frames[0].startswith("Thread._bootstrap "):
            continue  # background threads (Prefect's event loop, heartbeats, log and API workers) wait most of the time
        n = int(count)
        overall += n
        if any(f.startswith("_find_and_load ") for f in frames):
            totals["imports"] += n
            continue
        hit = next((b for frame in reversed(frames) for b, marks in parts.items() if any(m in frame for m in marks)), "other")
        totals[hit] += n
    return ", ".join(f"{name} {100 * n / overall:.1f}%" for name, n in sorted(totals.items(), key=lambda x: -x[1]) if n)


# ---------------------------------------------------------------- report

MODES = [(3, "c"), (3, "d"), (3, "a"), (3, "b"), (3, "c2"), (3, "c4"), (2, "c"), (2, "update_many")]
"""(c) and (d) first: the ratio the issue's main target is about is in hand even if a long run is cut short."""
LABELS = {"a": "(a) per-document loop", "b": "(b) limit(1000) batch loop", "c": "(c) docshift migrate",
          "c2": "(c) docshift migrate --partitions 2", "c4": "(c) docshift migrate --partitions 4",
          "d": "(d) ceiling: _id cursor + bulk_write", "update_many": "ceiling: one update_many"}


@functools.cache
def load_at_start() -> float:
    """The 1-minute load average when the run began (run calls this first; later calls get that value)."""
    return os.getloadavg()[0]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024 ** 2
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, pymongo {pymongo.version}, FerretDB 1.24.2 (SQLite backend, "
            f"scripts/ferretdb); load average at the start {load_at_start():.2f}")


def report(results: list[Result]) -> str:
    lines = [f"Machine: {machine()}.", "",
             "| N | step | mode | documents | seconds | docs/s | peak RSS (MiB) | same data | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.size, r.step, r.mode)):
        lines.append(f"| {r.size:,} | {r.step} | {LABELS[r.mode]} | {r.done:,} | {r.seconds:,.1f} | {r.rate:,.0f} | "
                     f"{r.rss_mib:,.0f} | {r.check} | {r.note} |")
    lines += ["", "| N | c/d | c/a | c/b | d/a | additive c/update_many | partitions 1 → 2 → 4 | (c) 2→3 orchestration share "
                  "| (c) peak RSS (MiB) |",
              "|---|---|---|---|---|---|---|---|---|"]
    by = {(r.size, r.step, r.mode): r for r in results}
    sizes = sorted({r.size for r in results})
    for n in sizes:
        def ratio(x, y, step="2→3"):
            a, b = by.get((n, step, x)), by.get((n, step, y))
            return f"{a.rate / b.rate:.2f}" if a and b else "—"
        c = by.get((n, "2→3", "c"))
        share = (f"{100 * c.extra['overhead_s'] / c.seconds:.1f}% in the flow run "
                 f"({c.extra['task_runs']} task runs); {100 * c.extra['outside_tasks_s'] / c.seconds:.1f}% "
                 f"of the process outside task runs") if c else "—"
        rss = f"{c.rss_mib:,.0f}" if c else "—"
        speedup = f"1 → {ratio('c2', 'c')} → {ratio('c4', 'c')}"
        lines.append(f"| {n:,} | {ratio('c', 'd')} | {ratio('c', 'a')} | {ratio('c', 'b')} | {ratio('d', 'a')} | "
                     f"{ratio('c', 'update_many', '1→2')} | {speedup} | {share} | {rss} |")
    cs = [by[(n, "2→3", "c")] for n in sizes if (n, "2→3", "c") in by]
    if len(cs) > 1:
        lines += ["", f"Peak RSS of (c) at {cs[-1].size:,} / at {cs[0].size:,}: {cs[-1].rss_mib / cs[0].rss_mib:.2f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--budget", nargs="*", default=[], metavar="SIZE[:MODE]=SECONDS",
                        help="at SIZE, stop each mode (or MODE, e.g. 3b) after SECONDS and extrapolate its time (labelled)")
    parser.add_argument("--profile", type=float, metavar="SECONDS",
                        help="first profile (c) 2->3 at the first size with py-spy for SECONDS (benchmarks/profile-c.txt)")
    parser.add_argument("--modes", nargs="*", default=[], metavar="SIZE=MODE,...",
                        help="at SIZE, run only these modes (3c 3d 3a 3b 2c 2update_many: target version and mode)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-table.md")
    parser.add_argument("--child", choices=CHILD_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--version", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    budgets = {budget_key(key): float(seconds) for key, seconds in (b.split("=") for b in args.budget)}
    only = {int(n): m.split(",") for n, m in (x.split("=") for x in args.modes)}
    print(report(run(args.sizes, budgets, args.profile, args.out, only)))


def budget_key(key: str) -> int | tuple[int, str]:
    """`1000000` (every mode at that size) or `1000000:3b` (one mode)."""
    size, _, mode = key.partition(":")
    return (int(size), mode) if mode else int(size)


def run(sizes: list[int], budgets: dict, profile: float | None, out: Path,
        only: dict[int, list[str]] | None = None) -> list[Result]:
    """Every mode at every size on one FerretDB and one Prefect server of its own; the table goes to `out`."""
    load_at_start()  # the report's load average is the one from before the servers and modes ran
    results = []
    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as tmp:
        work = Path(tmp)
        with ferretdb(work) as uri, prefect_server(work) as prefect:
            bench = Bench(uri, prefect, work, budgets, profile)
            for size in sizes:
                start = time.perf_counter()
                data = prepare(bench.client, size)
                print(f"N={size:,}: seeded in {time.perf_counter() - start:,.0f} s", flush=True)
                for version, mode in MODES:
                    if size in (only or {}) and f"{version}{mode}" not in only[size]:
                        continue
                    results.append(bench.run_mode(data, version, mode))
                    out.write_text(report(results))  # after every mode: a run cut short keeps what it measured
    return results


if __name__ == "__main__":
    main()
