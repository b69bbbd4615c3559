"""The report as its reader sees it: rendered by headless Chromium (Debian's `chromium`,
installed here if missing), a page of the right size with the report on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from navigator.report import make_report
from tests.test_report import NOVEMBER, a_week_of_the_desk

# What works in a container without a display, a GPU, a sandbox or the internet; a
# fresh profile each time.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
WIDTH, HEIGHT = 1100, 1600


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path; installed with apt-get when missing (root, Debian's archive
    reachable); the test is skipped, saying why, where that cannot be done."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("Chromium is not installed, and installing it needs apt-get as root "
                    "(apt-get install chromium)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    result = subprocess.run(install, capture_output=True, text=True, env=environment,
                            timeout=1200)
    if result.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=environment,
                       timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=environment,
                                timeout=1200)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"Chromium could not be installed: {result.stderr.strip()[-300:]}")
    return found


def screenshot(chromium: str, page: Path, image: Path, profile: Path) -> None:
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={image}", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert image.exists(), f"no screenshot: {result.stderr[-500:]}"


@pytest.fixture
def report_page(database_url, shipped_flows, shipped_knowledge, tmp_path) -> Path:
    page = tmp_path / "report.html"
    store = a_week_of_the_desk(database_url, shipped_flows, shipped_knowledge)
    make_report(store, NOVEMBER, datetime(2026, 12, 1, tzinfo=UTC), html=page)
    store.close()
    return page


def test_chromium_renders_the_report_as_a_full_page_with_text_and_charts(
        chromium, report_page, tmp_path):
    image_path = tmp_path / "report.png"
    screenshot(chromium, report_page, image_path, tmp_path / "profile")
    image = Image.open(image_path).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT)
    assert len(colours) > 50, "text and charts, not a blank or one-colour page"
    dark = sum(count for count, (r, g, b) in colours if r + g + b < 200)
    assert dark > WIDTH * HEIGHT * 0.005, "dark text on the page"
    # The headline's blue rule and cards are drawn across the page's width.
    title_band = image.crop((0, 0, WIDTH, 200)).getcolors(maxcolors=WIDTH * 200)
    assert any(r + g + b < 200 for _, (r, g, b) in title_band), "the title is on top"
