"""A fleet of tenant databases: how long `docshift fleet status` reads them, and `docshift fleet migrate` against the
wrapper loop (`docshift migrate` once per database, each its own process, as migrate-mongo users do).

    .venv/bin/python -m benchmarks.fleet URI [TENANTS] [USERS] [--migrate] [--loop N] [--concurrency 1,2,4]

Seeds TENANTS databases `bench_fleet_NNN` (200) of USERS users (1,000) at version 1 on the server at URI, times
`fleet status` on them (the ledgers read concurrently on one client); with --migrate, times the wrapper loop on the
first N of them (default half; its time per tenant extrapolated to the whole fleet, labelled so) and the fleet run at
each concurrency on fresh seeds, and reports seconds, per-tenant overhead, docs/s, the client's CPU seconds (the
docshift processes'), the Prefect server's CPU seconds (when the benchmark started it) and the speed-up over the loop.

Per-tenant overhead is (wall − work / concurrency) / tenants, work being the batch loops' own time (each history
entry's duration: backup, batches, verification, with their task runs): what each tenant adds to the wall time beyond
its share of document work. Under concurrency each step's duration also holds the time it waited for the CPU the
other children use, which this counts as work; so it is also given per child slot, (wall × concurrency − work) /
tenants: the seconds a child spends outside its steps (its flow runs, plan checks, waiting for a slot's start). On
a machine loaded by others both depend on the load; the CPU seconds a tenant (client and Prefect server) much less.
Every run reports to one Prefect server (PREFECT_API_URL's, or one started for the benchmark), as a team's would.
The databases are dropped at the end.
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

from docshift.demo import seed_users
from docshift.fleet import read_statuses, select
from docshift.loader import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench_fleet_"


def seed(client, names: list[str], users: int) -> None:
    for i, name in enumerate(names):
        client.drop_database(name)
        seed_users(client[name], users, seed=i)


def client_cpu() -> float:
    """CPU seconds used so far by the docshift processes this benchmark started (and waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu() -> float | None:
    """CPU seconds used so far by the Prefect server this benchmark started (None: it uses PREFECT_API_URL's); Linux."""
    total = None
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"prefect" in command and b"server" in command:
            total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_now() -> tuple[float, float | None]:
    return client_cpu(), server_cpu()


def cpu_since(start: tuple[float, float | None], tenants: int) -> str:
    client, server = cpu_now()
    text = f"client CPU {client - start[0]:.1f} s ({(client - start[0]) / tenants:.2f} s a tenant)"
    if server is not None and start[1] is not None:
        text += f", Prefect server CPU {server - start[1]:.1f} s ({(server - start[1]) / tenants:.2f} s a tenant)"
    return text


def docshift(uri: str, *args: str) -> float:
    env = {**os.environ, "DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_MIGRATIONS_DIR": str(ROOT / "migrations"),
           "DOCSHIFT_BACKUP_DIR": "/tmp/bench-fleet-backups"}
    start = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "docshift"), *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"docshift {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - start


def work_seconds(client, names: list[str]) -> float:
    """The batch loops' own time: the history entries' durations."""
    return sum(e.get("duration_s") or 0 for n in names for e in client[n]["_migrations"].find({"kind": "history"}))


def main() -> None:
    if os.environ.get("PREFECT_API_URL"):
        return measure()
    from docshift.deployments.local_server import local_prefect_server

    with tempfile.TemporaryDirectory() as home, local_prefect_server(Path(home), free_port()) as api:
        os.environ.update(api)
        measure()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("tenants", nargs="?", type=int, default=200)
    parser.add_argument("users", nargs="?", type=int, default=1000)
    parser.add_argument("--migrate", action="store_true")
    parser.add_argument("--loop", type=int, default=None, help="tenants the wrapper loop runs (default half)")
    parser.add_argument("--concurrency", default="1,2,4")
    args = parser.parse_args()
    client = pymongo.MongoClient(args.uri)
    names = [f"{PREFIX}{i:03d}" for i in range(args.tenants)]
    seed(client, names, args.users)
    try:
        seconds = docshift(args.uri, "fleet", "status", "--databases", f"{PREFIX}*", "--json")
        print(f"fleet status, {args.tenants} databases: {seconds:.1f} s (process start-up included)")
        scripts, start = ScriptDirectory.load(ROOT / "migrations"), time.monotonic()
        read = read_statuses(client, select(f"{PREFIX}*", client.list_database_names()), scripts)
        print(f"  of which reading the {len(read)} ledgers (and drift counts), 16 threads: "
              f"{time.monotonic() - start:.2f} s")
        if not args.migrate:
            return
        part = names[: args.loop or max(1, args.tenants // 2)]
        seed(client, part, args.users)
        cpu = cpu_now()
        loop = sum(docshift(args.uri, "--database", n, "migrate") for n in part)
        per_tenant = loop / len(part)
        overhead = (loop - work_seconds(client, part)) / len(part)
        print(f"wrapper loop, {len(part)} databases measured: {loop:.1f} s ({per_tenant:.2f} s a tenant), "
              f"{len(part) * args.users / loop:,.0f} docs/s, per-tenant overhead {overhead:.2f} s, "
              f"{cpu_since(cpu, len(part))}; extrapolated to {len(names)} databases: {per_tenant * len(names):.1f} s")
        for concurrency in args.concurrency.split(","):
            seed(client, names, args.users)
            cpu = cpu_now()
            fleet = docshift(args.uri, "fleet", "migrate", "--databases", f"{PREFIX}*", "--concurrency", concurrency)
            work, slots = work_seconds(client, names), int(concurrency)
            print(f"fleet migrate, concurrency {concurrency}, {len(names)} databases: {fleet:.1f} s, "
                  f"{len(names) * args.users / fleet:,.0f} docs/s, per-tenant overhead "
                  f"{(fleet - work / slots) / len(names):.2f} s ({(fleet * slots - work) / len(names):.2f} s a child "
                  f"slot; work {work:.1f} s), {cpu_since(cpu, len(names))}, {per_tenant * len(names) / fleet:.1f}x the loop")
    finally:
        for name in names:
            client.drop_database(name)


if __name__ == "__main__":
    main()
