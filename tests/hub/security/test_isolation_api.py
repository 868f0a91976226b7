"""An attendee attacks another attendee and the hub through the REST API (issue 9: the things
that already hold, kept from regressing).

The attacker holds a token of her own, created through the API, and uses it against the
victim's user model, server, tokens and kernels (hub API and the victim's server through the
proxy), the admin endpoints, the lease service's admin revoke and the metrics. Each request is
refused with the status JupyterHub gives today, and no response carries the victim's data.
The victim runs a server holding the OPU lease, a kernel and a file, so there is something to
steal.
"""

from __future__ import annotations

import json
import os
import sqlite3
from urllib.parse import quote

import pytest
import websocket

from tests.hub.security.attendees import Attendee

pytestmark = pytest.mark.slow

ATTACKER, VICTIM = "sec-mallory", "sec-bob"
SECRET = "victim-secret-7f3a9c"  # in a file of the victim's home


@pytest.fixture(scope="module")
def pair(hub):
    attacker = Attendee.create(hub, ATTACKER)
    victim = Attendee.create(hub, VICTIM)
    victim.start("hardware")
    resp = victim.request("PUT", f"/user/{VICTIM}/api/contents/secret.txt",
                          json={"type": "file", "format": "text", "content": SECRET})
    assert resp.status_code in (200, 201), resp.text
    victim.kernel = victim.start_kernel()
    tokens = victim.api("GET", f"/users/{VICTIM}/tokens")
    assert tokens.status_code == 200, tokens.text
    victim.token_id = tokens.json()["api_tokens"][0]["id"]
    yield attacker, victim
    victim.request("DELETE", f"/user/{VICTIM}/api/kernels/{victim.kernel}")
    victim.stop()
    assert hub.leases() == []  # the next modules race for the device


def assert_no_victim_data(resp, victim: Attendee):
    body = resp.text
    for leak in (victim.token, victim.kernel, SECRET):
        assert leak not in body, (resp.request.method, resp.url, body[:300])
    try:
        data = json.loads(body)
    except ValueError:
        return
    if isinstance(data, dict):  # an error model, never a user, server or token model
        assert not {"created", "last_activity", "servers", "api_tokens", "kernel"} & set(data), data


def check(resp, status: int, victim: Attendee, location: str | None = None):
    what = f"{resp.request.method} {resp.url}"
    assert resp.status_code == status, (what, resp.status_code, resp.text[:300])
    if location is not None:
        assert resp.headers["Location"].startswith(location), (what, resp.headers)
    assert_no_victim_data(resp, victim)


# --- the victim's user model, server and tokens through the hub API -------------------------

# (method, path, JSON body, status JupyterHub answers): 404 where the attacker may not even
# know the resource exists, 403 where the action needs a scope she lacks
VICTIM_API = [
    ("GET", "/users/{victim}", None, 404),
    ("PATCH", "/users/{victim}", {"admin": True}, 403),
    ("PATCH", "/users/{victim}", {"name": "renamed"}, 403),
    ("POST", "/users/{victim}", None, 403),
    ("DELETE", "/users/{victim}", None, 403),
    ("POST", "/users/{victim}/server", {}, 404),
    ("POST", "/users/{victim}/server", {"profile": "hardware"}, 404),
    ("DELETE", "/users/{victim}/server", None, 404),
    ("GET", "/users/{victim}/server/progress", None, 404),
    ("POST", "/users/{victim}/servers/extra", {}, 404),
    ("DELETE", "/users/{victim}/servers/extra", None, 404),
    ("POST", "/users/{victim}/activity", {"last_activity": "2020-01-01T00:00:00Z"}, 404),
    ("GET", "/users/{victim}/tokens", None, 404),
    ("POST", "/users/{victim}/tokens", {"note": "stolen"}, 403),
    ("GET", "/users/{victim}/tokens/{token_id}", None, 404),
    ("DELETE", "/users/{victim}/tokens/{token_id}", None, 404),
]


@pytest.mark.parametrize("method, path, body, status", VICTIM_API,
                         ids=[f"{m} {p}" + (f" {b}" if b else "") for m, p, b, _ in VICTIM_API])
