"""The benchmark's results and their tables: throughput, per-document costs (client CPU, wire bytes, round trips,
server CPU), disk, the ratios the targets are about, and a py-spy profile's shares."""

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import pymongo

from .measure import Usage
from .modes import BATCH

MODES = [(3, "c"), (3, "d"), (3, "a"), (3, "b"), (3, "c2"), (3, "c4"), (2, "c"), (2, "u"), (2, "update_many")]
"""Run by default, (c) and (d) first: the ratios the targets are about are in hand even if a long run is cut short."""
ALL_MODES = [*MODES, (3, "k1"), (3, "k2")]
"""With the Dask modes, which run only when --modes names them (a Dask cluster per run)."""
LABELS = {"a": "(a) per-document loop", "b": "(b) limit(1000) batch loop", "c": "(c) docshift migrate",
          "c2": "(c) docshift migrate --partitions 2", "c4": "(c) docshift migrate --partitions 4",
          "k1": "(c) heavy up, --partitions 2 on Dask, 1 worker process",
          "k2": "(c) heavy up, --partitions 2 on Dask, 2 worker processes",
          "u": "(c) docshift migrate, the change as an update", "d": "(d) ceiling: _id cursor + bulk_write",
          "update_many": "ceiling: one update_many"}
MIB = 1024 * 1024


@dataclass
class Result:
    size: int
    step: str
    mode: str
    done: int
    seconds: float
    estimate: float
    usage: Usage
    check: str = ""
    note: str = ""
    batches: int = 0
    extra: dict = field(default_factory=dict)
    server_cpu_s: float = 0.0
    wire: dict = field(default_factory=dict)
    baseline: "Result | None" = None

    @property
    def rate(self) -> float:
        return self.size / self.estimate if self.estimate else 0.0

    @property
    def totals(self) -> tuple[float, ...]:
        """(client CPU s, server CPU s, bytes sent, bytes received, round trips, busiest worker's CPU s)."""
        w = self.wire
        return (self.usage.cpu_s, self.server_cpu_s, w.get("sent", 0), w.get("received", 0), w.get("requests", 0),
                max(self.usage.workers_cpu_s, default=0.0))


@dataclass(frozen=True)
class Costs:
    """Per document, start-up left out (the slope from the baseline size) when there is a baseline run."""

    cpu_us: float
    server_us: float
    sent: float
    received: float
    round_trips: float
    busiest_worker_us: float
    slope: bool

    @property
    def wire(self) -> float:
        return self.sent + self.received


def costs(r: Result) -> Costs:
    base = r.baseline
    n = r.done - (base.done if base else 0)
    diff = [a - (b if base else 0) for a, b in zip(r.totals, base.totals if base else r.totals)]
    if n <= 0:
        return Costs(0, 0, 0, 0, 0, 0, False)
    cpu, server, sent, received, requests, busiest = (d / n for d in diff)
    return Costs(cpu * 1e6, server * 1e6, sent, received, requests, busiest * 1e6, base is not None)


