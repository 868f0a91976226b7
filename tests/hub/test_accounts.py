"""Bulk workshop accounts through the hub API, each with its own password, and logging in.
(Attacks on them: tests/hub/security/test_auth_workshop.py.)"""

import subprocess
import sys

import pytest
import requests

from opuhub.accounts import authenticator_kind, login_url, workshop_usernames
from tests.helpers import wait_until
from tests.hub.hubtest import USER_PASSWORD
from tests.hub.security.authflows import assert_login_refused, issued_passwords, log_in


def test_workshop_usernames():
    assert workshop_usernames("ws-", 3) == ["ws-01", "ws-02", "ws-03"]
    assert workshop_usernames("t", 2, start=99) == ["t099", "t100"]
    with pytest.raises(ValueError, match="count"):
        workshop_usernames("ws-", 0)
    with pytest.raises(ValueError, match="invalid user name"):
        workshop_usernames("Bad Name/", 1)
    with pytest.raises(ValueError, match="invalid user name"):
        workshop_usernames("a-prefix-much-too-long-for-us-", 1)  # 32 characters


def test_authenticator_kind_and_login_url():
    assert authenticator_kind("opuhub.workshop_auth.WorkshopAuthenticator") == "workshop"
    assert authenticator_kind("opuhub.workshop_auth.OPUSharedPasswordAuthenticator") == "shared"
    assert authenticator_kind("opuhub.native_auth.OPUNativeAuthenticator") == "native"
    assert login_url("https://hub.example/", "ws-01") == "https://hub.example/hub/login?username=ws-01"


def test_bulk_create_and_log_in_with_own_passwords(hub):
    cmd = [sys.executable, "-m", "opuhub.accounts", "create", "--count", "12", "--prefix", "ws-",
           "--hub-url", hub.url, "--state-dir", str(hub.state)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    passwords = issued_passwords(result)
    assert list(passwords) == [f"ws-{i:02d}" for i in range(1, 13)]
    assert "created 12 account(s)" in result.stderr
    names = {user["name"] for user in hub.api("GET", "/users").json()}
    assert {f"ws-{i:02d}" for i in range(1, 13)} <= names

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "12 already existed" in again.stderr
    assert issued_passwords(again) == {}  # nobody's password changed

    browser = requests.Session()
    assert log_in(hub, "ws-03", passwords["ws-03"], browser).status_code == 302  # logged in
    # the spawn page offers both profiles and says who holds each device
    page = browser.get(f"{hub.url}/hub/spawn", timeout=30)
    assert page.status_code == 200
    assert "OPU hardware" in page.text and "Simulator" in page.text
    assert f"{hub.devices[0]}: free" in page.text or f"{hub.devices[0]}: held by" in page.text
    # submitting the form starts the server with the chosen profile
    token = browser.cookies.get("_xsrf", path="/hub/")
    submitted = browser.post(f"{hub.url}/hub/spawn", data={"profile": "simulator", "_xsrf": token},
                             allow_redirects=False, timeout=60)
    assert submitted.status_code == 302, submitted.text[:300]
    server = hub.server_model("ws-03")
    assert server is not None and server["user_options"] == {"profile": "simulator"}
    assert_login_refused(hub, "ws-03", "wrong-password")
    assert_login_refused(hub, "ws-03", USER_PASSWORD)  # no shared password
    # the session hub was started like `make run`: it printed how to log in, and that works
    assert f"OPU Hub is starting at {hub.url}" in hub.log()
    assert f"opuhub.accounts --hub-url {hub.url} create --count 20 --csv accounts.csv" in hub.log()
    admin_password = (hub.state / "admin-password").read_text().strip()
    assert ((hub.state / "admin-password").stat().st_mode & 0o777) == 0o600
    admin = requests.Session()
    assert log_in(hub, "admin", admin_password, admin).status_code == 302
    # in a browser, the lease service logs the user in through the hub (OAuth)
    leases = admin.get(f"{hub.url}/services/opu-lease/api/leases", timeout=30)
    assert leases.status_code == 200 and "devices" in leases.json(), leases.text[:300]
    assert_login_refused(hub, "admin", passwords["ws-03"])  # admins need their own
    assert_login_refused(hub, "stranger", passwords["ws-03"])

    bad = subprocess.run(cmd[:4] + ["--count", "0", "--hub-url", hub.url], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "count must be between" in bad.stderr


def test_password_store_issues_verifies_and_keeps(tmp_path):
    from itertools import count

    from opuhub.password_store import PasswordStore, ScryptCost

    cheap = ScryptCost(n=2**10)  # the cost travels with each hash; the default is 2**14
    numbers = count(1)
    store = PasswordStore(tmp_path / "state" / "accounts.sqlite")
    issued = store.issue(["a", "b"], lambda: f"password-{next(numbers)}", cost=cheap)
    assert issued == {"a": "password-1", "b": "password-2"}
    assert ((tmp_path / "state" / "accounts.sqlite").stat().st_mode & 0o777) == 0o600
    assert store.verify("a", "password-1") and not store.verify("a", "password-2")
    assert not store.verify("nobody", "password-1") and not store.verify("a", "x" * 2000)
    assert store.issue(["a", "c"], lambda: "password-new", cost=cheap) == {"c": "password-new"}
    assert store.verify("a", "password-1")  # kept
    assert store.issue(["a"], lambda: "password-reset", replace=True, cost=cheap) == {"a": "password-reset"}
    assert store.verify("a", "password-reset") and not store.verify("a", "password-1")
    assert store.delete(["a", "zzz"]) == 1 and store.names() == {"b", "c"}
    assert b"password-" not in (tmp_path / "state" / "accounts.sqlite").read_bytes()


@pytest.mark.slow
def test_prestart_starts_the_accounts_servers_ahead_a_warm_pool(hub):
    cmd = [sys.executable, "-m", "opuhub.accounts", "create", "--count", "2", "--prefix",
           "warm-", "--prestart", "--hub-url", hub.url, "--state-dir", str(hub.state)]
    names = ["warm-01", "warm-02"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "servers: " in result.stderr
        for name in names:
            wait_until(lambda name=name: (hub.server_model(name) or {}).get("ready"), 180,
                     f"{name}'s prestarted server")
            hub.remember_pid(name)
        # again: they run already, nothing is started twice
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "servers: 2 running" in again.stderr, again.stderr
    finally:
        for name in names:
            if hub.server_model(name):
                hub.stop_server(name)


def test_prestart_goes_with_create_only(hub):
    result = subprocess.run(
        [sys.executable, "-m", "opuhub.accounts", "delete", "nobody-here", "--prestart",
         "--hub-url", hub.url, "--state-dir", str(hub.state)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "--prestart goes with create" in result.stderr
