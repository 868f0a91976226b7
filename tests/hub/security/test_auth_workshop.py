"""Attendees cannot log in as each other: every workshop account has its own password.

Before: one shared workshop password let any attendee log in as any ``workshop-NN``. Now the
default authenticator (``workshop``) checks a per-account password issued by
``python -m opuhub.accounts create`` and stored hashed; the shared password is an opt-in.
"""

from __future__ import annotations

import csv
import html

import pytest
import requests

from tests.hub.hubtest import USER_PASSWORD, Hub, hub_factory, hub_root, launched_hub
from tests.hub.security.authflows import (
    accounts,
    assert_login_refused,
    issued_passwords,
    log_in,
    logged_in,
    page_without,
)

pytestmark = pytest.mark.slow


@hub_factory("workshop-accounts", ("test_auth_workshop.py",))
def make_workshop_hub(tmp_path_factory):
    """The default authenticator; restarted by the last test of this module."""
    return Hub(hub_root("workshop-accounts"), cull_idle_seconds=0)


@pytest.fixture(scope="module")
def workshop_hub(tmp_path_factory, hub):  # `hub` launches the hubs of the selected modules
    workshop = launched_hub("workshop-accounts", tmp_path_factory)
    yield workshop
    workshop.shutdown()


@pytest.fixture(scope="module")
def sheet(workshop_hub, tmp_path_factory):
    """Three accounts created the way an organiser does, with their password sheet."""
    path = tmp_path_factory.mktemp("sheet") / "accounts.csv"
    result = accounts(workshop_hub, "create", "--count", "3", "--prefix", "wa-", "--csv", str(path))
    return issued_passwords(result), path, result


def test_the_default_hub_does_not_take_the_shared_password(hub):
    """The session hub is started like `make run`, with every default."""
    hub.create_users("ws-default-1")
    assert_login_refused(hub, "ws-default-1", USER_PASSWORD)  # OPUHUB_USER_PASSWORD is set
    assert "every account has its own password" in hub.log()
    assert "shared password" not in hub.log()


def test_create_issues_one_password_per_account_and_a_sheet(workshop_hub, sheet):
    passwords, path, result = sheet
    assert sorted(passwords) == ["wa-01", "wa-02", "wa-03"]
    assert len(set(passwords.values())) == 3 and all(len(p) >= 16 for p in passwords.values())
    assert "created 3 account(s)" in result.stderr
    # the sheet: one row per account, with the password and the login link, for its owner only
    assert (path.stat().st_mode & 0o777) == 0o600
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["password"]) for r in rows] == sorted(passwords.items())
    assert rows[0]["login_url"] == f"{workshop_hub.url}/hub/login?username=wa-01"
    assert 'value="wa-01"' in requests.get(rows[0]["login_url"], timeout=30).text
    # only hashes are stored, in a file of the hub's state directory that only its owner reads
    store = workshop_hub.state / "workshop-accounts.sqlite"
    assert (store.stat().st_mode & 0o777) == 0o600
    assert not any(p.encode() in store.read_bytes() for p in passwords.values())


def test_an_attendee_cannot_log_in_as_another(workshop_hub, sheet):
    passwords = sheet[0]
    assert logged_in(workshop_hub, "wa-01", passwords["wa-01"])
    assert_login_refused(workshop_hub, "wa-02", passwords["wa-01"])  # A's password, B's name
    assert_login_refused(workshop_hub, "wa-01", USER_PASSWORD)  # the shared password is off
    admin_password = (workshop_hub.state / "admin-password").read_text().strip()
    assert_login_refused(workshop_hub, "wa-01", admin_password)
    assert_login_refused(workshop_hub, "admin", passwords["wa-01"])
    admin = requests.Session()
    assert log_in(workshop_hub, "admin", admin_password, admin).status_code == 302
    assert admin.get(f"{workshop_hub.url}/hub/admin", timeout=30).status_code == 200


def test_bad_password_gives_the_login_page_and_the_hub_stays_up(workshop_hub, sheet):
    for password in ("wrong-password", "", "x" * 5000, "\x00\u202e"):
        resp = log_in(workshop_hub, "wa-02", password)
        assert resp.status_code == 403
        assert "Invalid username or password" in html.unescape(resp.text)
    assert requests.get(f"{workshop_hub.url}/hub/api/", timeout=30).status_code == 200
    assert logged_in(workshop_hub, "wa-02", sheet[0]["wa-02"])


def test_the_login_page_does_not_tell_which_names_exist(workshop_hub, sheet):
    known = log_in(workshop_hub, "wa-03", "not-the-password")
    unknown = log_in(workshop_hub, "wz-99", "not-the-password")
    assert known.status_code == unknown.status_code == 403
    assert page_without(known, "wa-03") == page_without(unknown, "wz-99")


def test_create_again_keeps_passwords_reset_replaces_them(workshop_hub, sheet):
    passwords = sheet[0]
    again = accounts(workshop_hub, "create", "--count", "3", "--prefix", "wa-")
    assert issued_passwords(again) == {}
    assert "3 already existed" in again.stderr and "3 account(s) kept their password" in again.stderr
    assert logged_in(workshop_hub, "wa-01", passwords["wa-01"])

    reset = issued_passwords(accounts(workshop_hub, "reset", "wa-01"))
    assert list(reset) == ["wa-01"] and reset["wa-01"] != passwords["wa-01"]
    assert_login_refused(workshop_hub, "wa-01", passwords["wa-01"])
    assert logged_in(workshop_hub, "wa-01", reset["wa-01"])
    passwords["wa-01"] = reset["wa-01"]  # for the restart test

    missing = accounts(workshop_hub, "reset", "wa-77")
    assert missing.returncode == 1 and "no such account: wa-77" in missing.stderr
    admin = accounts(workshop_hub, "reset", "admin")
    assert admin.returncode == 0 and issued_passwords(admin) == {}
    assert "admin-password" in admin.stderr


def test_a_deleted_account_loses_its_password(workshop_hub):
    first = issued_passwords(accounts(workshop_hub, "create", "wd-01"))
    assert logged_in(workshop_hub, "wd-01", first["wd-01"])
    # deleted by an admin in the hub (REST API, as the admin page does)
    assert workshop_hub.api("DELETE", "/users/wd-01").status_code == 204
    assert_login_refused(workshop_hub, "wd-01", first["wd-01"])
    second = issued_passwords(accounts(workshop_hub, "create", "wd-01"))
    assert second["wd-01"] != first["wd-01"]
    assert_login_refused(workshop_hub, "wd-01", first["wd-01"])


def test_passwords_survive_a_hub_restart(workshop_hub, sheet):
    passwords = sheet[0]
    workshop_hub.stop()
    workshop_hub.start()
    for name in ("wa-01", "wa-02"):
        assert logged_in(workshop_hub, name, passwords[name])
    assert_login_refused(workshop_hub, "wa-02", passwords["wa-01"])
