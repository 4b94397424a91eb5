"""docshift in a user's own repository, end to end, with nothing of the checkout on the path.

docshift's wheel is built and installed into a fresh virtual environment; in an empty folder that environment's
`docshift` starts a project (`init`), writes migrations of its own on its own collection (a transformative one, a
unique index, an expand-contract change), migrates FerretDB,
makes the Prefect deployments (`deploy`), and a worker from that environment runs the expand-contract phases
through `prefect deployment run --watch`. Select it with `-m own_project`.

The fresh environment gets docshift from the wheel alone (`pip install --no-deps --no-index`); its dependencies
(Prefect, pymongo, …) are the project .venv's site-packages, added by a .pth file: building and installing work
offline and take seconds. .pth lines are not processed recursively, so .venv's editable docshift is not seen.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pymongo
import pytest

from tests.support.paths import ROOT
from tests.support.prefect_api import stop_worker

pytestmark = pytest.mark.own_project

PRODUCTS = 300


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with docshift installed from its wheel, built from a copy of the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # building writes build/ and *.egg-info: not into the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "__pycache__", "*.egg-info", "build", "backups", "test-output", "tests", "benchmarks"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(work / "dist"), str(source)])
    [wheel] = (work / "dist").glob("docshift-*.whl")
    target = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(target)])
    site = Path(run([str(target / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "docshift-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--no-deps", "--no-index",
         "-q", str(wheel)])
    return target


def run(args: list[str], **kwargs) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300), **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def project(venv, mongodb_uri, prefect_api, tmp_path_factory):
    """An empty folder and the environment a user's shell would have: the venv's bin first, no DOCSHIFT_* variable,
    nothing on PYTHONPATH; the Prefect server of the session."""
    folder = tmp_path_factory.mktemp("shop")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DOCSHIFT_", "PYTHON", "VIRTUAL_ENV"))}
    environment.update(prefect_api, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", COLUMNS="200",
                       PREFECT_LOGGING_LEVEL="WARNING", PREFECT_WORKER_QUERY_SECONDS="2")
    database = f"shop_{uuid.uuid4().hex[:8]}"
    yield folder, environment, database
    pymongo.MongoClient(mongodb_uri).drop_database(database)


def docshift(project, *args: str, extra: dict | None = None) -> str:
    folder, environment, _ = project
    return run(["docshift", *args], cwd=folder, env={**environment, **(extra or {})})


def prefect(project, *args: str, timeout: float = 300) -> str:
    folder, environment, _ = project
    return run(["python", "-m", "prefect", *args], cwd=folder, env=environment, timeout=timeout)


MIGRATION_2 = '''
    """Version 2: SKUs in upper case, without spaces (so that version 3 can make them unique)."""

    from pydantic import BaseModel, ConfigDict

    import docshift


    class ProductsV2(BaseModel):
        model_config = ConfigDict(extra="allow")
        sku: str


    def up(doc: dict) -> dict:
        doc["sku"] = doc["sku"].strip().upper()
        return doc


    def down(doc: dict, pre_image: dict | None) -> dict:
        return docshift.restore_from(doc, pre_image, "sku")


    migration = docshift.Migration(version=2, description="normalize sku", collection="products", kind="transformative",
                                   up=up, down=down, target_model=ProductsV2)
'''

MIGRATION_3 = '''
    """Version 3: one product per SKU (a collection-level step: `down` drops the index)."""

    import docshift

    migration = docshift.Migration(version=3, description="unique sku", collection="products",
                                   operation=docshift.CreateIndex(keys=[("sku", 1)], unique=True))  # no kind: no document changes
'''

MIGRATION_4 = '''
    """Version 4: `price` (a float) becomes `price_cents` (an integer), without downtime."""

    from pydantic import BaseModel, ConfigDict

    import docshift


    class ProductsV4(BaseModel):
        model_config = ConfigDict(extra="allow")
        price_cents: int


    def backfill(doc: dict) -> dict:
        doc["price_cents"] = round(doc["price"] * 100)
        return doc


    def up(doc: dict) -> dict:
        backfill(doc)
        del doc["price"]
        return doc


    def down(doc: dict, pre_image: dict | None) -> dict:
        return docshift.restore_from(doc, pre_image, "price", "price_cents")


    migration = docshift.Migration(
        version=4, description="price in cents", collection="products", kind="transformative", up=up, down=down,
        target_model=ProductsV4,
        expand_contract=docshift.ExpandContract(
            backfill=backfill, removes=("price",), timezone="Europe/Berlin",
            backfill_schedule="FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1;BYMINUTE=0", cleanup_schedule=None,
        ),
    )
'''


def api(project, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(f"{project[1]['PREFECT_API_URL']}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or "null")


def test_a_project_of_its_own_from_init_to_the_phases_run_by_a_worker(venv, project, mongodb_uri):
    folder, environment, database = project
    where = json.loads(run(["python", "-c", "import docshift, sys, json; print(json.dumps([docshift.__file__, sys.path]))"],
                           cwd=folder, env=environment))
    assert Path(where[0]).is_relative_to(venv)
    assert [p for p in where[1] if p and Path(p).resolve().is_relative_to(ROOT) and ".venv" not in Path(p).parts] == []

    pool = f"shop-{database[-8:]}"
    docshift(project, "--uri", mongodb_uri, "--database", database, "init", extra={"DOCSHIFT_WORK_POOL": pool})
    name = folder.name  # the project: init names it after its folder (`shop0`)
    assert f'project = "{name}"' in (folder / "docshift.toml").read_text()
    with open(folder / "docshift.toml", "a") as settings:
        settings.write("soak_seconds = 0  # cleanup may follow contract at once (a test)\n")
    assert "created" in docshift(project, "new", "normalize sku", "--collection", "products", "--kind", "transformative")
    (folder / "migrations" / "0002_normalize_sku.py").write_text(textwrap.dedent(MIGRATION_2).lstrip())
    (folder / "migrations" / "0003_unique_sku.py").write_text(textwrap.dedent(MIGRATION_3).lstrip())
    (folder / "migrations" / "0004_price_in_cents.py").write_text(textwrap.dedent(MIGRATION_4).lstrip())
    (folder / "migrations" / "0005_tags_to_labels.py").write_text(  # deployed once, then removed: reported stale
        textwrap.dedent(MIGRATION_4).lstrip().replace("version=4", "version=5").replace('removes=("price",)', 'removes=("tags",)'))

    db = pymongo.MongoClient(mongodb_uri)[database]
    db.products.insert_many([{"_id": i, "sku": f" ab-{i} ", "price": i + 0.99} for i in range(PRODUCTS)])
    docshift(project, "migrate", "3")
    assert db.products.count_documents({"schema_version": 2, "sku": "AB-7"}) == 1
    [unique] = [i for i in db.products.index_information().values() if i["key"] == [("sku", 1)]]
    assert unique.get("unique") is True
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        db.products.insert_one({"_id": "copy", "sku": "AB-7", "price": 1.0})

    deployed = docshift(project, "deploy")
    assert f"work pool {pool} (created, process type)" in deployed
    assert f"created   backfill/{name}-products-price-in-cents" in deployed
    assert f"created   cleanup/{name}-products-tags-to-labels" in deployed and f"created   migrate/{name}" in deployed
    backfill = api(project, "GET", f"/deployments/name/backfill/{name}-products-price-in-cents")
    assert set(backfill["tags"]) == {"docshift", f"db:{database}", f"project:{name}"}
    assert backfill["entrypoint"] == "docshift.flows.phases.backfill"
    assert backfill["job_variables"] == {"working_dir": str(folder), "env": {
        "DOCSHIFT_DATABASE": database, "DOCSHIFT_MIGRATIONS_DIR": str(folder / "migrations"),
        "DOCSHIFT_BACKUP_DIR": str(folder / "backups")}}
    [window] = backfill["schedules"]
    assert window["active"] is False and window["schedule"]["timezone"] == "Europe/Berlin"
    assert api(project, "GET", f"/deployments/name/cleanup/{name}-products-price-in-cents")["schedules"] == []

    # the worker knows only the Prefect server: the deployment says where, the project's settings file the URI
    worker = subprocess.Popen(["python", "-m", "prefect", "worker", "start", "--pool", pool], cwd="/", env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for phase, *params in (("expand",), ("backfill", "batch_size=50"), ("contract",), ("cleanup", "approved=true")):
            args = [a for p in params for a in ("--param", p)]
            prefect(project, "deployment", "run", f"{phase}/{name}-products-price-in-cents", *args, "--watch",
                    "--watch-timeout", "240")
    finally:
        output = stop_worker(worker)
    assert db.products.count_documents({"price_cents": {"$exists": True}, "price": {"$exists": False},
                                        "schema_version": 4}) == PRODUCTS, output[-3000:]
    assert db.products.find_one({"_id": 7})["price_cents"] == 799
    assert set(db["_migrations"].find_one({"_id": "phases:4"})) >= {"expand", "backfill", "contract", "cleanup"}
    assert db["_migrations"].find_one({"_id": "current"})["version"] == 4

    # a resumed schedule stays resumed, an unchanged deployment is not written, a removed migration's are reported
    api(project, "PATCH", f"/deployments/{backfill['id']}/schedules/{window['id']}", {"active": True})
    (folder / "migrations" / "0005_tags_to_labels.py").unlink()
    again = docshift(project, "deploy")
    assert f"unchanged backfill/{name}-products-price-in-cents" in again and "created" not in again and "updated" not in again
    assert f"stale     expand/{name}-products-tags-to-labels" in again
    assert api(project, "GET", f"/deployments/name/backfill/{name}-products-price-in-cents")["schedules"][0]["active"] is True
    assert f"deleted   cleanup/{name}-products-tags-to-labels" in docshift(project, "deploy", "--prune")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        api(project, "GET", f"/deployments/name/cleanup/{name}-products-tags-to-labels")
