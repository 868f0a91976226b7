"""NativeAuthenticator for persistent accounts: sign up, wait for an admin's approval, log in.
(The shared workshop password is tested in test_accounts.py.)"""

import re

import pytest
import requests

pytestmark = pytest.mark.slow


def xsrf(session, url):
    page = session.get(url, timeout=30)
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def sign_up(hub, username, password):
    session = requests.Session()
    token = xsrf(session, f"{hub.url}/hub/signup")
    return session.post(
        f"{hub.url}/hub/signup",
        data={"username": username, "signup_password": password,
              "signup_password_confirmation": password, "_xsrf": token},
        timeout=30,
    )


def log_in(hub, username, password):
    session = requests.Session()
    token = xsrf(session, f"{hub.url}/hub/login")
    resp = session.post(f"{hub.url}/hub/login",
                        data={"username": username, "password": password, "_xsrf": token},
                        allow_redirects=False, timeout=30)
    return session, resp


def test_sign_up_then_admin_approval_then_log_in(second_hub):
    hub = second_hub
    assert sign_up(hub, "newbie", "a-long-passphrase-1").status_code == 200
    _, refused = log_in(hub, "newbie", "a-long-passphrase-1")
    assert refused.status_code != 302  # not approved yet

    # admins (from config) are approved on sign-up and approve others
    assert sign_up(hub, "admin", "admin-passphrase-42").status_code == 200
    admin, resp = log_in(hub, "admin", "admin-passphrase-42")
    assert resp.status_code == 302
    approve = admin.get(f"{hub.url}/hub/authorize/newbie", timeout=30)
    assert approve.status_code == 200

    _, resp = log_in(hub, "newbie", "a-long-passphrase-1")
    assert resp.status_code == 302
    _, resp = log_in(hub, "newbie", "wrong-password")
    assert resp.status_code != 302
    assert sign_up(hub, "short", "abc").status_code == 200  # refused with a message...
    _, resp = log_in(hub, "short", "abc")
    assert resp.status_code != 302  # ...so no account
