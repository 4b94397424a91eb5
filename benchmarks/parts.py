"""Where the client CPU of docshift's batch loop goes, part by part, without Prefect around it.

    .venv/bin/python -m benchmarks.parts URI [N]       (a scratch database `bench_parts` on that server)

Seeds N users (20,000) at version 1, migrates them to 2 with the engine, then times the 2 -> 3 step's batch loop
(engine.batches.migrate_batches, as a batch-migrate task runs it) with each part wrapped in a CPU timer
(time.process_time: this process's user + sys). Prints microseconds per document for the whole loop and each part.
"""

import functools
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pymongo

from docshift.context import RunContext
from docshift.demo import seed_users
from docshift.engine import batches
from docshift.engine.cursor import BatchCursor
from docshift.engine.runs import StepRun
from docshift.ledger import Ledger
from docshift.loader import ScriptDirectory
from docshift.settings import Settings

from .engine_loop import run_step

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"document: decode, function, diff, guard, target model (prepare_batch)": (batches, "prepare_batch"),
         "pre-images and change records sent (save_by_id)": (batches, "save_by_id"),
         "guarded updates sent (write_batch)": (batches, "write_batch"),
         "backup file append": (batches.dump, "append"),
         "documents read (cursor)": (BatchCursor, "next_batch"),
         "checkpoint and progress": (StepRun, "checkpoint")}


def timed(cpu: dict, name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu[name] += time.process_time() - start
    return wrapper


def migrate(ctx: RunContext, version: int, backup_dir: Path) -> tuple[float, int]:
    """The step's batch loop to its end: (CPU seconds, documents)."""
    timing = run_step(ctx, version, "up", backup_dir)
    return timing.cpu, timing.documents


def main() -> None:
    uri, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    client = pymongo.MongoClient(uri)
    client.drop_database("bench_parts")
    db = client["bench_parts"]
    seed_users(db, n)
    Ledger(db).set_current(1)
    with tempfile.TemporaryDirectory() as backups:
        ctx = RunContext(Settings(database=db.name, backup_dir=Path(backups)), ScriptDirectory.load(ROOT / "migrations"), db)
        migrate(ctx, 2, Path(backups))
        cpu: dict = defaultdict(float)
        for name, (owner, attribute) in PARTS.items():
            setattr(owner, attribute, timed(cpu, name, getattr(owner, attribute)))
        total, done = migrate(ctx, 3, Path(backups))
    client.drop_database("bench_parts")
    print(f"2 -> 3, {done:,} documents: {1e6 * total / done:.0f} µs of client CPU per document in the batch loop")
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {1e6 * seconds / done:6.1f} µs  {name}")


if __name__ == "__main__":
    main()
