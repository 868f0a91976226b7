"""Fixtures for the browser tests: Playwright driving Debian's Chromium, one page per test with
a PNG of its final state, and the local hub they run against.

Chromium comes from apt (`apt-get install chromium`; .ci/run does it); Playwright's own browser
download does not work here and is never called. OPUHUB_CHROMIUM names another binary.
Screenshots go to OPUHUB_SCREENSHOTS (default: a fresh folder under the system's temp dir);
the folder is printed at the end of the test output.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.hub.hubtest import Hub, free_port, hub_root
from tests.hub.security.authflows import accounts, issued_passwords

CHROMIUM = os.environ.get("OPUHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(os.environ.get("OPUHUB_SCREENSHOTS") or tempfile.mkdtemp(prefix="opuhub-screenshots-"))
_shots_taken: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    if _shots_taken:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(_shots_taken)} PNG(s) of the tests' final states in {SHOTS}")


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module; each test gets a fresh context (no shared cookies).

    Module scope, not session: while sync_playwright() runs, its asyncio loop is the main
    thread's running loop, so any later test calling asyncio.run() (the spawner tests) fails, and
    a second sync_playwright() (tests/hub/security/test_same_origin.py imports this fixture)
    refuses to start. Stopping Playwright when its module ends leaves no loop behind."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set OPUHUB_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()
    # the loop must be gone now, or every asyncio.run() after this module fails
    assert asyncio._get_running_loop() is None, "Playwright left its event loop running"


def snapshot(page, name: str) -> None:
    """A PNG of an intermediate state (the final state of every test is saved anyway)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    _shots_taken.append(path)


def shot_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_") + ".png"


@pytest.fixture
def context(browser, request):
    """A browser context for one test; its pages' final states are saved as PNGs."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(60_000)  # JupyterLab's first load on 2 busy cores
    yield ctx
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = [p for p in ctx.pages if not p.is_closed()]
    for i, page in enumerate(pages):
        name = shot_name(request.node.nodeid)
        if i:
            name = name.replace(".png", f"-{i + 1}.png")
        try:
            page.screenshot(path=str(SHOTS / name), full_page=False, timeout=15_000)
            _shots_taken.append(SHOTS / name)
        except Exception as e:  # a screenshot must never hide the test's own outcome
            print(f"no screenshot for {request.node.nodeid}: {e}")
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture(scope="session")
def local_hub():
    """The real hub with local servers (per-user Unix accounts when run as root, as in CI), the
    default workshop authenticator and a stand-in OPU device. The lease warning comes an hour
    before the end, so any lease asked for in a test is already in its warning window."""
    hub = Hub(hub_root("browser"), via_run=True, lease_warning_seconds=3600,
              shared_opu="simulated", shared_opu_port=free_port()).start()
    yield hub
    names = [user["name"] for user in hub.api("GET", "/users").json()]
    hub.shutdown()
    from opuhub import unix_accounts

    for name in names:  # the accounts the local spawner made (opu-<name>)
        if unix_accounts.lookup(name) is not None:
            unix_accounts.remove(name)


@pytest.fixture(scope="session")
def attendees(local_hub) -> dict[str, str]:
    """Workshop accounts made as an organiser does: {name: password}."""
    result = accounts(local_hub, "create", "--count", "6", "--prefix", "br-")
    return issued_passwords(result)


@pytest.fixture(scope="session")
def admin_password(local_hub) -> str:
    return (local_hub.state / "admin-password").read_text().strip()
