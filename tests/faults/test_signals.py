"""Issue 12, item 3: SIGINT and SIGTERM stop a run at a batch boundary (checkpoint kept, lock released, one line,
exit 130/143); a run whose Prefect server is gone fails within a bounded time and lets go of its lock; a lock whose
process is gone from this host is reported dead and taken over. Real `docshift` processes, real signals."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta
from urllib.parse import urlparse

import pytest

from docshift.ledger import now
from tests.support.fingerprints import collection_fingerprint, fingerprint
from tests.support.orders import add_orders_migrations, expected_orders, seed_orders
from tests.support.paths import BIN
from tests.support.waiting import process_alive, wait_for_checkpoint

N, BATCH = 3000, 100


def start(env, *args, extra=None, drop=()) -> subprocess.Popen:
    """`docshift ARGS` in a session of its own (as a terminal's foreground job), stdout and stderr apart."""
    variables = {k: v for k, v in {**env.vars, **(extra or {})}.items() if k not in drop}
    return subprocess.Popen([str(BIN / "docshift"), *args], env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The process's output once it exits; one still running after `timeout` is killed (with its children) and fails."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in children(proc.pid):
            os.kill(child, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"still running {timeout} s later:\n{out[-2000:]}\n{err[-2000:]}") from None


def children(pid: int) -> list[int]:
    return [int(c) for t in os.listdir(f"/proc/{pid}/task") for c in open(f"/proc/{pid}/task/{t}/children").read().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"


@pytest.fixture(scope="module")
def own_prefect_home(tmp_path_factory):
    """PREFECT_HOME of the temporary servers the commands start themselves (not the session server's: one SQLite
    database per server); shared, so that only the first creates its database."""
    return {"PREFECT_HOME": str(tmp_path_factory.mktemp("own-prefect-home"))}


@pytest.fixture
def orders(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, N, seed=51)
    env.original = list(env.db.orders.find())
    return env


def stopped_cleanly(env, proc, sig, sent: float) -> str:
    """Assert what a stop at a batch boundary leaves; returns the run id."""
    out, err = finish(proc, 120)
    print(f"{signal.Signals(sig).name}: exit {proc.returncode} {time.monotonic() - sent:.1f} s after the signal")
    assert proc.returncode == 128 + sig, out + err
    [line] = err.splitlines()
    match = re.fullmatch(r"docshift: interrupted at ([\d,]+) of 3,000 documents \(apply 7 on orders\); "
                         r"`docshift migrate` resumes", line)
    assert match, line
    checkpoint = env.ledger.find_one({"_id": "checkpoint"})
    assert checkpoint["version"] == 7 and int(match[1].replace(",", "")) == checkpoint["done"] < N
    assert env.ledger.find_one({"_id": "lock"}) is None
    assert env.ledger.find_one({"_id": checkpoint["run_id"]})["outcome"] == "interrupted"
    return checkpoint["run_id"]


def resumes_exactly(env, run_id: str) -> None:
    """An immediate re-run (no lease to wait out) resumes the run and ends as an uninterrupted run would."""
    resumed = env.cli("migrate", "--batch-size", str(BATCH))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entry = env.ledger.find_one({"_id": run_id})
    assert entry["outcome"] == "applied" and entry["resumed"] == 1
    assert collection_fingerprint(env.db.orders, exact=False) == fingerprint(expected_orders(env.original, env.migrations, 8))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_at_a_batch_boundary_and_a_rerun_resumes_at_once(orders, sig):
    env = orders
    proc = start(env, "migrate", "--batch-size", str(BATCH))
    wait_for_checkpoint(env.db, 7, 1000, alive=lambda: process_alive(proc))
    sent = time.monotonic()
    os.kill(proc.pid, sig)

    run_id = stopped_cleanly(env, proc, sig, sent)

    status = env.cli("status")
    assert re.search(rf"unfinished run  {run_id}: up 7, interrupted at [\d,]+ of 3,000 documents", status.stdout)
    assert "lock            free" in status.stdout
    resumes_exactly(env, run_id)


def test_ctrl_c_in_a_terminal_without_a_prefect_server_stops_cleanly_too(orders, own_prefect_home):
    """Without PREFECT_API_URL the command starts a temporary Prefect server; the terminal's Ctrl-C goes to the
    whole foreground process group, so that server must not be in it, or the run could not record its stop."""
    env = orders
    proc = start(env, "migrate", "--batch-size", str(BATCH), extra=own_prefect_home,
                 drop=("PREFECT_API_URL",))
    wait_for_checkpoint(env.db, 7, 1000, alive=lambda: process_alive(proc))
    servers = children(proc.pid)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)

    run_id = stopped_cleanly(env, proc, signal.SIGINT, sent)

    assert servers and not [pid for pid in servers if alive(pid)]  # the temporary server was stopped, not left behind
    resumes_exactly(env, run_id)


def test_a_second_signal_stops_at_once_and_lets_go_of_the_lock(orders):
    env = orders
    path = env.migrations / "0007_order_state.py"
    fast = path.read_text()
    path.write_text(fast.replace("def up(doc):\n", "def up(doc):\n    import time; time.sleep(0.02)\n"))  # 2 s a batch
    # the pre-flight and the flow's own check run this `up` in memory too, on up to DOCSHIFT_PLAN_CHECK_DOCUMENTS
    # documents for each of migrations 7 and 8: 80 s of sleeping at the default 1,000, before the run starts
    proc = start(env, "migrate", "--batch-size", str(BATCH), extra={"DOCSHIFT_PLAN_CHECK_DOCUMENTS": "1"})
    done = wait_for_checkpoint(env.db, 7, BATCH, alive=lambda: process_alive(proc))["done"]
    while env.ledger.find_one({"_id": "checkpoint"})["done"] == done:  # a batch has just begun: 2 s to its end
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)

    out, err = finish(proc, 60)

    print(f"second SIGINT: exit {proc.returncode} {time.monotonic() - sent:.1f} s after it")
    assert proc.returncode == 130
    assert err.splitlines() == ["docshift: error: stopped at once by a second signal (SIGINT); the checkpoint is kept: "
                                "run the command again to resume"]
    assert env.ledger.find_one({"_id": "lock"}) is None
    run_id = env.ledger.find_one({"_id": "checkpoint"})["run_id"]
    path.write_text(fast)
    resumes_exactly(env, run_id)


def test_a_dead_temporary_prefect_server_fails_the_run_within_a_bounded_time(orders, own_prefect_home):
    env = orders
    proc = start(env, "migrate", "--batch-size", str(BATCH), extra=own_prefect_home,
                 drop=("PREFECT_API_URL",))
    wait_for_checkpoint(env.db, 7, 1000, alive=lambda: process_alive(proc))
    [server] = children(proc.pid)
    killed = time.monotonic()
    os.kill(server, signal.SIGKILL)

    out, err = finish(proc, 120)

    took = time.monotonic() - killed
    print(f"temporary server killed: exit {proc.returncode} {took:.1f} s later")
    assert proc.returncode == 1 and took < 30
    assert err.splitlines() == ["docshift: error: the temporary Prefect server exited (status -9): the run cannot report "
                                "to its orchestration, so it stopped; the checkpoint is kept: run `docshift migrate` again"]
    assert env.ledger.find_one({"_id": "lock"}) is None  # no longer renewed by anyone
    resumes_exactly(env, env.ledger.find_one({"_id": "checkpoint"})["run_id"])


class Proxy:
    """A TCP relay to the Prefect API that can be cut off: the API becomes unreachable while its server lives on."""

    def __init__(self, target: str):
        self.target = (urlparse(target).hostname, urlparse(target).port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:  # accepted as the cut happened: refuse it too
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        # shutdown first: close() alone leaves the listener open while the accept thread blocks in it, so the next
        # connection (a health check, a new API connection of the run) was still relayed
        self.is_cut = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_an_unreachable_prefect_api_fails_the_run_after_the_orchestration_timeout(orders, prefect_api):
    env = orders
    proxy = Proxy(prefect_api["PREFECT_API_URL"])
    proc = start(env, "migrate", "--batch-size", str(BATCH), extra={
        "PREFECT_API_URL": f"http://127.0.0.1:{proxy.port}/api", "DOCSHIFT_ORCHESTRATION_TIMEOUT_SECONDS": "5"})
    wait_for_checkpoint(env.db, 7, 1000, alive=lambda: process_alive(proc))
    cut = time.monotonic()
    proxy.cut()

    out, err = finish(proc, 180)

    took = time.monotonic() - cut
    print(f"API cut off: exit {proc.returncode} {took:.1f} s later")
    assert proc.returncode == 1 and took < 60
    [line] = err.splitlines()
    assert line.startswith(f"docshift: error: the Prefect API at http://127.0.0.1:{proxy.port}/api does not answer ("), line
    assert line.endswith("for 5 s: the run cannot report to its orchestration, so it stopped; the checkpoint is kept: "
                         "run `docshift migrate` again"), line
    assert env.ledger.find_one({"_id": "lock"}) is None
    resumes_exactly(env, env.ledger.find_one({"_id": "checkpoint"})["run_id"])


def test_a_lock_whose_process_is_gone_from_this_host_is_reported_dead_and_taken_over(orders):
    env = orders
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner = f"{socket.gethostname()}:{gone.pid}:flow-run 1234 migrate"
    env.ledger.insert_one({"_id": "lock", "owner": owner, "acquired_at": now(), "expires_at": now() + timedelta(hours=1)})

    status = env.cli("status")

    assert f"lock            {owner} until " in status.stdout
    assert "(dead: that process is gone from this host; the next run takes the lock over)" in status.stdout
    migrated = env.cli("migrate", "6")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert env.db.orders.count_documents({"schema_version": 6}) == N and env.ledger.find_one({"_id": "lock"}) is None

    living = f"{socket.gethostname()}:{os.getpid()}:flow-run 5678 migrate"  # this test's own process: alive
    env.ledger.insert_one({"_id": "lock", "owner": living, "acquired_at": now(), "expires_at": now() + timedelta(hours=1)})
    refused = env.cli("migrate")
    assert refused.returncode == 1 and "another migration run holds the lock" in refused.stderr and living in refused.stderr
    assert "(dead" not in env.cli("status").stdout
