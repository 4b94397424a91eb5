"""Two projects deploy to one Prefect server (the session's): each its own deployments, named after its project;
neither overwrites, reports or prunes the other's. Two folders of the same name (two services' checkouts called
`shop`) get the same default project name: the second `docshift deploy` is refused, naming the first project and
its folder, and writes nothing.

`docshift deploy` runs in this process (`invoke`, as `env.cli` does) in each project's folder; it needs no database.
"""

import os
import shutil
import urllib.error
import uuid
from pathlib import Path

import pytest

from docshift.deployments.deploy import deployment_name
from tests.support.env import CLI_ENV, invoke
from tests.support.paths import SEED_MIGRATIONS
from tests.support.prefect_api import api_delete, api_get, api_post

PHASES = ("expand", "backfill", "contract", "cleanup")


def make_project(folder: Path, database: str) -> Path:
    """A user's project: docshift.toml (no project: it is named after the folder) and the seed migrations."""
    folder.mkdir(parents=True)
    shutil.copytree(SEED_MIGRATIONS, folder / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "docshift.toml").write_text(f'database = "{database}"\n')
    return folder


def deploy(folder: Path, monkeypatch, *args: str):
    monkeypatch.chdir(folder)
    return invoke(["deploy", *args], CLI_ENV)


def names(project: str) -> list[str]:
    return [deployment_name(flow, project) for flow in ("migrate", "rollback", "verify")] + \
           [deployment_name(phase, project, "users-email-address") for phase in PHASES]


def deployments(api: str, full_names: list[str]) -> dict[str, dict | None]:
    """The deployments of these names as the server has them (None: not there)."""
    found = {}
    for name in full_names:
        try:
            found[name] = api_get(api, f"/deployments/name/{name}")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc
            found[name] = None
    return found


@pytest.fixture
def api(prefect_api, monkeypatch):
    """The session's Prefect server, with no DOCSHIFT_* setting in force but the projects' own files; the test's
    deployments are deleted after it."""
    for name in [n for n in os.environ if n.startswith("DOCSHIFT_")]:
        monkeypatch.delenv(name)
    tag = f"shop{uuid.uuid4().hex[:6]}"
    yield prefect_api["PREFECT_API_URL"], tag
    for d in api_post(prefect_api["PREFECT_API_URL"], "/deployments/filter", {}):
        if any(t.startswith(f"project:{tag}") for t in d["tags"]):
            api_delete(prefect_api["PREFECT_API_URL"], f"/deployments/{d['id']}")


def test_two_projects_on_one_server_keep_their_own_deployments(api, tmp_path, monkeypatch):
    url, shop = api
    first = make_project(tmp_path / "team-a" / shop, f"{shop}_a")
    second = make_project(tmp_path / "team-b" / shop, f"{shop}_b")

    deployed = deploy(first, monkeypatch)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert all(f"created   {name}" in deployed.stdout for name in names(shop)), deployed.stdout
    before = deployments(url, names(shop))
    assert {d["job_variables"]["working_dir"] for d in before.values()} == {str(first)}
    assert all(f"project:{shop}" in d["tags"] for d in before.values())

    # a folder of the same name, so the same default project name: refused, naming the project and its folder
    refused = deploy(second, monkeypatch)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"docshift: error: the deployment migrate/{shop} belongs to the project {shop} (folder {first}, database "
        f"{shop}_a), not to this project {shop} ({second}): set `project` (DOCSHIFT_PROJECT) to a name of this "
        f"project's own; nothing was written\n")
    assert deployments(url, names(shop)) == before  # not one field written, not even `updated`

    # named apart, the second project deploys beside the first, which stays as it was
    with open(second / "docshift.toml", "a") as settings:
        settings.write(f'project = "{shop}-b"\n')
    beside = deploy(second, monkeypatch)
    assert beside.returncode == 0, beside.stdout + beside.stderr
    assert all(f"created   {name}" in beside.stdout for name in names(f"{shop}-b")), beside.stdout
    assert "stale" not in beside.stdout  # the first project's deployments are not this one's to report
    assert {d["job_variables"]["env"]["DOCSHIFT_DATABASE"] for d in deployments(url, names(f"{shop}-b")).values()} \
        == {f"{shop}_b"}
    assert deployments(url, names(shop)) == before

    # the first project drops its expand-contract change: its own phases are stale and pruned, the second's stay
    (first / "migrations" / "0005_rename_email.py").unlink()
    report = deploy(first, monkeypatch)
    assert report.returncode == 0, report.stdout + report.stderr
    stale = sorted(line.split()[1].rstrip(":") for line in report.stdout.splitlines() if line.startswith("stale"))
    assert stale == sorted(deployment_name(phase, shop, "users-email-address") for phase in PHASES)
    pruned = deploy(first, monkeypatch, "--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert sorted(line.split()[1] for line in pruned.stdout.splitlines() if line.startswith("deleted")) == stale
    after = deployments(url, names(shop))
    assert sorted(name for name, d in after.items() if d is None) == stale
    assert all(d is not None for d in deployments(url, names(f"{shop}-b")).values())
    again = deploy(second, monkeypatch)
    assert again.returncode == 0 and "created" not in again.stdout and "deleted" not in again.stdout, again.stdout
