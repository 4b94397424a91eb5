"""Driving the Prefect UI in tests: headless Debian chromium through Playwright, screenshots in test-output/ui."""

import re
import struct

from playwright.sync_api import expect

from .paths import ROOT

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


def open_tab(page, ui: str, flow_run_id: str, name: str) -> None:
    """Open a flow run's tab by clicking it, as a person does (the UI may fall back from `?tab=` while it loads)."""
    page.goto(f"{ui}/runs/flow-run/{flow_run_id}", timeout=WAIT_MS)
    tab = page.locator("li.p-tab", has_text=name)
    tab.click(timeout=WAIT_MS)
    expect(tab).to_have_class(re.compile(r"\bp-tab__active\b"), timeout=WAIT_MS)
