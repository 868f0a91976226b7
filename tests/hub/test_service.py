"""The lease service's handlers and enforcer, in process: tokens map to user models as the hub
would answer them (JupyterHub's own HubOAuth does the scope checks), the hub API is an
in-memory stand-in that records what the enforcer asks of it."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from opuhub import scopes
from opuhub.lease import ENDED_EXPIRED, ENDED_REVOKED, ENDED_SERVER_GONE, LeasePolicy
from opuhub.service import Enforcer, LeaseServiceApp

ACCESS = "access:services!service=opu-lease"
MODELS = {
    "ann-token": {"name": "ann", "kind": "user", "admin": False, "scopes": [ACCESS]},
    # a tutor: no admin flag, only the custom scopes (what OPUHUB_LEASE_TUTORS grants)
    "tim-token": {"name": "tim", "kind": "user", "admin": False,
                  "scopes": [ACCESS, scopes.REVOKE, scopes.READ_USAGE]},
    # the admin flag alone decides nothing: scopes do
    "flag-token": {"name": "flag", "kind": "user", "admin": True, "scopes": [ACCESS]},
    "ops-token": {"name": "ops", "kind": "service", "scopes": [ACCESS, "delete:servers"]},
    "ann-own-servers": {"name": "ann", "kind": "user", "admin": False,
                        "scopes": [ACCESS, "delete:servers!user=ann"]},
    "no-access": {"name": "eve", "kind": "user", "admin": False, "scopes": [scopes.REVOKE]},
}


class TokensAsTheHubWouldAnswer(HubOAuth):
    async def _check_hub_authorization(self, url, api_token, cache_key=None, use_cache=True):
        model = MODELS.get(api_token)
        return json.loads(json.dumps(model)) if model else None


class FakeHub:
    """The hub API calls the enforcer makes: which servers run, stopping one."""

    def __init__(self, running=(), stop_code=202):
        self.running = set(running)
        self.stop_code = stop_code
        self.stopped: list[tuple[str, str]] = []
        self.reachable = True

    async def running_servers(self):
        if not self.reachable:
            raise RuntimeError("hub API answered 503")
        return set(self.running)

    async def stop_server(self, username, server_name):
        self.stopped.append((username, server_name))
        return self.stop_code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(tmp_path):
    hub = FakeHub()
    auth = TokensAsTheHubWouldAnswer(api_token="service-token", api_url="http://127.0.0.1:1/hub/api",
                                     access_scopes={ACCESS}, cache_max_age=0)
    service = LeaseServiceApp({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_DEVICES": "/dev/opu0,/dev/opu1",
                               "JUPYTERHUB_API_TOKEN": "service-token"}, hub_auth=auth, hub_api=hub)
    service.hub = hub
    return service


def call(service, method, path, token=None):
    """One request to the service's tornado application on a loopback port."""

    async def run():
        server = HTTPServer(service.make_app())
        port = free_port()
        server.listen(port, "127.0.0.1")
        headers = {"Authorization": f"token {token}"} if token else {}
        try:
            resp = await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/services/opu-lease/{path}", method=method,
                headers=headers, raise_error=False, follow_redirects=False)
        finally:
            server.stop()
        body = resp.body.decode()
        return resp.code, (json.loads(body) if body.startswith("{") else body)

    return asyncio.run(run())


def grant(service, user, devices=("/dev/opu0",), now=None):
    return service.store.claim(user, "", list(devices), LeasePolicy(max_duration=600), now=now)


def test_leases_are_listed_to_any_user_with_access(app):
    grant(app, "ann")
    code, body = call(app, "GET", "api/leases", "ann-token")
    assert code == 200
    assert [(d["device"], d["free"]) for d in body["devices"]] == [("/dev/opu0", False),
                                                                     ("/dev/opu1", True)]
    assert body["leases"][0]["user"] == "ann" and 0 < body["leases"][0]["seconds_left"] <= 600
    assert call(app, "GET", "api/leases", "no-access")[0] == 403  # no access:services scope
    assert call(app, "GET", "api/leases", "unknown-token")[0] == 403
    code, _ = call(app, "GET", "api/leases")  # a browser without a session: off to log in
    assert code == 302