def test_the_victims_user_server_and_tokens_are_out_of_reach(pair, method, path, body, status):
    attacker, victim = pair
    path = path.format(victim=VICTIM, token_id=victim.token_id)
    check(attacker.api(method, path, json=body), status, victim)


def test_after_the_attacks_the_victim_is_unchanged(pair, hub):
    attacker, victim = pair
    for method, path, body, _ in VICTIM_API:  # whatever the order the tests ran in
        attacker.api(method, path.format(victim=VICTIM, token_id=victim.token_id), json=body)
    model = hub.api("GET", f"/users/{VICTIM}").json()
    assert model["admin"] is False and model["name"] == VICTIM
    assert model["servers"][""]["ready"]
    assert model["last_activity"] > "2020-01-02"
    tokens = victim.api("GET", f"/users/{VICTIM}/tokens").json()["api_tokens"]
    assert victim.token_id in [t["id"] for t in tokens]
    assert all(t["note"] != "stolen" for t in tokens)
    assert victim.api("GET", "/user").json()["name"] == VICTIM  # her token still works
    assert [lease["user"] for lease in hub.leases()] == [VICTIM]


# --- admin endpoints ----------------------------------------------------------------------------

ADMIN_API = [
    ("GET", "/users", None, 403),
    ("POST", "/users", {"usernames": ["sec-sockpuppet"]}, 403),
    ("POST", "/users/sec-sockpuppet", None, 403),
    ("PATCH", f"/users/{ATTACKER}", {"admin": True}, 403),
    ("PATCH", f"/users/{ATTACKER}", {"roles": ["admin"]}, 403),
    ("GET", "/proxy", None, 403),
    ("POST", "/proxy", None, 403),
    ("PATCH", "/proxy", {"auth_token": "mine"}, 403),
    ("GET", "/services", None, 403),
    ("GET", "/services/opu-lease", None, 403),
    ("GET", "/groups", None, 403),
    ("POST", "/groups/sec-admins", None, 403),
    ("GET", "/info", None, 403),
    ("POST", "/shutdown", {"servers": True, "proxy": True}, 403),
    # a token of her own with scopes she does not hold: refused, not silently reduced
    ("POST", f"/users/{ATTACKER}/tokens", {"scopes": ["admin:users"]}, 400),
    ("POST", f"/users/{ATTACKER}/tokens", {"scopes": ["read:metrics"]}, 400),
    ("POST", f"/users/{ATTACKER}/tokens", {"scopes": [f"access:servers!user={VICTIM}"]}, 400),
    ("POST", f"/users/{ATTACKER}/tokens", {"scopes": ["tokens"], "note": "all tokens"}, 400),
]


@pytest.mark.parametrize("method, path, body, status", ADMIN_API,
                         ids=[f"{m} {p}" + (f" {b}" if b else "") for m, p, b, _ in ADMIN_API])
def test_admin_endpoints_are_refused(pair, method, path, body, status):
    attacker, victim = pair
    check(attacker.api(method, path, json=body), status, victim)


def test_the_attacker_stays_a_plain_user(pair, hub):
    attacker, victim = pair
    for method, path, body, _ in ADMIN_API:
        attacker.api(method, path, json=body)
    me = attacker.api("GET", "/user").json()
    assert me["admin"] is False and me["roles"] == ["user"], me
    assert not [s for s in me["scopes"] if s.startswith(("admin", "list:", "read:metrics", "proxy"))]
    assert hub.api("GET", "/users/sec-sockpuppet").status_code == 404
    db = sqlite3.connect(f"file:{hub.state / 'jupyterhub.sqlite'}?mode=ro", uri=True)
    try:  # the command-line token may not read groups: the database says none was made
        assert db.execute("SELECT name FROM groups WHERE name = 'sec-admins'").fetchall() == []
    finally:
        db.close()
    tokens = attacker.api("GET", f"/users/{ATTACKER}/tokens").json()["api_tokens"]
    assert all(t["note"] != "all tokens" and not t.get("scopes") or "tokens" not in t["scopes"]
               for t in tokens), tokens
    # the admin pages send her to the login page, which will not make her an admin
    for page in ("/hub/admin", "/hub/token"):
        check(attacker.request("GET", page), 302, victim, location="/hub/login")


# --- the victim's server through the proxy ------------------------------------------------------

