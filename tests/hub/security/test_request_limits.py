"""The request-size policy (opuhub.limits) and the spawner's option checks, without a hub.

The server part runs a real tornado LimitedHTTPServer on 127.0.0.1 in a thread; the attacks
against the real hub are in test_request_size.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from types import SimpleNamespace

import pytest
import requests
from tornado import web

from opuhub import limits
from opuhub.limits import BodyLimits, body_limit, limits_from_settings
from opuhub.local_spawner import OPULocalSpawner
from opuhub.settings import Settings, SettingsError, settings_from_env

LIMITS = BodyLimits(spawn=100, form=1000, tokens=500, default=10_000)


@pytest.mark.parametrize("path, kind", [
    ("/hub/api/users/alice/server", "spawn"),
    ("/hub/api/users/alice/server?x=1", "spawn"),
    ("/hub/api/users/alice/servers/", "spawn"),
    ("/hub/api/users/alice/servers/gpu", "spawn"),
    ("/hub/spawn", "spawn"),
    ("/hub/spawn/alice", "spawn"),
    ("/prefix/hub/spawn/alice", "spawn"),
    ("/hub/login", "form"),
    ("/hub/login?next=/hub/spawn", "form"),
    ("/hub/signup", "form"),
    ("/hub/change-password/alice", "form"),
    ("/hub/api/users/alice/tokens", "tokens"),
    ("/hub/api/users/alice/tokens/a12", "tokens"),
    ("/prefix/hub/api/users/alice/tokens", "tokens"),
    ("/hub/api/oauth2/token", "form"),
    ("/hub/api/users", "default"),
    ("/hub/api/users/spawner/activity", "default"),  # a user called "spawner" is no spawn path
    ("/hub/admin", "default"),
    ("/services/opu-lease/api/leases", "default"),
])
def test_each_kind_of_endpoint_gets_its_cap(path, kind):
    assert body_limit(path, LIMITS) == getattr(LIMITS, kind)


def test_the_default_caps_leave_room_for_what_the_hub_legitimately_receives():
    caps = BodyLimits()
    assert len(json.dumps({"profile": "hardware", "lease_minutes": 10080})) * 10 < caps.spawn
    assert len(json.dumps({"usernames": [f"workshop-{i:04d}" for i in range(10_000)]})) < caps.default
    assert caps.spawn < caps.form < caps.default <= 1024 * 1024
    # a token request with the longest note (opuhub.token_limits), escaped, and a few scopes
    token = {"note": "\u00e9" * 256, "expires_in": 30 * 86400,
             "scopes": ["read:users!user", "access:servers!user", "read:servers!user"]}
    assert len(json.dumps(token)) * 2 < caps.tokens < caps.form


def test_the_413_is_a_complete_response_that_says_what_to_do():
    raw = limits.too_large_response(4096)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head and f"Content-Length: {len(body)}".encode() in head
    assert "at most 4096 bytes" in json.loads(body)["message"]


def test_caps_come_from_the_environment_and_bad_ones_name_the_variable():
    settings = settings_from_env({"OPUHUB_MAX_SPAWN_OPTIONS_BYTES": "2048",
                                  "OPUHUB_MAX_BODY_BYTES": "65536"})
    assert limits_from_settings(settings) == BodyLimits(spawn=2048, form=16 * 1024, default=65536)
    assert limits_from_settings(Settings()) == BodyLimits()
    with pytest.raises(SettingsError, match="OPUHUB_MAX_FORM_BYTES"):
        limits_from_settings(Settings(max_form_bytes=10))
    with pytest.raises(SettingsError, match="OPUHUB_MAX_BODY_BYTES"):
        settings_from_env({"OPUHUB_MAX_BODY_BYTES": "lots"})


# --- a real LimitedHTTPServer --------------------------------------------------------------


class Echo(web.RequestHandler):
    def post(self, *_):
        self.write({"received": len(self.request.body)})


@pytest.fixture(scope="module")
def server_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ready = threading.Event()
    stop = {}

    async def serve():
        server = limits.LimitedHTTPServer(web.Application([(r"/(.*)", Echo)]), body_limits=LIMITS)
        server.listen(port, "127.0.0.1")
        stop["event"] = asyncio.Event()
        stop["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop["event"].wait()
        server.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port}"
    stop["loop"].call_soon_threadsafe(stop["event"].set)
    thread.join(10)


def test_bodies_up_to_the_cap_reach_the_handler(server_url):
    for path, size in (("/hub/spawn", LIMITS.spawn), ("/hub/login", LIMITS.form),
                       ("/hub/api/users/a/tokens", LIMITS.tokens),
                       ("/hub/api/users", LIMITS.default)):
        resp = requests.post(server_url + path, data=b"x" * size, timeout=30)
        assert resp.status_code == 200 and resp.json() == {"received": size}


def test_a_declared_body_over_the_cap_gets_413_and_the_connection_is_not_poisoned(server_url):
    for path, size in (("/hub/spawn", LIMITS.spawn + 1), ("/hub/login", LIMITS.form + 1),
                       ("/hub/api/users/a/tokens", LIMITS.tokens + 1),
                       ("/hub/api/users", 5 * 1024 * 1024)):
        resp = requests.post(server_url + path, data=b"x" * size, timeout=30)
        assert resp.status_code == 413, (path, size)
        assert resp.headers["Connection"] == "close"
    # the server keeps serving
    assert requests.post(server_url + "/hub/spawn", data=b"{}", timeout=30).status_code == 200


def test_a_chunked_body_is_cut_off_at_the_cap(server_url):
    def chunks(n):
        for _ in range(n):
            yield b"x" * 50

    ok = requests.post(server_url + "/hub/spawn", data=chunks(2), timeout=30)
    assert ok.status_code == 200 and ok.json() == {"received": 100}
    try:
        refused = requests.post(server_url + "/hub/spawn", data=chunks(10), timeout=30)
    except requests.ConnectionError:
        pass  # cut off while sending: refused as well
    else:
        assert refused.status_code == 400


# --- the spawner refuses options before JupyterHub stores them -------------------------------


def spawner(**kw):
    return OPULocalSpawner(user=SimpleNamespace(name="alice"), **kw)


def test_the_spawn_form_is_validated_before_its_options_are_stored(tmp_path):
    s = spawner(devices=["/dev/opu0"], lease_db=str(tmp_path / "leases.sqlite"))
    assert s.options_from_form({"profile": ["hardware"], "lease_minutes": ["5"]}) == {
        "profile": "hardware", "lease_minutes": "5"}
    for form, message in (({"profile": ["gpu"]}, "unknown profile"),
                          ({"profile": ["hardware"], "lease_minutes": ["soon"]}, "number")):
        with pytest.raises(web.HTTPError) as raised:
            s.options_from_form(form)
        assert raised.value.status_code == 400 and message in raised.value.log_message
    without_device = spawner(devices=[], lease_db=str(tmp_path / "leases.sqlite"))
    with pytest.raises(web.HTTPError, match="no OPU device"):
        without_device.options_from_form({"profile": ["hardware"]})
