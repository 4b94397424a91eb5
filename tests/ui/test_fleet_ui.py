"""A fleet run as an operator opens it in the Prefect UI: the `migrate-fleet` run lists its child `migrate` runs (one
per tenant database), and its `docshift-fleet` table names each database with its outcome."""

from playwright.sync_api import expect, sync_playwright

from tests.support.fleet import tenants
from tests.support.prefect_api import api_post
from tests.support.ui import (CHROMIUM_ARGS, SHOTS, WAIT_MS, artifact_card, open_artifacts_tab, open_tab, png_size,
                              shoot)


NAMES = ("fleet-run-subflows", "fleet-artifact")


def test_fleet_run_shows_its_child_runs_and_the_table_of_databases_in_chromium(env, prefect_api):
    for name in NAMES:  # the screenshots checked at the end must be this run's
        (SHOTS / f"{name}.png").unlink(missing_ok=True)
    with tenants(env, 3, 20) as fleet:
        run = env.cli("fleet", "migrate", "--databases", fleet.glob, "--concurrency", "3")
        assert run.returncode == 0, run.stdout + run.stderr
        api = prefect_api["PREFECT_API_URL"]
        ui = api.removesuffix("/api")
        [parent] = api_post(api, "/flow_runs/filter", {"flows": {"name": {"any_": ["migrate-fleet"]}},
                                                        "sort": "START_TIME_DESC", "limit": 1})
        children = api_post(api, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}})
        assert sorted(c["parameters"]["database"] for c in children) == fleet.names

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1920, "height": 1080})

                open_tab(page, ui, parent["id"], "Subflow Runs")
                for child in children:
                    expect(page.get_by_role("link", name=child["name"])).to_be_visible(timeout=WAIT_MS)
                shoot(page, "fleet-run-subflows")

                open_artifacts_tab(page, ui, parent["id"])
                card = artifact_card(page, "table")
                expect(card).to_contain_text("docshift-fleet", timeout=WAIT_MS)
                card.click(timeout=WAIT_MS)
                table = page.locator("table")
                expect(table.locator("tbody tr")).to_have_count(3, timeout=WAIT_MS)
                rows = {r.locator("td").first.inner_text().strip(): r.inner_text()
                        for r in table.locator("tbody tr").all()}
                assert sorted(rows) == fleet.names and all("migrated" in text for text in rows.values())
                shoot(page, "fleet-artifact")
            finally:
                browser.close()

    for name in NAMES:
        path = SHOTS / f"{name}.png"
        assert png_size(path)[0] == 1920 and path.stat().st_size > 20_000, path
