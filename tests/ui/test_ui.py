"""The Prefect UI as a person sees it: headless Debian chromium, driven by Playwright, on the session's Prefect server."""

import re

from playwright.sync_api import expect, sync_playwright

from docshift.demo import seed_users
from tests.support.prefect_api import api_get, api_post
from tests.support.ui import CHROMIUM_ARGS, SHOTS, WAIT_MS, artifact_card, open_artifacts_tab, png_size, shoot

NAMES = ("migrate-run-artifacts", "migrate-report", "apply-3-run-artifacts", "apply-3-progress")


def test_flow_run_artifacts_render_report_and_progress_in_chromium(env, prefect_api):
    """What an operator opens after a run: the report table on the migrate run, 100% progress on each subflow run."""
    for name in NAMES:  # the screenshots checked at the end must be this run's (other UI tests keep theirs)
        (SHOTS / f"{name}.png").unlink(missing_ok=True)
    seed_users(env.db, 2000, seed=21)
    migrated = env.cli("migrate", "3", "--batch-size", "200")
    assert migrated.returncode == 0, migrated.stderr
    api = prefect_api["PREFECT_API_URL"]
    ui = api.removesuffix("/api")
    reports = [r for r in api_post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["docshift-report"]}}})
               if f"docshift: {env.database} " in r["data"]]
    assert len(reports) == 1
    parent_id = reports[0]["flow_run_id"]
    assert api_get(api, f"/flow_runs/{parent_id}")["state_type"] == "COMPLETED"
    history = {e["version"]: e for e in env.ledger.find({"kind": "history"})}
    assert sorted(history) == [2, 3]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})

            open_artifacts_tab(page, ui, parent_id)
            card = artifact_card(page, "markdown")
            expect(card).to_contain_text("docshift-report", timeout=WAIT_MS)
            shoot(page, "migrate-run-artifacts")
            card.click(timeout=WAIT_MS)
            heading = page.get_by_role("heading", name=f"docshift: {env.database} from version 1 to 3")
            expect(heading).to_be_visible(timeout=WAIT_MS)
            table = page.locator("table")
            expect(table.locator("tbody tr")).to_have_count(2, timeout=WAIT_MS)
            assert [h.strip() for h in table.locator("th").all_inner_texts()] == [
                "migration", "direction", "collection", "documents", "changed", "quarantined", "duration (s)", "docs/s",
                "backup", "verification"]
            rows = [[c.strip() for c in row.locator("td").all_inner_texts()] for row in table.locator("tbody tr").all()]
            assert rows == [[str(v), "up", "users", "2000", "2000", "0", str(e["duration_s"]), f"{e['docs_per_s']:,.0f}",
                             e["backup"], "passed"] for v, e in sorted(history.items())]
            shoot(page, "migrate-report")

            open_artifacts_tab(page, ui, history[3]["flow_run_id"])
            expect(page.locator(".flow-run-parent-flow-run a")).to_have_attribute("href", f"/runs/flow-run/{parent_id}",
                                                                                 timeout=WAIT_MS)
            card = artifact_card(page, "progress")
            expect(card).to_contain_text("apply 3 on users: 100%", timeout=WAIT_MS)
            expect(artifact_card(page, "table")).to_contain_text("Verification of apply 3 on users: passed",
                                                                 timeout=WAIT_MS)
            shoot(page, "apply-3-run-artifacts")
            card.click(timeout=WAIT_MS)
            expect(page.locator(".artifact-data-progress")).to_have_text(re.compile(r"^\s*Progress: 100%\s*$"),
                                                                          timeout=WAIT_MS)
            description = re.compile(r"^apply 3 on users: 100%, 2,000 of 2,000 documents, [1-9][\d,]* docs/s, ETA 0 s$")
            expect(page.get_by_text(description)).to_be_visible(timeout=WAIT_MS)
            shoot(page, "apply-3-progress")
        finally:
            browser.close()

    for name in NAMES:
        path = SHOTS / f"{name}.png"
        assert png_size(path)[0] == 1920 and png_size(path)[1] >= 1080 and path.stat().st_size > 20_000, path