PROXY = [
    ("GET", "/user/{victim}/api/status", None),
    ("GET", "/user/{victim}/api/contents", None),
    ("GET", "/user/{victim}/api/contents/secret.txt", None),
    ("PUT", "/user/{victim}/api/contents/planted.py", {"type": "file", "format": "text",
                                                       "content": "import os"}),
    ("DELETE", "/user/{victim}/api/contents/secret.txt", None),
    ("GET", "/user/{victim}/files/secret.txt", None),
    ("GET", "/user/{victim}/api/kernels", None),
    ("POST", "/user/{victim}/api/kernels", {"name": "python3"}),
    ("GET", "/user/{victim}/api/kernels/{kernel}", None),
    ("POST", "/user/{victim}/api/kernels/{kernel}/interrupt", {}),
    ("POST", "/user/{victim}/api/kernels/{kernel}/restart", {}),
    ("DELETE", "/user/{victim}/api/kernels/{kernel}", None),
    ("GET", "/user/{victim}/api/sessions", None),
    ("POST", "/user/{victim}/api/terminals", {}),
    ("POST", "/user/{victim}/api/shutdown", None),
    ("GET", "/user/{victim}/lab", None),
]


@pytest.mark.parametrize("method, path, body", PROXY,
                         ids=[f"{m} {p}" for m, p, _ in PROXY])
def test_the_victims_server_refuses_the_attackers_token(pair, method, path, body):
    attacker, victim = pair
    path = path.format(victim=VICTIM, kernel=victim.kernel)
    check(attacker.request(method, path, json=body), 403, victim)


def test_the_victims_kernel_websocket_refuses_the_attacker(pair):
    attacker, victim = pair
    url = f"{attacker.hub.url}/user/{VICTIM}/api/kernels/{victim.kernel}/channels"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url.replace("http://", "ws://", 1),
                                    header=[f"Authorization: token {attacker.token}"], timeout=30)
    assert refused.value.status_code == 403
    # her own server's token is no key to the victim's either (the proxy routes by path)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url.replace("http://", "ws://", 1), timeout=30)
    assert refused.value.status_code == 403


def test_after_the_proxy_attacks_the_victims_server_is_intact(pair):
    attacker, victim = pair
    for method, path, body in PROXY:
        attacker.request(method, path.format(victim=VICTIM, kernel=victim.kernel), json=body)
    kernel = victim.request("GET", f"/user/{VICTIM}/api/kernels/{victim.kernel}")
    assert kernel.status_code == 200, kernel.text
    secret = victim.request("GET", f"/user/{VICTIM}/api/contents/secret.txt")
    assert secret.status_code == 200 and secret.json()["content"] == SECRET
    planted = victim.request("GET", f"/user/{VICTIM}/api/contents/planted.py")
    assert planted.status_code == 404
    assert victim.request("GET", f"/user/{VICTIM}/api/status").status_code == 200


# --- the lease service and the metrics ------------------------------------------------------------


def test_the_lease_service_keeps_admin_actions_and_others_usage(pair, hub):
    attacker, victim = pair
    device = hub.devices[0]
    for name in (os.path.basename(device), quote(device, safe="")):
        check(attacker.request("DELETE", f"/services/opu-lease/api/leases/{name}"), 403, victim)
    assert [lease["user"] for lease in hub.leases()] == [VICTIM]
    assert hub.server_model(VICTIM)["ready"]
    # her own usage only, whatever she asks for
    for query in ("", f"?user={VICTIM}", "?all=1"):
        resp = attacker.request("GET", f"/services/opu-lease/api/usage{query}")
        assert resp.status_code == 200, resp.text
        assert list(resp.json()["seconds"]) == [ATTACKER], resp.text
    # the admin sees the victim's OPU time: there is something to hide
    assert VICTIM in hub.get("/services/opu-lease/api/usage").json()["seconds"]


def test_metrics_need_the_read_metrics_scope(pair):
    attacker, victim = pair
    check(attacker.request("GET", "/services/opu-lease/metrics"), 403, victim)
    resp = attacker.request("GET", "/hub/metrics")
    check(resp, 403, victim)
    assert "jupyterhub_" not in resp.text and "opuhub_" not in resp.text
