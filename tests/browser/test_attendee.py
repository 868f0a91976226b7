"""An attendee's day on the local hub, in a real browser (Chromium through Playwright): the
login page, the spawn form with the device's state, JupyterLab with the OPU kernel, the
examples and the OPU status-bar item, a notebook run, the admin pages, logging out, and the
lease warning of the hardware profile. Each test leaves a PNG of its final state.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import snapshot
from tests.browser.lab import (
    STATUS_ITEM,
    api_json,
    kernel_name,
    log_in,
    open_notebook,
    run_all,
    save_and_read,
    status_text,
    wait_for_lab,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def stop(hub, user: str) -> None:
    if hub.server_model(user) is not None:
        hub.stop_server(user, timeout=60)


@pytest.fixture
def stop_after(local_hub):
    """Users whose servers stop after the test, once its screenshot is taken (request this
    fixture before ``page``: fixtures are torn down in reverse order)."""
    users: list[str] = []
    yield users
    for user in users:
        stop(local_hub, user)


def test_login_page_says_what_the_platform_is_and_refuses_a_wrong_password(page, local_hub,
                                                                           attendees):
    page.goto(f"{local_hub.url}/hub/login")
    intro = page.locator("#opuhub-intro")
    assert intro.locator(".opuhub-name").inner_text() == "OPU Hub"
    assert "optical processing unit" in intro.inner_text()
    assert "This hub has one OPU device" in intro.inner_text()
    assert "OPU Hub" in page.title()
    # the platform's logo, not JupyterHub's
    logo = page.locator("#jupyterhub-logo img")
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.request.get(f"{local_hub.url}/hub/logo").headers["content-type"].startswith(
        "image/svg")

    user = sorted(attendees)[0]
    page.fill("#username_input", user)
    page.fill("#password_input", attendees[user] + "-wrong")
    page.click("#login_submit")
    error = page.locator("p.login_error")
    error.wait_for()
    assert "Invalid username or password" in error.inner_text()
    assert "/hub/login" in page.url


def test_spawn_form_shows_the_busy_device_then_jupyterlab_opens(page, local_hub, attendees):
    user, holder = sorted(attendees)[0], sorted(attendees)[1]
    # another attendee holds the only device
    assert local_hub.spawn(holder, profile="hardware").status_code in (201, 202)
    try:
        log_in(page, local_hub.url, user, attendees[user])
        page.wait_for_url(re.compile(r"/hub/spawn"))
        assert "OPU Hub" in page.locator("#opuhub-intro").inner_text()
        form = page.locator("#opuhub-profiles")
        assert "Simulator" in form.inner_text() and "OPU hardware" in form.inner_text()
        busy = form.locator(".opuhub-device-busy")
        assert re.search(rf"opu0: held by {holder} until \d\d:\d\d", busy.inner_text())
        assert page.locator("#profile-hardware").is_disabled()
        assert page.locator("#profile-simulator").is_checked()
        snapshot(page, "spawn-form-with-a-busy-device")
    finally:
        stop(local_hub, holder)

    seen = []
    page.on("framenavigated", lambda frame: seen.append(frame.url))
    page.click("#spawn_form button[type=submit]")
    wait_for_lab(page, user)
    assert any("/hub/spawn-pending/" in url for url in seen), seen  # the progress page

    # the OPU item: this server simulates
    assert status_text(page, "OPU: simulator") == "OPU: simulator"
    assert page.locator(STATUS_ITEM).get_attribute("data-backend") == "simulator"
    assert "simulator" in page.locator(STATUS_ITEM).get_attribute("title")
    # "Python 3 (OPU)" is the default kernel, and the launcher offers it
    specs = api_json(page, local_hub.url, f"/user/{user}/api/kernelspecs")
    assert specs["default"] == "opu"
    assert specs["kernelspecs"]["opu"]["spec"]["display_name"] == "Python 3 (OPU)"
    page.locator(".jp-LauncherCard[title='Python 3 (OPU)']").first.wait_for()
    # the curated notebooks are in the home folder
    page.locator(".jp-DirListing-item[title^='Name: examples']").wait_for()
    listing = api_json(page, local_hub.url, f"/user/{user}/api/contents/examples")
    names = {item["name"] for item in listing["content"]}
    assert "01-getting-started.ipynb" in names
    # a hosted platform does not ask attendees about Jupyter news
    news = api_json(page, local_hub.url,
                    f"/user/{user}/lab/api/settings/@jupyterlab/apputils-extension:notification")
    defaults = news["schema"]["properties"]  # the platform's overrides become the defaults
    assert defaults["fetchNews"]["default"] == "false"
    assert defaults["checkForUpdates"]["default"] is False
    assert page.get_by_text("official Jupyter news").count() == 0


def test_getting_started_notebook_runs_with_a_plot_and_no_error(page, local_hub, attendees):
    user = sorted(attendees)[0]
    if local_hub.server_model(user) is None:
        assert local_hub.spawn(user, profile="simulator").status_code in (201, 202)
    log_in(page, local_hub.url, user, attendees[user])
    wait_for_lab(page, user)
    open_notebook(page, local_hub.url, user, "examples/01-getting-started.ipynb")
    assert kernel_name(page) == "Python 3 (OPU)"  # the default kernel, with no choice to make
    run_all(page)
    # JupyterLab renders only the cells in view: read what ran from the saved notebook
    notebook = save_and_read(page, local_hub.url, user, "examples/01-getting-started.ipynb")
    outputs = [o for c in notebook["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    assert re.search(r"backend\s+simulator", text), text[:2000]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # a plot
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, [(e["ename"], e["evalue"]) for e in errors]
    # the screenshot shows the first plot: walk the selection up to its cell (command mode "k")
    plot_cell = next(i for i, c in enumerate(notebook["cells"])
                     if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    for _ in range(len(notebook["cells"])):
        page.keyboard.press("k")  # stops at the first cell
    for _ in range(plot_cell):
        page.keyboard.press("j")
    page.locator(".jp-NotebookPanel .jp-RenderedImage img").first.wait_for()


def test_admin_sees_users_servers_and_leases_and_others_are_refused(context, local_hub,
                                                                    attendees, admin_password):
    user, holder = sorted(attendees)[2], sorted(attendees)[3]
    assert local_hub.spawn(holder, profile="hardware").status_code in (201, 202)
    try:
        attendee = context.new_page()
        log_in(attendee, local_hub.url, user, attendees[user])
        attendee.wait_for_url(re.compile(r"/hub/"))
        attendee.goto(f"{local_hub.url}/hub/home")  # the home page says what the platform is
        assert "This hub has one OPU device" in attendee.locator("#opuhub-intro").inner_text()
        assert attendee.locator("#start").is_visible()
        refused = attendee.goto(f"{local_hub.url}/hub/admin")
        assert refused.status == 403
        attendee.context.clear_cookies()

        admin = context.new_page()
        log_in(admin, local_hub.url, "admin", admin_password)
        admin.wait_for_url(re.compile(r"/hub/"))
        admin.goto(f"{local_hub.url}/hub/admin")
        row = admin.locator("tr", has_text=holder).first
        row.wait_for()
        assert "Stop Server" in row.inner_text()  # the holder's server runs
        admin.locator("tr", has_text=user).first.wait_for()
        # the leases, through the lease service (the hub logs the browser in with OAuth)
        leases_page = context.new_page()
        leases_page.goto(f"{local_hub.url}/services/opu-lease/api/leases")
        leases = leases_page.locator("body").inner_text()
        assert f'"user": "{holder}"' in leases and "opu0" in leases
        admin.bring_to_front()
    finally:
        stop(local_hub, holder)


def test_logged_out_the_server_is_unreachable(page, local_hub, attendees):
    user = sorted(attendees)[0]
    if local_hub.server_model(user) is None:
        assert local_hub.spawn(user, profile="simulator").status_code in (201, 202)
    log_in(page, local_hub.url, user, attendees[user])
    wait_for_lab(page, user)
    page.goto(f"{local_hub.url}/hub/logout")
    page.wait_for_url(re.compile(r"/hub/(login|logout)"))
    page.goto(f"{local_hub.url}/user/{user}/lab")
    page.wait_for_url(re.compile(r"/hub/login"))
    assert page.locator("#login_submit").is_visible()
    resp = page.request.get(f"{local_hub.url}/user/{user}/api/contents", max_redirects=0)
    assert resp.status in (302, 401, 403), resp.status
    assert local_hub.server_model(user) is not None  # still running: unreachable, not gone


def test_hardware_lease_shows_in_the_status_bar_with_a_warning(stop_after, page, local_hub,
                                                                attendees):
    user = sorted(attendees)[4]
    stop_after.append(user)  # the device goes back to the pool
    log_in(page, local_hub.url, user, attendees[user])
    page.wait_for_url(re.compile(r"/hub/spawn"))
    assert "opu0: free" in page.locator(".opuhub-device-free", has_text="opu0").inner_text()
    page.check("#profile-hardware")
    page.fill("input[name=lease_minutes]", "30")
    page.click("#spawn_form button[type=submit]")
    wait_for_lab(page, user)
    text = status_text(page, re.compile(r"OPU: hardware .*opu0 · " + user + r" · \d+:\d\d left"))
    left = int(page.locator(STATUS_ITEM).get_attribute("data-seconds-left"))
    assert 25 * 60 < left <= 30 * 60, text
    # the hub warns an hour before the end here: the lease is already in its warning window
    toast = page.locator(".Toastify__toast", has_text="Your OPU lease on")
    toast.wait_for()
    assert "ends at" in toast.inner_text() and "Save your work" in toast.inner_text()
    assert "opuhub-status-ending" in page.locator(STATUS_ITEM).get_attribute("class")
    page.locator(".jp-LauncherCard[title='Python 3 (OPU)'] img").first.wait_for()


def test_a_reserved_shared_opu_shows_in_the_status_bar_and_its_end_is_no_stop(
        stop_after, page, local_hub, attendees):
    """The spawn form's "Shared OPU" with "Reserve it for me alone": JupyterLab's item says
    the shared OPU is reserved and counts down; the warning says the transforms will queue
    again, not that the server stops."""
    user = sorted(attendees)[5]
    stop_after.append(user)
    log_in(page, local_hub.url, user, attendees[user])
    page.wait_for_url(re.compile(r"/hub/spawn"))
    assert "simulated: free" in page.locator("#opuhub-profiles").inner_text()
    page.check("#profile-shared")
    page.fill("input[name=reserve_minutes]", "20")
    page.click("#spawn_form button[type=submit]")
    wait_for_lab(page, user)
    status_text(page, re.compile(r"OPU: shared · reserved · \d+:\d\d left"))
    left = int(page.locator(STATUS_ITEM).get_attribute("data-seconds-left"))
    assert 15 * 60 < left <= 20 * 60
    assert page.locator(STATUS_ITEM).get_attribute("data-backend") == "shared"
    assert "reserved for you until" in page.locator(STATUS_ITEM).get_attribute("title")
    toast = page.locator(".Toastify__toast", has_text="Your reservation of the shared OPU")
    toast.wait_for()
    assert "queue with everyone" in toast.inner_text() and "stops" not in toast.inner_text()
    held = [lease for lease in local_hub.leases() if lease["device"] == "simulated"]
    assert [lease["user"] for lease in held] == [user]
    snapshot(page, "shared-opu-reserved")
