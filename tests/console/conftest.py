"""Browser fixtures of the console tests: Debian's chromium driven by Playwright for Python, every request
that leaves loopback blocked and recorded, axe-core from npm for the accessibility checks, and the keys the
tests sign in with."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, TEST_KEY, key_entry, write_key_file

CHROMIUM = os.environ.get("JOBENGINE_CHROMIUM", "/usr/bin/chromium")
AXE_VERSION = "4.14.1"
AXE_PREFIX = ROOT / ".tools" / "axe"  # ignored (.tools/): npm installs into it at test time
READ_KEY = "console-reader.reader-secret-0123456789abcdef0123456789abcdef"
OTHER_KEY = "console-other.other-secret-0123456789abcdef0123456789abcdef"
# The pages' screenshots: docs/img (the README's) when JOBENGINE_UPDATE_SCREENSHOTS=1, else .run/screenshots,
# so a test run leaves the work tree as it found it
SCREENSHOTS = (ROOT / "docs" / "img" if os.environ.get("JOBENGINE_UPDATE_SCREENSHOTS") == "1"
               else ROOT / ".run" / "screenshots")
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
AXE_PATH = "/__test/axe.min.js"  # answered by the test's route, never by the API
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture(scope="session")
def console_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin test key (tenant default, every scope), a read-only key of the same tenant, another tenant's."""
    return write_key_file(tmp_path_factory.mktemp("console-keys") / "keys.json", [
        key_entry(TEST_KEY), key_entry(READ_KEY, scopes=("read",)), key_entry(OTHER_KEY, tenant="other")])


@pytest.fixture
def console_api(start_api, console_keys: Path):  # type: ignore[no-untyped-def]
    """The API with the console on and authentication on (as in production), its test client the admin key."""
    return start_api(JOBENGINE_CONSOLE="true", JOBENGINE_API_KEYS_FILE=str(console_keys),
                     JOBENGINE_AUTH_REFRESH_SECONDS="0.5")


@pytest.fixture(scope="package")  # stopped after tests/console: its loop must not outlive them
def playwright_browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/install-system-deps.sh installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class Browser:
    """One browser context (its own cookies) whose requests off loopback are aborted and listed in `external`."""

    def __init__(self, browser: Any, base_url: str) -> None:
        # the pages' CSP stays in force: axe-core is served as if from the API's origin (AXE_PATH)
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(15_000)
        self.external: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        # script errors (a CSP refusal among them) and failed loads, but the event streams: until GET /v1/events
        # is served (issue 19's events part) they answer 404 and the pages poll instead
        self.console_errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not urlsplit(response.url).path.endswith("/events"):
            self.console_errors.append(f"{response.status} {response.url}")

    def _route(self, route: Any) -> None:
        url = urlsplit(route.request.url)
        host = url.hostname or ""
        if host in LOOPBACK and url.path == AXE_PATH:
            route.fulfill(path=str(AXE_PREFIX / "node_modules" / "axe-core" / "axe.min.js"),
                          content_type="text/javascript")
        elif route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_browser(playwright_browser: Any) -> Iterator[Any]:
    opened: list[Browser] = []

    def open_(base_url: str) -> Browser:
        b = Browser(playwright_browser, base_url)
        opened.append(b)
        return b

    yield open_
    for b in opened:
        b.close()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's axe.min.js, installed at test time with npm (pinned) into .tools/axe."""
    script = AXE_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists() and f'"version": "{AXE_VERSION}"' in (script.parent / "package.json").read_text():
        return script
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is missing: the accessibility checks install axe-core from npm")
    AXE_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(AXE_PREFIX), "--no-save", "--no-audit", "--no-fund",
                    "--no-package-lock", f"axe-core@{AXE_VERSION}"], check=True, capture_output=True, timeout=180)
    return script


def axe_violations(page: Any, axe: Path) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE_PATH)  # a same-origin script: allowed by the console's CSP
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in found if v["impact"] in ("serious", "critical")]
