"""What one benchmark mode costs, measured from outside its process: wall time, client CPU (user + sys), peak RSS,
wire bytes and round trips (through benchmarks.wire), the server's CPU, and the disk the server's files take."""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """One child process's run: what it printed and what it cost."""

    seconds: float
    cpu_s: float
    rss_mib: float
    text: str
    disk_peak: int = 0
    wal_peak: int = 0
    workers_cpu_s: list[float] = field(default_factory=list)
    own_cpu_s: float = 0.0


def process_cpu(pid: int) -> float:
    """user + sys seconds of one live process (its own threads; not its children), or 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def high_water_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), or 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Dask's nannies and workers under `docshift migrate`)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def disk_bytes(folder: Path | None) -> tuple[int, int]:
    """(bytes of every file under `folder`, bytes of its SQLite write-ahead logs)."""
    total = wal = 0
    if folder is None:
        return 0, 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                size = os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
            total += size
            if name.endswith("-wal"):
                wal += size
    return total, wal


def timed(command: list[str], env: dict, disk: Path | None = None, tree: bool = False) -> Usage:
    """Run one child to its end, sampling every 0.2 s.

    CPU is the child's user + sys from wait4 (its waited-for descendants included). Peak RSS is VmHWM of
    /proc/PID/status (it starts afresh at exec, whereas ru_maxrss also counts the harness memory the fork copied).
    `disk`: the server's data folder, whose peak size (and its WAL's) is recorded. `tree`: also the CPU of each
    descendant process (Dask's workers) and of the child itself alone, as last seen (up to 0.2 s before each ends).
    """
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    peak = disk_peak = wal_peak = 0
    own = 0.0
    workers: dict[int, float] = {}
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, high_water_kib(proc.pid))
        size, wal = disk_bytes(disk)
        disk_peak, wal_peak = max(disk_peak, size), max(wal_peak, wal)
        if tree:
            own = max(own, process_cpu(proc.pid))
            for child in descendants(proc.pid):
                workers[child] = max(workers.get(child, 0.0), process_cpu(child))
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{text[-4000:]}")
    return Usage(seconds, rusage.ru_utime + rusage.ru_stime, peak / 1024, text, disk_peak, wal_peak,
                 sorted(workers.values(), reverse=True), own)


@contextmanager
def wire(upstream_uri: str) -> Iterator[tuple[str, dict]]:
    """A fresh counting proxy (benchmarks.wire) in front of the server: its URI, and a dict that holds its counts
    (sent, received, requests, connections) once the block ends."""
    host_port = upstream_uri.split("//", 1)[1].strip("/")
    proxy = subprocess.Popen([sys.executable, "-m", "benchmarks.wire", host_port], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    counts: dict = {}
    try:
        port = int(proxy.stdout.readline().split()[1])
        yield f"mongodb://127.0.0.1:{port}/", counts
    finally:
        proxy.terminate()
        out, _ = proxy.communicate(timeout=30)
        if out.strip():
            counts.update(json.loads(out.strip().splitlines()[-1]))


def server_cpu(pid_file: Path) -> float:
    """The database server's user + sys seconds so far (its process's own)."""
    return process_cpu(int(pid_file.read_text().strip()))