@pytest.mark.parametrize("token, allowed", [
    ("ann-token", False), ("ann-own-servers", False), ("flag-token", False),
    ("tim-token", True), ("ops-token", True),
])
def test_revoke_needs_the_revoke_scope_or_the_power_to_stop_any_server(app, token, allowed):
    grant(app, "bob")
    code, body = call(app, "DELETE", "api/leases/opu0", token)
    if not allowed:
        assert code == 403 and scopes.REVOKE in body["message"]
        assert app.hub.stopped == [] and app.store.lease_on("/dev/opu0") is not None
        return
    assert code == 200 and body["revoked"]["user"] == "bob"
    assert app.hub.stopped == [("bob", "")]  # the server's stop hook ends the lease...
    assert app.store.lease_on("/dev/opu0") is not None  # ...so the device stays held till then


def test_revoke_of_a_free_device_is_404_and_a_gone_server_ends_the_lease_at_once(app):
    assert call(app, "DELETE", "api/leases/opu1", "tim-token")[0] == 404
    grant(app, "bob")
    app.hub.stop_code = 404  # the server is already gone: no stop hook will run
    assert call(app, "DELETE", "api/leases/opu0", "tim-token")[0] == 200
    assert app.store.lease_on("/dev/opu0") is None
    assert app.store.history()[0]["end_reason"] == ENDED_REVOKED


def test_usage_is_everyones_only_with_the_read_usage_scope(app):
    start = time.time() - 100
    for user in ("ann", "bob"):
        grant(app, user, ("/dev/opu0", "/dev/opu1"), now=start)
    code, body = call(app, "GET", "api/usage", "ann-token")
    assert code == 200 and set(body["seconds"]) == {"ann"} and body["seconds"]["ann"] >= 100
    assert set(call(app, "GET", "api/usage", "tim-token")[1]["seconds"]) == {"ann", "bob"}
    assert set(call(app, "GET", "api/usage", "flag-token")[1]["seconds"]) == {"flag"}


def test_metrics_need_read_metrics_unless_public(app):
    assert call(app, "GET", "metrics", "tim-token")[0] == 403
    MODELS["metrics-token"] = {"name": "prom", "kind": "service", "scopes": [ACCESS, "read:metrics"]}
    code, text = call(app, "GET", "metrics", "metrics-token")
    assert code == 200 and "opuhub_active_leases" in text
    app.metrics_public = True
    assert call(app, "GET", "metrics")[0] == 200


# --- the enforcer ------------------------------------------------------------------------------

def enforcer(app, hub, grace=30.0):
    return Enforcer(app.store, hub, warning=60.0, grace=grace)


def test_enforcer_warns_then_stops_an_expiring_lease(app):
    hub = FakeHub(running={("ann", "")})
    now = time.time()
    grant(app, "ann", now=now - 560)  # 40 s left of 600, inside the 60 s warning
    asyncio.run(enforcer(app, hub).check())
    assert app.store.lease_on("/dev/opu0").warned_at is not None and hub.stopped == []
    grant_over = app.store.revoke("/dev/opu0")
    assert grant_over is not None
    grant(app, "ann", now=now - 700)  # over
    asyncio.run(enforcer(app, hub).check())
    assert hub.stopped == [("ann", "")]
    assert app.store.lease_on("/dev/opu0") is not None  # held until the server is gone
    # the stop hook ends it with the reason the enforcer recorded
    app.store.release("ann", "", "stopped")
    assert app.store.history()[0]["end_reason"] == ENDED_EXPIRED


def test_enforcer_ends_an_orphan_only_after_a_whole_grace_period(app, monkeypatch):
    hub = FakeHub(running=set())
    clock = [time.time()]
    monkeypatch.setattr("opuhub.service.time.time", lambda: clock[0])
    grant(app, "ann", now=clock[0] - 120)  # old enough, and its server is missing
    checker = enforcer(app, hub, grace=30.0)
    asyncio.run(checker.check())
    assert app.store.lease_on("/dev/opu0") is not None  # first seen missing: wait
    clock[0] += 10
    asyncio.run(checker.check())
    assert app.store.lease_on("/dev/opu0") is not None
    clock[0] += 25  # missing for 35 s > 30 s
    asyncio.run(checker.check())
    assert app.store.lease_on("/dev/opu0") is None
    assert app.store.history()[0]["end_reason"] == ENDED_SERVER_GONE


