"""The documentation site in a real browser: Debian's Chromium driven by Playwright.

The test command builds the site once (scripts/docs.sh, warnings as errors) before
the suites; this test opens that build, so the five suites do not rebuild it. Run
on its own, it builds the site itself when the build is missing or older than its
sources. It checks what a reader sees: the landing page, navigation into the
reference, a setting with its default, and a subcommand's options printed from the
command's own parser.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILD = DOCS / "_build" / "html"
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.browser


def _newest_source_mtime() -> float:
    # Pages, configuration and the docstrings autodoc reads; not images, which other
    # tests rewrite (the admin's screenshots) without changing any page.
    sources = [path for path in DOCS.rglob("*.md") if "_build" not in path.parts]
    sources += list(DOCS.glob("*.py")) + list(DOCS.glob("_ext/*.py"))
    sources += list((ROOT / "django_apscheduler").rglob("*.py"))
    return max(path.stat().st_mtime for path in sources)


def _required(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site() -> Path:
    index = BUILD / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source_mtime():
        try:
            import sphinx  # noqa: F401
        except ImportError:
            _required("the documentation site is not built and Sphinx is missing (pip install -e '.[docs]')")
        # The strict build (-W -n) is scripts/docs.sh's job; here only the pages matter.
        subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(DOCS), str(BUILD)], check=True, cwd=ROOT)
    return BUILD


@pytest.fixture(scope="module")
def page():
    if shutil.which(CHROMIUM) is None:
        _required(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        yield browser.new_page()
        browser.close()


def test_index_leads_to_the_reference(site, page):
    page.goto((site / "index.html").as_uri())
    assert "django-apscheduler" in page.title()
    main = page.locator("article")
    for kind in ("Tutorial", "How-to guides", "Reference", "Explanation"):
        assert main.get_by_role("link", name=kind).first.is_visible()

    # Following links reaches a reference page that the build checks against the code.
    main.get_by_role("link", name="Reference").first.click()
    page.wait_for_url("**/reference/index.html")
    page.locator("article").get_by_role("link", name="Settings", exact=True).click()
    page.wait_for_url("**/reference/settings.html")
    table = page.locator("article table").first
    row = table.locator("tr", has_text="APSCHEDULER_HEARTBEAT_TIMEOUT")
    assert row.count() == 1
    assert "30.0" in row.inner_text()
    assert "Lost!" in row.inner_text()


def test_cli_reference_prints_each_subcommand_from_its_parser(site, page):
    page.goto((site / "reference" / "cli.html").as_uri())
    assert page.get_by_role("heading", name="prune").is_visible()
    text = page.locator("article").inner_text()
    assert "usage: manage.py apscheduler prune" in text
    assert "--max-age MAX_AGE" in text
    assert "--trust-unverified" in text
    # Every subcommand the command defines has its printed help on the page.
    for subcommand in ("start", "list", "run", "pause", "resume", "prune", "status", "resign"):
        assert f"usage: manage.py apscheduler {subcommand}" in text
