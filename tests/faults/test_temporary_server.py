"""The temporary Prefect server a `docshift` command starts when no PREFECT_API_URL is set (issue 22, items 1 and 2):
commands started together on a fresh machine all get one, one that cannot start says why, and a `docshift` killed
with kill -9 leaves no server behind. Real `docshift` processes, each with a real server; a fresh PREFECT_HOME each
(not the session server's)."""

import os
import signal
import subprocess
import time

import psutil
import pytest

from docshift.ledger import Ledger
from tests.support.orders import add_orders_migrations, seed_orders
from tests.support.waiting import process_alive, wait_for_checkpoint


def fresh_machine(tmp_path) -> dict:
    """No PREFECT_API_URL and a PREFECT_HOME no server has used yet: as on a new CI runner."""
    return {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect-home")}


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """The process's output once it exits; one still running after `timeout` is killed with its children and fails."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        for process in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            process.kill()
        raise AssertionError(f"still running {timeout} s later:\n{proc.communicate()[0][-3000:]}") from None


def running(process: psutil.Process) -> bool:
    """Still running: a process whose parent died is reparented, and a zombie there is as good as gone."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # four servers start one after the other
def test_commands_started_together_on_a_fresh_machine_all_get_their_server(env, tmp_path):
    databases = [f"{env.database}_{i}" for i in range(4)]
    fresh = fresh_machine(tmp_path)
    started = time.monotonic()
    procs = [env.start("migrate", "--new-database", extra={**fresh, "DOCSHIFT_DATABASE": database}) for database in databases]
    try:
        outputs = [finish(proc, 900) for proc in procs]

        print(f"4 concurrent `docshift migrate` on a fresh PREFECT_HOME: {time.monotonic() - started:.1f} s")
        assert [proc.returncode for proc in procs] == [0] * 4, "\n---\n".join(outputs)
        assert [Ledger(env.client[database]).current_version() for database in databases] == [5] * 4
    finally:
        for database in databases:
            env.client.drop_database(database)


def test_a_server_that_cannot_start_says_why(env, tmp_path):
    unwritable = tmp_path / "not-a-folder"
    unwritable.write_text("")
    failed = env.run("migrate", "--new-database", timeout=300, extra={
        **fresh_machine(tmp_path), "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{unwritable}/prefect.db"})

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stderr.splitlines() == ["docshift: error: the Prefect server exited with status 3: "
                                          "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database file"], failed.stderr
    assert Ledger(env.db).current_version() == 1


def test_a_docshift_killed_with_kill_9_leaves_no_prefect_server_behind(env, tmp_path):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, 1500, seed=22)  # formerly 3000: killed at 500 of them, in migration 7
    proc = env.start("migrate", "--batch-size", "100", extra=fresh_machine(tmp_path))
    wait_for_checkpoint(env.db, 7, 500, alive=lambda: process_alive(proc))
    servers = psutil.Process(proc.pid).children(recursive=True)
    assert servers

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    while [server for server in servers if running(server)] and time.monotonic() - killed < 10:
        time.sleep(0.05)

    left = [server for server in servers if running(server)]
    print(f"docshift killed: its server gone {time.monotonic() - killed:.1f} s later" if not left else "server left")
    for server in left:  # not left running after the test either
        server.kill()
    assert not left, [server.cmdline() for server in left]