def docs_per_batch(r: Result) -> float:
    return r.done / r.batches if r.batches else float(BATCH)


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


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def throughput_table(results: list[Result]) -> list[str]:
    lines = ["| N | step | mode | documents | seconds | of it the run (s) | docs/s | peak RSS (MiB) "
             "| peak disk of the server (MiB) | of it WAL (MiB) | same data | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        run = f"{r.extra['run_s']:,.1f}" if "run_s" in r.extra else ""
        lines.append(f"| {r.size:,} | {r.step} | {LABELS[r.mode]} | {r.done:,} | {r.seconds:,.1f} | {run} | {r.rate:,.0f} | "
                     f"{r.usage.rss_mib:,.0f} | {r.usage.disk_peak / MIB:,.0f} | {r.usage.wal_peak / MIB:,.0f} | "
                     f"{r.check} | {r.note} |")
    return lines


def cost_table(results: list[Result]) -> list[str]:
    lines = ["| N | step | mode | client CPU (µs/doc) | sent (B/doc) | received (B/doc) | wire total (B/doc) "
             "| round trips per 1,000 docs | docs per batch | round trips per batch | server CPU (µs/doc) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = costs(r)
        per_batch = c.round_trips * docs_per_batch(r)
        lines.append(f"| {r.size:,} | {r.step} | {LABELS[r.mode]} | {c.cpu_us:,.0f} | {c.sent:,.0f} | {c.received:,.0f} "
                     f"| {c.wire:,.0f} | {1000 * c.round_trips:,.1f} | {docs_per_batch(r):,.0f} | {per_batch:,.1f} "
                     f"| {c.server_us:,.0f} |")
    return lines


def ratio_table(results: list[Result]) -> list[str]:
    by = {(r.size, r.step, r.mode): r for r in results}
    lines = ["| N | c/d docs/s | **c/d client CPU per doc** (target ≤ 3) | **c/d wire bytes per doc** (target ≤ 2.5) "
             "| c/a | c/b | **additive u/update_many** (target ≥ 0.9) | the same, u's run only | additive c/update_many "
             "| partitions 1 → 2 → 4 | (c) orchestration share | (c) peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sorted({r.size for r in results}):
        def get(mode, step="2→3"):
            return by.get((n, step, mode))

        def rate(x, y, step="2→3"):
            a, b = get(x, step), get(y, step)
            return ratio(a.rate, b.rate) if a and b else "—"
        c, d = get("c"), get("d")
        cpu = ratio(costs(c).cpu_us, costs(d).cpu_us) if c and d else "—"
        wire = ratio(costs(c).wire, costs(d).wire) if c and d else "—"
        share = (f"{100 * c.extra['overhead_s'] / c.seconds:.1f}% in the flow run ({c.extra['task_runs']} task runs); "
                 f"{100 * c.extra['outside_tasks_s'] / c.seconds:.1f}% of the process outside task runs") if c else "—"
        u, ceiling = get("u", "1→2"), get("update_many", "1→2")
        run_only = ratio(ceiling.seconds, u.extra["run_s"]) if u and ceiling and u.done == u.size else "—"
        lines.append(f"| {n:,} | {rate('c', 'd')} | {cpu} | {wire} | {rate('c', 'a')} | {rate('c', 'b')} | "
                     f"{rate('u', 'update_many', '1→2')} | {run_only} | {rate('c', 'update_many', '1→2')} | "
                     f"1 → {rate('c2', 'c')} → {rate('c4', 'c')} | {share} | {c.usage.rss_mib if c else 0:,.0f} |")
    return lines


def dask_table(results: list[Result]) -> list[str]:
    """How the client-CPU-bound rate scales with worker processes: documents per CPU-second of the busiest worker."""
    dask = [r for r in results if r.mode in ("k1", "k2")]
    if not dask:
        return []
    lines = ["| N | mode | docs/s (wall, this machine) | client CPU, all processes (µs/doc) | busiest worker (µs/doc) "
             "| client-bound rate: docs/s the busiest worker allows | workers' CPU (s) |", "|---|---|---|---|---|---|---|"]
    for r in dask:
        c = costs(r)
        bound = 1e6 / c.busiest_worker_us if c.busiest_worker_us else 0
        lines.append(f"| {r.size:,} | {LABELS[r.mode]} | {r.rate:,.0f} | {c.cpu_us:,.0f} | {c.busiest_worker_us:,.0f} | "
                     f"{bound:,.0f} | {', '.join(f'{s:.1f}' for s in r.usage.workers_cpu_s[:4])} |")
    return lines


def report(results: list[Result]) -> str:
    results = sorted(results, key=lambda r: (r.size, r.step, r.mode))
    slope = any(r.baseline for r in results)
    lines = [f"Machine: {machine()}.", "", *throughput_table(results), "",
             "Per document" + (", start-up left out (the slope from the baseline run of each mode)" if slope else
                               ", start-up included (no baseline run)") + ":", "", *cost_table(results), "",
             *ratio_table(results)]
    if dask := dask_table(results):
        lines += ["", *dask]
    cs = [r for r in results if (r.step, r.mode) == ("2→3", "c")]
    if len(cs) > 1:
        lines += ["", f"Peak RSS of (c) at {cs[-1].size:,} / at {cs[0].size:,}: {cs[-1].usage.rss_mib / cs[0].usage.rss_mib:.2f}."]
    return "\n".join(lines) + "\n"


def profile_summary(raw: Path, top: int = 12) -> str:
    """Shares of the client's CPU samples (py-spy's collapsed stacks, on-CPU only), by part and by function.

    A sample counts for the innermost part its stack passes through (a pymongo call inside a batch-migrate task is
    pymongo's, though Prefect's task engine is further out); background threads (Prefect's event loop, heartbeats,
    log and API workers, pymongo's monitors) are a part of their own. Then the functions with the most samples in
    the batch loop (migrate_batches), the callees' samples included.
    """
    parts = {
        "imports": ("_find_and_load ",),
        "pymongo: messages, sockets and BSON": ("pymongo/", "bson/"),
        "pydantic validation": ("pydantic/", "pydantic_core/"),
        "backup file append (dump.py)": ("docshift/dump.py",),
        "migration function and diff": ("docshift/transform.py", "migrations/", "copy.py"),
        "Prefect: task/flow runs, API calls, artifacts": ("prefect/",),
        "docshift, other": ("docshift/", "tasks/", "flows/"),
    }
    totals, overall, in_loop, functions = dict.fromkeys([*parts, "background threads", "other"], 0), 0, 0, {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        n = int(count)
        overall += n
        if not frames or frames[0].startswith("Thread._bootstrap "):
            totals["background threads"] += n
            continue
        if any(f.startswith("_find_and_load ") for f in frames):
            totals["imports"] += n
            continue
        hit = next((b for frame in reversed(frames) for b, marks in parts.items() if any(m in frame for m in marks)), "other")
        totals[hit] += n
        if any(f.startswith("migrate_batches ") for f in frames):
            in_loop += n
            for name in {f.split(" (")[0] for f in frames[[f.startswith("migrate_batches ") for f in frames].index(True) + 1:]}:
                functions[name] = functions.get(name, 0) + n
    shares = ", ".join(f"{name} {100 * n / overall:.1f}%" for name, n in sorted(totals.items(), key=lambda x: -x[1]) if n)
    loop = ", ".join(f"{name} {100 * n / overall:.1f}%" for name, n in sorted(functions.items(), key=lambda x: -x[1])[:top])
    return f"{overall:,} samples: {shares}. In the batch loop ({100 * in_loop / max(overall, 1):.1f}%): {loop}"
