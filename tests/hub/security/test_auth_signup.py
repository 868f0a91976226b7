"""Sign-up (OPUHUB_AUTHENTICATOR=native) cannot make a stranger admin, nor take a name.

Before: an anonymous visitor signed up as ``admin``, was approved at once, logged in as admin,
and the generated admin password stopped working. Now the admin accounts exist before the hub
serves anyone, with state/admin-password, and admin names, taken names and names outside
opuhub.usernames cannot be signed up.
"""

from __future__ import annotations

import html

import pytest
import requests

from opuhub import usernames
from tests.hub.security.authflows import (
    assert_login_refused,
    log_in,
    logged_in,
    page_without,
    sign_up,
    xsrf,
)

pytestmark = pytest.mark.slow

NOT_AVAILABLE = "This user name is not available"


def admin_session(hub) -> requests.Session:
    session = requests.Session()
    password = (hub.state / "admin-password").read_text().strip()
    assert log_in(hub, "admin", password, session).status_code == 302
    return session


def approve(hub, name: str) -> None:
    resp = admin_session(hub).get(f"{hub.url}/hub/authorize/{name}", timeout=30)
    assert resp.status_code == 200


@pytest.mark.parametrize("name", ["admin", "Admin", "ADMIN"])
def test_a_stranger_cannot_sign_up_as_admin(second_hub, name):
    resp = sign_up(second_hub, name, "stranger-passphrase-42")
    assert resp.status_code == 200
    assert NOT_AVAILABLE in resp.text
    assert_login_refused(second_hub, "admin", "stranger-passphrase-42")
    # the generated admin password still works, and it is an admin
    admin = admin_session(second_hub)
    assert admin.get(f"{second_hub.url}/hub/authorize", timeout=30).status_code == 200
    assert second_hub.api("GET", "/users/admin").json()["admin"] is True


def test_a_taken_name_cannot_be_signed_up_again(second_hub):
    assert "sent to the admin" in sign_up(second_hub, "first-comer", "first-passphrase-1").text
    again = sign_up(second_hub, "first-comer", "second-passphrase-2")
    assert NOT_AVAILABLE in again.text
    approve(second_hub, "first-comer")
    assert logged_in(second_hub, "first-comer", "first-passphrase-1")
    assert_login_refused(second_hub, "first-comer", "second-passphrase-2")


def test_a_user_created_by_an_admin_cannot_be_signed_up(second_hub):
    second_hub.create_users("api-created")
    resp = sign_up(second_hub, "api-created", "claiming-passphrase-3")
    assert NOT_AVAILABLE in resp.text
    page = admin_session(second_hub).get(f"{second_hub.url}/hub/authorize", timeout=30)
    assert "api-created" not in page.text  # no pending sign-up an admin could approve by mistake


@pytest.mark.parametrize("name", ["workshop\x02d01", "j\x0c3\x0bcrgen", "jürgen", "j\u0443rgen",
                                  "a" * (usernames.MAX_LENGTH + 1), "semi;colon"])
def test_sign_up_refuses_look_alike_names_and_says_what_is_allowed(second_hub, name):
    resp = sign_up(second_hub, name, "look-alike-passphrase-4")
    assert resp.status_code == 200
    assert usernames.RULE in html.unescape(resp.text)
    page = admin_session(second_hub).get(f"{second_hub.url}/hub/authorize", timeout=30).text
    assert name.replace("\x02", " ") not in html.unescape(page)


def test_overlong_passwords_get_a_message_not_an_error(second_hub):
    resp = sign_up(second_hub, "long-pass", "p" * 100)
    assert resp.status_code == 200 and "at most 72 bytes" in resp.text
    assert_login_refused(second_hub, "first-comer", "p" * 100)


def test_the_login_page_does_not_tell_which_names_exist(second_hub):
    sign_up(second_hub, "known-name", "known-passphrase-5")
    approve(second_hub, "known-name")
    known = log_in(second_hub, "known-name", "wrong-passphrase")
    unknown = log_in(second_hub, "never-seen", "wrong-passphrase")
    assert known.status_code == unknown.status_code
    assert page_without(known, "known-name") == page_without(unknown, "never-seen")


def test_admins_cannot_change_their_password_away_from_the_state_file(second_hub):
    admin = admin_session(second_hub)
    password = (second_hub.state / "admin-password").read_text().strip()
    token = xsrf(admin, f"{second_hub.url}/hub/change-password")
    resp = admin.post(f"{second_hub.url}/hub/change-password",
                      data={"old_password": password, "new_password": "another-passphrase-6",
                            "new_password_confirmation": "another-passphrase-6", "_xsrf": token},
                      timeout=30)
    assert resp.status_code == 403
    assert "state/admin-password" in html.unescape(resp.text)
    assert logged_in(second_hub, "admin", password)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"},
])
def test_approval_links_cannot_be_triggered_from_elsewhere(second_hub, headers):
    """An <img src=/hub/authorize/me> in a page an admin views, or a link on another site."""
    name = "sneaky-" + headers["Sec-Fetch-Dest"]
    assert "sent to the admin" in sign_up(second_hub, name, "sneaky-passphrase-7").text
    admin = admin_session(second_hub)
    forged = admin.get(f"{second_hub.url}/hub/authorize/{name}", headers=headers, timeout=30)
    assert forged.status_code == 403
    assert_login_refused(second_hub, name, "sneaky-passphrase-7",
                         f"User {name} has not been authorized by an administrator yet")
    # from the hub's own page it works
    own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}
    assert admin.get(f"{second_hub.url}/hub/authorize/{name}", headers=own, timeout=30).status_code == 200
    assert logged_in(second_hub, name, "sneaky-passphrase-7")
