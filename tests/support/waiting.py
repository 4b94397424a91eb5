"""Waiting for a run in another process to get somewhere, and the processes below a process."""

import time
from pathlib import Path


def wait_for_checkpoint(db, version: int, done: int, alive=lambda: True, timeout: float = 300, poll: float = 0.02) -> dict:
    """The checkpoint of `db`'s run once it is at migration `version` with at least `done` documents done, while
    `alive()` holds (it may assert, naming what ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        checkpoint = db["_migrations"].find_one({"_id": "checkpoint"})
        if checkpoint and checkpoint["version"] == version and checkpoint.get("done", 0) >= done:
            return checkpoint
        assert alive(), "the run ended before the point it was awaited at"
        time.sleep(poll)
    raise AssertionError(f"checkpoint of {version} at {done} not reached")


def process_alive(proc) -> bool:
    """For `alive=`: the `docshift` process `proc` still runs (its output in the message if not)."""
    assert proc.poll() is None, f"migrate ended before the kill point: {proc.stdout.read() if proc.stdout else ''}"
    return True


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (read from /proc), to kill a worker with the flow run it started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found
