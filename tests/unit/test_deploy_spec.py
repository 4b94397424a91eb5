"""What `docshift deploy` declares, without a server: names, entrypoints in the installed package, schedules, and the
checkout's prefect.yaml, which is `docshift deploy --prefect-yaml` of the seed migrations."""

import shutil

import pytest

from docshift.deployments.deploy import Owner, deployment_name, render_prefect_yaml, runner_deployment, wanted_deployments
from docshift.errors import DeployError
from docshift.loader import ScriptDirectory
from docshift.settings import Settings, read_toml_table
from tests.support.paths import ROOT, SEED_MIGRATIONS

SETTINGS = Settings(_env_file=None, database="app", timezone="UTC", project="shop")


def by_name(wanted):
    return {w.full_name: w for w in wanted}


def test_the_seed_migrations_make_migrate_fleets_rollback_verify_inspect_and_four_phases_named_after_the_project():
    wanted = by_name(wanted_deployments(ScriptDirectory.load(SEED_MIGRATIONS), SETTINGS))
    assert sorted(wanted) == sorted(["migrate/shop", "migrate-fleet/shop", "rollback-fleet/shop", "rollback/shop",
                                     "verify/shop", "inspect/shop",
                                     *(f"{p}/shop-users-email-address" for p in ("expand", "backfill", "contract", "cleanup"))])
    assert deployment_name("migrate-fleet", "shop") == "migrate-fleet/shop"
    backfill = wanted["backfill/shop-users-email-address"]
    assert (backfill.flow.name, backfill.name) == ("backfill", "shop-users-email-address")
    assert backfill.parameters == {"version": 5, "window_minutes": 120}  # not on the schedule: see phase_deployments
    assert (backfill.schedule.when, backfill.schedule.timezone) == ("FREQ=WEEKLY;BYDAY=TU,WE,TH;BYHOUR=1;BYMINUTE=0",
                                                                    "Europe/Berlin")
    assert wanted["verify/shop"].schedule.timezone == "UTC"
    d = runner_deployment(backfill, SETTINGS, {})
    assert d.entrypoint == "docshift.flows.phases.backfill" and d.concurrency_limit == 1
    assert set(d.tags) == {"docshift", "db:app", "project:shop"}
    # a fleet's child runs go to this project's migrate deployment, many at once (the per-database lock guards each)
    fleet = wanted["migrate-fleet/shop"]
    assert fleet.parameters["fleet"]["deployment"] == "migrate/shop" and fleet.schedule.when == "0 2 * * 6"
    undo = wanted["rollback-fleet/shop"]
    assert undo.parameters["fleet"]["deployment"] == "migrate/shop" and undo.schedule is None
    assert runner_deployment(undo, SETTINGS, {}).entrypoint == "docshift.flows.fleet_rollback.rollback_fleet"
    assert runner_deployment(wanted["migrate/shop"], SETTINGS, {}).concurrency_limit is None


def test_phase_deployments_are_named_after_the_migration_file_unless_it_names_them(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(SEED_MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    source = (folder / "0005_rename_email.py").read_text().replace('name="users-email-address", ', "")
    (folder / "0005_rename_email.py").write_text(source)
    wanted = by_name(wanted_deployments(ScriptDirectory.load(folder), SETTINGS))
    assert "cleanup/shop-users-rename-email" in wanted
    (folder / "0006_rename_email.py").write_text(source.replace("version=5", "version=6"))
    with pytest.raises(DeployError, match="0006_rename_email.py and 0005_rename_email.py both make the deployment "
                                          "expand/shop-users-rename-email"):
        wanted_deployments(ScriptDirectory.load(folder), SETTINGS)


def test_a_schedule_prefect_refuses_is_one_error_naming_the_file(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(SEED_MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "0005_rename_email.py"
    path.write_text(path.read_text().replace('contract_schedule="30 3 * * 5"', 'contract_schedule="30 27 * * 5"'))
    contract = by_name(wanted_deployments(ScriptDirectory.load(folder), SETTINGS))["contract/shop-users-email-address"]
    with pytest.raises(DeployError, match="0005_rename_email.py: the schedule '30 27 \\* \\* 5' of contract/shop-users-email-address"):
        runner_deployment(contract, SETTINGS, {})


def test_the_checkouts_prefect_yaml_is_what_docshift_deploy_writes_for_the_seed_migrations():
    # the checkout pins its project name (pyproject.toml, [tool.docshift]): CI clones it into any folder
    project = read_toml_table(ROOT / "pyproject.toml")["project"]
    assert project == "docshift-demo"
    settings = Settings(_env_file=None, project=project)
    wanted = wanted_deployments(ScriptDirectory.load(SEED_MIGRATIONS), settings)
    assert (ROOT / "prefect.yaml").read_text() == render_prefect_yaml(wanted, settings), \
        "regenerate it: .venv/bin/docshift deploy --prefect-yaml prefect.yaml"


@pytest.mark.parametrize("theirs, same", [
    (Owner("shop", "/srv/shop", "shop"), True),
    (Owner("shop", None, None), True),  # `prefect deploy` of the project's prefect.yaml: no folder in it
    (Owner("shop", "/home/ci/shop", "shop"), True),  # the same project, deployed from another checkout
    (Owner("shop", "/srv/shop", "shop_v2"), True),  # the same folder, its settings now name another database
    (Owner("shop", "/srv/other/shop", "other"), False),  # only the name (of the folder) in common
    (Owner("billing", "/srv/shop", "shop"), False),
    (Owner(None, "/srv/shop", "shop"), True),  # this folder's, made by docshift before projects: stale, pruned
    (Owner(None, "/srv/other", "shop"), False),
    (Owner(None, None, None), False),  # made by hand
])
def test_a_deployment_is_this_projects_by_its_project_tag_and_its_folder_or_database(theirs, same):
    assert theirs.same_project(Owner("shop", "/srv/shop", "shop")) is same
