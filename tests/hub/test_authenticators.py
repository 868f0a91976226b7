"""NativeAuthenticator for persistent accounts: sign up, wait for an admin's approval, log in;
and what `make run` prints for each authenticator. (Workshop accounts: test_accounts.py; the
attacks on these pages: tests/hub/security/test_auth_*.py.)"""

from pathlib import Path

import pytest
import requests
from traitlets.config import Config

from opuhub import hubconfig, usernames
from opuhub.host import prepare_host
from opuhub.run import login_help, login_url
from opuhub.settings import settings_from_env
from tests.hub.security.authflows import assert_login_refused, log_in, logged_in, sign_up


@pytest.mark.slow
def test_sign_up_then_admin_approval_then_log_in(second_hub):
    hub = second_hub
    assert sign_up(hub, "newbie", "a-long-passphrase-1").status_code == 200
    assert_login_refused(hub, "newbie", "a-long-passphrase-1",
                         "User newbie has not been authorized by an administrator yet")

    # the admin account exists from the start, with the generated password
    admin_password = (hub.state / "admin-password").read_text().strip()
    admin = requests.Session()
    assert log_in(hub, "admin", admin_password, admin).status_code == 302
    approve = admin.get(f"{hub.url}/hub/authorize/newbie", timeout=30)
    assert approve.status_code == 200

    assert logged_in(hub, "newbie", "a-long-passphrase-1")
    assert_login_refused(hub, "newbie", "wrong-password")
    assert sign_up(hub, "short", "abc").status_code == 200  # refused with a message...
    assert_login_refused(hub, "short", "abc")  # ...so no account


@pytest.mark.parametrize("authenticator", ["workshop", "shared", "native"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning:nativeauthenticator")
def test_each_authenticator_takes_only_valid_names_and_the_admin_password(tmp_path, authenticator):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path / "state"), "OPUHUB_SPAWNER": "local",
        "OPUHUB_AUTHENTICATOR": authenticator, "OPUHUB_ADMINS": "ann",
    })
    c = Config()
    hubconfig.configure(c, settings, prepare_host(settings, chp="/bin/true"))
    assert c.Authenticator.username_pattern == usernames.PATTERN
    admin_password = (tmp_path / "state" / "admin-password").read_text().strip()
    cls = c.JupyterHub.authenticator_class.rsplit(".", 1)[1]
    assert cls in {"WorkshopAuthenticator", "OPUSharedPasswordAuthenticator", "OPUNativeAuthenticator"}
    configured = c.SharedPasswordAuthenticator if authenticator == "shared" else c[cls]
    assert configured.admin_password == admin_password
    if authenticator == "workshop":
        assert Path(c.WorkshopAuthenticator.password_db) == tmp_path / "state" / "workshop-accounts.sqlite"
        assert c.Authenticator.allow_all is False


def test_default_authenticator_is_per_account():
    assert settings_from_env({}).authenticator == "workshop"


def test_login_help_says_how_to_log_in_with_each_authenticator():
    state = Path("/srv/state")
    workshop = login_help("http://127.0.0.1:8000", state, ["admin"], "pw-shared-1", "workshop")
    assert "user 'admin', password in /srv/state/admin-password" in workshop
    assert "every account has its own password" in workshop
    assert ".venv/bin/python -m opuhub.accounts create --count 20 --csv accounts.csv" in workshop
    assert "pw-shared-1" not in workshop  # it does not work there

    shared = login_help("http://10.0.0.1:9000", state, ["ann", "ben"], "pw-shared-1", "shared")
    assert "users 'ann', 'ben', password in /srv/state/admin-password" in shared
    assert "shared password: pw-shared-1" in shared and "closed room" in shared
    assert "opuhub.accounts --hub-url http://10.0.0.1:9000 create --count 20" in shared

    native = login_help("http://127.0.0.1:8000", state, ["admin"], "pw-shared-1", "native")
    assert "sign up at http://127.0.0.1:8000/hub/signup" in native
    assert "approves them at http://127.0.0.1:8000/hub/authorize" in native
    assert "admin names cannot be signed up" in native and "pw-shared-1" not in native


def test_make_run_points_to_the_subdomain_host_when_there_is_one(tmp_path):
    plain = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path / "state")})
    assert login_url(plain) == plain.bind_url
    sub = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path / "state"),
                             "OPUHUB_SUBDOMAIN_HOST": "http://localhost:8000"})
    assert login_url(sub) == "http://localhost:8000"
