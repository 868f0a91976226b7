"""Look-alike user names are refused by every authenticator, at login and in the REST API.

Before: ``workshop\\x02d01`` and ``workshop-01`` became the same container and volume, and with
open login ``j\\x0c3\\x0bcrgen`` took over ``jürgen``'s running container. Now only the names of
opuhub.usernames exist: lower-case ASCII letters, digits, '.', '_', '-', at most 28 characters.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from opuhub import usernames
from tests.hub.hubtest import USER_PASSWORD, Hub, hub_factory, hub_root, launched_hub
from tests.hub.security.authflows import assert_login_refused, logged_in

pytestmark = pytest.mark.slow

LOOK_ALIKES = [
    "workshop\x02d01",  # control character (the browser form turns it into a space)
    "j\x0c3\x0bcrgen",  # form feed and vertical tab survive the form
    "jürgen",  # non-ASCII
    "j\u0443rgen",  # Cyrillic look-alike letter
    "a" * (usernames.MAX_LENGTH + 1),  # too long for the derived Unix account
    "-leading-dash",
    "white space",
]
# JupyterHub's username_pattern alone lets a trailing newline through; the login form strips
# it (the same account then), the REST API does not
API_LOOK_ALIKES = [*LOOK_ALIKES, "workshop-01\n"]


@hub_factory("open-shared", ("test_auth_names.py",))
def make_open_shared_hub(tmp_path_factory):
    """The shared-password opt-in with open login (OPUHUB_ALLOW_ALL): anyone picks a name."""
    return Hub(hub_root("open-shared"), via_run=True, authenticator="shared", allow_all=1,
               cull_idle_seconds=0)


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory, hub):  # `hub` launches the hubs of the selected modules
    shared = launched_hub("open-shared", tmp_path_factory)
    yield shared
    shared.shutdown()


@pytest.fixture(params=["workshop", "shared", "native"])
def any_hub(request):
    """A hub with each authenticator: the session hub runs the default (workshop)."""
    name = {"workshop": "hub", "shared": "open_hub", "native": "second_hub"}[request.param]
    return request.getfixturevalue(name)


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_open_login_refuses_look_alike_names(open_hub, name):
    assert_login_refused(open_hub, name, USER_PASSWORD)
    assert all(usernames.is_valid(user["name"]) for user in open_hub.api("GET", "/users").json())


def test_open_login_still_takes_valid_names_and_keeps_admins_apart(open_hub):
    assert logged_in(open_hub, "jurgen", USER_PASSWORD)
    assert logged_in(open_hub, "Jurgen", USER_PASSWORD)  # normalized: the same account
    assert_login_refused(open_hub, "admin", USER_PASSWORD)  # admins need their own password
    admin_password = (open_hub.state / "admin-password").read_text().strip()
    assert logged_in(open_hub, "admin", admin_password)
    # `make run` said so: the shared password, and what it allows
    assert f"shared password: {USER_PASSWORD}" in open_hub.log()
    assert "for a closed room only" in open_hub.log()


@pytest.mark.parametrize("name", API_LOOK_ALIKES)
def test_the_api_refuses_to_create_look_alike_names(any_hub, name):
    one = any_hub.api("POST", f"/users/{quote(name, safe='')}")
    assert one.status_code == 400, one.text
    bulk = any_hub.api("POST", "/users", json={"usernames": [name]})
    assert bulk.status_code == 400, bulk.text
    names = [user["name"] for user in any_hub.api("GET", "/users").json()]
    assert all(usernames.is_valid(n) for n in names), names


def test_the_api_still_creates_valid_names(any_hub):
    resp = any_hub.api("POST", "/users/valid-name_1.x")
    assert resp.status_code in (201, 409), resp.text
    assert any_hub.api("GET", "/users/valid-name_1.x").status_code == 200
