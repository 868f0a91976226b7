"""Oversized and refused requests against the real hub (issue 9, finding 6).

An attendee posts huge bodies to every part of the hub they can reach: the spawn API, the
login and sign-up forms, the token API and the lease service. Each is refused with 413 before
the hub reads it: nothing lands in ``jupyterhub.sqlite``, the hub's memory does not grow by the
body's size, and the hub keeps answering. Spawn options that were refused are not reused by the
next spawn. All traffic goes through the proxy on 127.0.0.1, as an attendee's would.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from opuhub.limits import BodyLimits

pytestmark = pytest.mark.slow

HUGE = 20 * 1024 * 1024  # an attack body: far over every cap, small enough for a test
LIMITS = BodyLimits()  # the hub under test runs with the default caps
MiB = 1024 * 1024


# --- measuring the hub -----------------------------------------------------------------------


def db_bytes(hub) -> int:
    """jupyterhub.sqlite with its journal or write-ahead log."""
    return sum(p.stat().st_size for p in hub.state.glob("jupyterhub.sqlite*"))


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


class PeakMemory:
    """The hub's peak RSS during a block: Linux's high-water mark, reset at the start
    (clear_refs 5). Without that file, the RSS after the block (a weaker check)."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.field = "VmHWM"
        except OSError:
            self.field = "VmRSS"
        self.before = _status_kib(self.pid, "VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        self.after = _status_kib(self.pid, self.field) * 1024
        self.growth = self.after - self.before


def stored_options(hub, user: str, server: str = ""):
    """The user_options JupyterHub keeps for a server (reused by a spawn without options)."""
    db = sqlite3.connect(f"file:{hub.state / 'jupyterhub.sqlite'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT s.user_options FROM spawners s JOIN users u ON s.user_id = u.id"
            " WHERE u.name = ? AND s.name = ?", (user, server),
        ).fetchone()
    finally:
        db.close()
    return None if row is None or row[0] is None else json.loads(row[0])


def assert_hub_answers(hub):
    assert requests.get(f"{hub.url}/hub/api/", timeout=30).status_code == 200
    assert hub.api("GET", "/users").status_code == 200


def post(url: str, body: bytes, **kw) -> requests.Response:
    return requests.post(url, data=body, timeout=120, **kw)


def json_body(size: int, **fields) -> bytes:
    """A JSON object of about ``size`` bytes: the fields plus padding in one more string."""
    return json.dumps({**fields, "pad": "x" * size}).encode()


# --- spawn options ---------------------------------------------------------------------------


def test_a_huge_spawn_body_is_refused_unread_and_stores_nothing(hub):
    hub.create_users("sz-spawner")
    token = hub.user_token("sz-spawner")
    url = f"{hub.url}/hub/api/users/sz-spawner/server"
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    db_before = db_bytes(hub)
    with PeakMemory(hub.proc.pid) as memory:
        resp = post(url, json_body(HUGE, profile="simulator"), headers=headers)
    assert resp.status_code == 413, resp.text[:300]
    assert f"at most {LIMITS.spawn} bytes" in resp.json()["message"]
    db_after = db_bytes(hub)
    print(f"\nhuge spawn body: db {db_before} -> {db_after} bytes; hub RSS {memory.before} -> "
          f"{memory.field} {memory.after} bytes")
    assert db_after - db_before < MiB  # the body was 20 MiB
    assert memory.growth < 8 * MiB
    assert stored_options(hub, "sz-spawner") in (None, {})
    assert_hub_answers(hub)

    # just over the cap is refused too (valid options padded with whitespace)...
    padded = b'{"profile": "simulator"' + b" " * LIMITS.spawn + b"}"
    assert post(url, padded, headers=headers).status_code == 413
    # ...and the next normal spawn starts with the defaults, not with anything refused
    assert hub.spawn("sz-spawner").status_code in (201, 202)
    assert stored_options(hub, "sz-spawner") in (None, {})
    hub.stop_server("sz-spawner")


def test_refused_spawn_options_are_not_reused_by_the_next_spawn(hub):
    hub.create_users("sz-sticky")
    token = hub.user_token("sz-sticky")
    path = hub.server_path("sz-sticky")
    for bad in ({"image": "evil:latest", "cmd": ["sh"]}, {"profile": "x" * 3000}):
        resp = hub.api("POST", path, token=token, json=bad)
        assert resp.status_code == 400, resp.text[:300]
        assert len(resp.text) < 1000  # the message does not echo what was sent
        assert stored_options(hub, "sz-sticky") in (None, {})
    # a spawn without options ({}) reuses the stored ones: they must be the defaults now
    resp = hub.spawn("sz-sticky")  # waits until ready
    assert resp.status_code in (201, 202), resp.text[:300]
    hub.stop_server("sz-sticky")


def test_the_spawn_page_refuses_bad_options_before_storing_them(hub):
    hub.create_users("sz-form")
    session, _ = admin_session(hub)  # an admin may use the spawn page of any user
    url = f"{hub.url}/hub/spawn/sz-form"
    page = session.get(url, timeout=30)
    assert page.status_code == 200 and 'name="profile"' in page.text
    xsrf = re.search(r'xsrf_token: "([^"]+)"', page.text)[1]

    def form(**fields):  # multipart, as the browser sends the spawn form
        return {name: (None, value) for name, value in {**fields, "_xsrf": xsrf}.items()}

    resp = session.post(url, files=form(profile="gpu", lease_minutes=""),
                        allow_redirects=False, timeout=30)
    assert resp.status_code == 400 and "unknown profile" in resp.text
    assert len(resp.request.body) < 1024  # what the page sends: far under the cap
    assert stored_options(hub, "sz-form") in (None, {})
    assert hub.server_model("sz-form") is None
    # a form over the cap never reaches the spawner
    resp = session.post(url, files=form(profile="simulator", x="y" * LIMITS.spawn),
                        allow_redirects=False, timeout=30)
    assert resp.status_code == 413
    assert hub.server_model("sz-form") is None


# --- login, sign-up, tokens, lease service ---------------------------------------------------


def admin_session(hub):
    """A browser session of the admin (state/admin-password works with every authenticator)."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)[1]
    password = (hub.state / "admin-password").read_text().strip()
    form = {"username": "admin", "password": password, "_xsrf": xsrf}
    resp = session.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text[:300]
    return session, len(urlencode(form))


def test_a_huge_login_post_is_refused_and_login_still_works(hub):
    db_before = db_bytes(hub)
    with PeakMemory(hub.proc.pid) as memory:
        resp = post(f"{hub.url}/hub/login", b"username=" + b"u" * HUGE + b"&password=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 413
    assert memory.growth < 8 * MiB
    # just over the form cap: refused; a real login form is a few hundred bytes
    resp = post(f"{hub.url}/hub/login", b"username=" + b"u" * LIMITS.form,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 413
    assert db_bytes(hub) - db_before < MiB
    _, form_bytes = admin_session(hub)  # a real login still works
    assert form_bytes < LIMITS.form
    assert_hub_answers(hub)


def test_a_huge_sign_up_post_is_refused_and_stores_no_account(second_hub):
    hub = second_hub
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/signup", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)[1]
    db_before = db_bytes(hub)
    with PeakMemory(hub.proc.pid) as memory:
        resp = session.post(f"{hub.url}/hub/signup", timeout=120, data={
            "username": "s" * HUGE, "signup_password": "p" * 12,
            "signup_password_confirmation": "p" * 12, "_xsrf": xsrf})
    assert resp.status_code == 413
    assert memory.growth < 8 * MiB
    # a long name just over the cap is not stored either
    resp = session.post(f"{hub.url}/hub/signup", timeout=30, data={
        "username": "s" * LIMITS.form, "signup_password": "p" * 12,
        "signup_password_confirmation": "p" * 12, "_xsrf": xsrf})
    assert resp.status_code == 413
    assert db_bytes(hub) - db_before < MiB
    assert_hub_answers(hub)


def test_huge_token_notes_are_refused_and_not_stored(hub):
    hub.create_users("sz-tokens")
    token = hub.user_token("sz-tokens")
    url = f"{hub.url}/hub/api/users/sz-tokens/tokens"
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    before = hub.api("GET", "/users/sz-tokens/tokens", token=token).json()["api_tokens"]
    db_before = db_bytes(hub)
    # over the default cap, and over the token cap (the default would let 1 MiB notes through)
    for size in (HUGE, 2 * LIMITS.form):
        resp = post(url, json.dumps({"note": "n" * size}).encode(), headers=headers)
        assert resp.status_code == 413, (size, resp.status_code)
    assert db_bytes(hub) - db_before < MiB
    after = hub.api("GET", "/users/sz-tokens/tokens", token=token).json()["api_tokens"]
    assert len(after) == len(before)
    assert post(url, b'{"note": "laptop"}', headers=headers).status_code == 201
    assert_hub_answers(hub)


def test_a_huge_body_to_the_lease_service_is_refused(hub):
    hub.create_users("sz-lease")
    token = hub.user_token("sz-lease")
    resp = post(f"{hub.url}/services/opu-lease/api/leases", b"x" * HUGE,
                headers={"Authorization": f"token {token}"})
    assert resp.status_code == 413
    assert hub.leases(token) is not None  # the service still answers
