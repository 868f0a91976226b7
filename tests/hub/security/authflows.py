"""What an attendee does with a browser on the login and sign-up pages, and the accounts command."""

from __future__ import annotations

import re
import subprocess
import sys

import requests

XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')
XSRF_JS = re.compile(r'xsrf_token: "[^"]*"')


def xsrf(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    return XSRF.search(page.text).group(1)


def log_in(hub, username: str, password: str, session: requests.Session | None = None,
           ) -> requests.Response:
    """POST the login form; a 302 means logged in."""
    session = session or requests.Session()
    token = xsrf(session, f"{hub.url}/hub/login")
    return session.post(f"{hub.url}/hub/login",
                        data={"username": username, "password": password, "_xsrf": token},
                        allow_redirects=False, timeout=60)


def logged_in(hub, username: str, password: str) -> bool:
    return log_in(hub, username, password).status_code == 302


REFUSED = "Invalid username or password"


def refusal_status(hub) -> int:
    """How a hub answers a refused login: JupyterHub's login form with 403; NativeAuthenticator
    renders its own login page again, with 200."""
    return 200 if hub.env.get("OPUHUB_AUTHENTICATOR") == "native" else 403


def assert_login_refused(hub, username: str, password: str, message: str = REFUSED,
                         ) -> requests.Response:
    """The login form refuses ``username``/``password``: the login page again, with the hub's
    refusal status and ``message`` on it. Logged in (302), an error page (500) or anything
    else fails."""
    resp = log_in(hub, username, password)
    expected = refusal_status(hub)
    assert resp.status_code == expected and message in resp.text, (
        f"login as {username!r}: expected the login page again ({expected}, saying "
        f"{message!r}), got {resp.status_code}: {resp.text[:300]}")
    return resp


def sign_up(hub, username: str, password: str) -> requests.Response:
    session = requests.Session()
    token = xsrf(session, f"{hub.url}/hub/signup")
    return session.post(
        f"{hub.url}/hub/signup",
        data={"username": username, "signup_password": password,
              "signup_password_confirmation": password, "_xsrf": token},
        timeout=60,
    )


def page_without(resp: requests.Response, *names: str) -> str:
    """The page with the echoed names and the per-session xsrf token blanked out."""
    text = XSRF_JS.sub('xsrf_token: ""', XSRF.sub('name="_xsrf" value=""', resp.text))
    for name in names:
        text = text.replace(name, "NAME")
    return text


def accounts(hub, *args: str) -> subprocess.CompletedProcess:
    """`python -m opuhub.accounts ...` against ``hub``, run next to it as an operator would."""
    cmd = [sys.executable, "-m", "opuhub.accounts", *args, "--hub-url", hub.url,
           "--state-dir", str(hub.state)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def issued_passwords(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{name: password} from the "name password" lines the accounts command prints."""
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines() if line.strip())
