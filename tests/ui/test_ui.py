"""The Prefect UI as a person sees it: headless Debian chromium, driven by Playwright, on the session's Prefect server."""

import re
import shutil
import struct

from playwright.sync_api import expect, sync_playwright

from docshift.demo import seed_users
from tests.support.paths import ROOT
from tests.support.prefect_api import api_get, api_post

SHOTS = ROOT / "test-output" / "ui"
WAIT_MS = 60_000  # the machine is small and shared: the UI may take long to draw
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def open_artifacts_tab(page, ui: str, flow_run_id: str) -> None:
    """Open a flow run's Artifacts tab.

    Prefect 3.9.1's UI hides that tab until the run has loaded and meanwhile falls back from `?tab=Artifacts`
    to Logs, so the tab is clicked as a person would.
    """
    page.goto(f"{ui}/runs/flow-run/{flow_run_id}?tab=Artifacts", timeout=WAIT_MS)
    tab = page.locator("li.p-tab", has_text="Artifacts")
    tab.click(timeout=WAIT_MS)
    expect(tab).to_have_class(re.compile(r"\bp-tab__active\b"), timeout=WAIT_MS)


def artifact_card(page, kind: str):
    return page.locator(".artifact-card").filter(has=page.locator(".artifact-card__subheader", has_text=kind))


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (fails if the file is not a PNG)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_flow_run_artifacts_render_report_and_progress_in_chromium(env, prefect_api):
    """What an operator opens after a run: the report table on the migrate run, 100% progress on each subflow run."""
    shutil.rmtree(SHOTS, ignore_errors=True)  # the screenshots checked at the end must be this run's
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

    for name in ("migrate-run-artifacts", "migrate-report", "apply-3-run-artifacts", "apply-3-progress"):
        path = SHOTS / f"{name}.png"
        assert png_size(path)[0] == 1920 and png_size(path)[1] >= 1080 and path.stat().st_size > 20_000, path
