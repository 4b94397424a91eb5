"""The Prefect server as the tests read it (its REST API) and drive it (the `prefect` command, deployments)."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from .paths import BIN, ROOT


def api_get(api: str, path: str):
    return json.loads(_call(urllib.request.Request(f"{api}{path}")))


def api_post(api: str, path: str, body: dict):
    return json.loads(_call(urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), method="POST",
                                                   headers={"Content-Type": "application/json"})))


def api_delete(api: str, path: str) -> None:
    _call(urllib.request.Request(f"{api}{path}", method="DELETE"))


def _call(request: urllib.request.Request, attempts: int = 5) -> bytes:
    """The response body; a 503 (the Prefect server's database busy under the suite's load) is asked again, so that
    a fixture's clean-up does not leave automations behind for the next test on the same server."""
    for attempt in range(1, attempts):
        try:
            return _body(request)
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            time.sleep(0.5 * attempt)
    return _body(request)


def _body(request: urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def flow_run_state(api: str, flow_run_id: str) -> str:
    return api_get(api, f"/flow_runs/{flow_run_id}")["state"]["type"]


def prefect_logs(api: str) -> str:
    """Every log line the Prefect server holds (flow and task runs of the whole session), up to 200."""
    return " ".join(entry["message"] for entry in api_post(api, "/logs/filter", {"limit": 200}))


def paused_cleanup_run(api: str, timeout: float = 120) -> str:
    """The id of the cleanup flow run now waiting for approval: paused, and its approval form saved. Prefect sets the
    run PAUSED before it saves the form's schema; a resume in between is rejected ("Run input schema not found")."""
    deadline = time.monotonic() + timeout
    query = {"flows": {"name": {"any_": ["cleanup"]}}, "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
             "sort": "EXPECTED_START_TIME_DESC", "limit": 1}
    while time.monotonic() < deadline:
        if (runs := api_post(api, "/flow_runs/filter", query)) and _form_saved(api, runs[0]):
            return runs[0]["id"]
        time.sleep(0.5)
    raise AssertionError("no cleanup run paused for approval")


def _form_saved(api: str, run: dict) -> bool:
    key = run["state"]["state_details"]["run_input_keyset"]["schema"]
    try:
        _call(urllib.request.Request(f"{api}/flow_runs/{run['id']}/input/{key}"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise
    return True


def resume(api: str, run_id: str, run_input: dict) -> None:
    result = api_post(api, f"/flow_runs/{run_id}/resume", {"run_input": run_input})
    assert result["status"] == "ACCEPT", result


def remove_automations(api: str, names=None) -> None:
    """Leave the shared Prefect server without docshift's automations (the zombie one would crash later long runs)."""
    for automation in api_post(api, "/automations/filter", {}):
        if (automation["name"] in names) if names else (automation["name"].startswith("docshift:")
                                                          or automation["name"] == "Crash zombie flows"):
            api_delete(api, f"/automations/{automation['id']}")


def prefect(variables: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The `prefect` command in the project folder (where prefect.yaml is)."""
    return subprocess.run([str(BIN / "prefect"), *args], env=variables, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def deploy_all(variables: dict) -> None:
    """The process work pool of prefect.yaml and `prefect deploy --all` of its deployments."""
    pool = prefect(variables, "work-pool", "create", "docshift", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = prefect(variables, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def start_worker(variables: dict, output=subprocess.DEVNULL, pool: str = "docshift",
                 *options: str) -> subprocess.Popen:
    """A process worker of the pool (`options`: more `prefect worker start` flags, e.g. `--name`, `--limit`), in a
    session of its own (to kill it with the runs it started)."""
    return subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool, *options], env=variables,
                            cwd="/", stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_deployment(variables: dict, name: str, *params: str) -> subprocess.CompletedProcess:
    """`prefect deployment run NAME --param … --watch`: exits 0 only if the flow run completed."""
    args = [a for p in params for a in ("--param", p)]
    result = prefect(variables, "deployment", "run", name, *args, "--watch", "--watch-timeout", "240", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def stop_worker(process: subprocess.Popen, grace: float = 20) -> str:
    """Stop a worker this test started: SIGTERM (Prefect's worker then waits for the runs it started to end), and
    after `grace` seconds SIGKILL to its whole session; returns its output. Under the load of a parallel suite a
    worker has taken more than a minute to stop after its last run completed; that is not what a test checks."""
    process.terminate()
    try:
        return process.communicate(timeout=grace)[0] or ""
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate(timeout=30)[0] or ""