def test_enforcer_keeps_a_lease_whose_server_came_back_and_survives_an_unreachable_hub(app, monkeypatch):
    clock = [time.time()]
    monkeypatch.setattr("opuhub.service.time.time", lambda: clock[0])
    hub = FakeHub(running=set())
    grant(app, "ann", now=clock[0] - 120)
    checker = enforcer(app, hub, grace=30.0)
    asyncio.run(checker.check())
    hub.running = {("ann", "")}  # it was only restarting
    clock[0] += 20
    asyncio.run(checker.check())
    hub.running = set()
    clock[0] += 20  # missing again, but only for 0 s of a fresh period
    asyncio.run(checker.check())
    assert app.store.lease_on("/dev/opu0") is not None
    hub.reachable = False  # the hub API fails: expiry only, no orphan decisions
    clock[0] += 100
    asyncio.run(checker.check())
    assert app.store.lease_on("/dev/opu0") is not None


def test_revoke_by_a_short_name_that_several_devices_share_asks_for_the_full_name(tmp_path):
    hub = FakeHub()
    auth = TokensAsTheHubWouldAnswer(api_token="s", api_url="http://127.0.0.1:1/hub/api",
                                     access_scopes={ACCESS}, cache_max_age=0)
    service = LeaseServiceApp({"OPUHUB_STATE_DIR": str(tmp_path),
                               "OPUHUB_DEVICES": "node-a:/dev/opu0,node-b:/dev/opu0",
                               "JUPYTERHUB_API_TOKEN": "s"}, hub_auth=auth, hub_api=hub)
    grant(service, "ann", ["node-a:/dev/opu0"])
    grant(service, "bob", ["node-b:/dev/opu0"])
    code, body = call(service, "DELETE", "api/leases/opu0", "tim-token")
    assert code == 409 and "node-a:/dev/opu0, node-b:/dev/opu0" in body["message"]
    assert hub.stopped == []
    code, body = call(service, "DELETE", "api/leases/node-b%3A%2Fdev%2Fopu0", "tim-token")
    assert code == 200 and body["revoked"]["user"] == "bob" and hub.stopped == [("bob", "")]


def test_a_window_on_the_shared_opu_ends_without_stopping_its_holders_server(tmp_path):
    """A lease on the shared OPU's device is a reserved window: when it expires or is revoked
    it simply ends (the broker serves everyone again) and the holder's server carries on; a
    lease on a device passed through still stops its server."""
    hub = FakeHub(running={("ann", ""), ("bob", "")})
    auth = TokensAsTheHubWouldAnswer(api_token="s", api_url="http://127.0.0.1:1/hub/api",
                                     access_scopes={ACCESS}, cache_max_age=0)
    service = LeaseServiceApp({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_DEVICES":
                               "/dev/opu0,simulated", "OPUHUB_SHARED_OPU": "simulated",
                               "JUPYTERHUB_API_TOKEN": "s"}, hub_auth=auth, hub_api=hub)
    now = time.time()
    grant(service, "ann", ["simulated"], now=now - 700)  # over
    grant(service, "bob", ["/dev/opu0"], now=now - 700)  # over
    asyncio.run(service.enforcer.check())
    assert service.store.lease_on("simulated") is None
    assert service.store.history()[0]["end_reason"] == ENDED_EXPIRED
    assert hub.stopped == [("bob", "")]  # only the device holder's server
    grant(service, "ann", ["simulated"])
    code, body = call(service, "DELETE", "api/leases/simulated", "tim-token")
    assert code == 200 and body["revoked"]["user"] == "ann"
    assert service.store.lease_on("simulated") is None and hub.stopped == [("bob", "")]
